"""A live stream whose server falls behind keeps a few frames, not all of them (issue 24's soak under
load: server memory grew ~1.5 MiB/s while processed frames queued on aiortc's MediaRelay for the encoder)."""

from __future__ import annotations

import asyncio

import av
import numpy as np
import pytest
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from engine.emotion import stale_frames


def frame(n: int) -> av.VideoFrame:
    f = av.VideoFrame.from_ndarray(np.full((48, 64, 3), n % 256, np.uint8), format="bgr24")
    f.pts = n
    return f


class Source(MediaStreamTrack):
    """A camera: ``interval`` seconds per frame; None: sends nothing (the test fills the queue)."""

    def __init__(self, kind="video", interval=None, frames=120):
        super().__init__()
        self.kind, self.interval, self.frames, self.sent = kind, interval, frames, 0

    async def recv(self):
        if self.interval is None or self.sent >= self.frames:
            await asyncio.Event().wait()
        await asyncio.sleep(self.interval)
        self.sent += 1
        return frame(self.sent - 1)


def relayed(kind="video", **source):
    """What streamlit-webrtc hands its consumers: a buffered proxy of a MediaRelay."""
    return MediaRelay().subscribe(Source(kind, **source))


@pytest.fixture(scope="module", autouse=True)
def installed():
    assert stale_frames.install()
    assert stale_frames.install()  # idempotent: the page calls it on every run


def run(coro):
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:  # the relays' reading tasks wait on their silent sources: end them
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()


def test_a_backlog_is_skipped_to_the_newest_frame():
    async def go():
        track = relayed()
        for n in range(10):
            track._queue.put_nowait(frame(n))
        before = stale_frames.stats["dropped"]
        got = await track.recv()
        return got.pts, track._queue.qsize(), stale_frames.stats["dropped"] - before

    assert run(go()) == (9, 0, 9)


def test_a_short_queue_is_played_in_order():
    async def go():
        track = relayed()
        for n in range(stale_frames.MAX_BACKLOG + 1):
            track._queue.put_nowait(frame(n))
        return [(await track.recv()).pts for _ in range(stale_frames.MAX_BACKLOG + 1)]

    assert run(go()) == list(range(stale_frames.MAX_BACKLOG + 1))


def test_the_end_of_the_stream_still_ends_it():
    async def go():
        track = relayed()
        for n in range(8):
            track._queue.put_nowait(frame(n))
        track._queue.put_nowait(None)  # what aiortc's decoder sends when the sender stops
        newest = (await track.recv()).pts
        with pytest.raises(MediaStreamError):
            await track.recv()
        return newest

    assert run(go()) == 7


def test_audio_is_not_skipped():
    async def go():
        track = relayed("audio")
        for n in range(10):
            track._queue.put_nowait(n)
        return [await track.recv() for _ in range(10)]

    assert run(go()) == list(range(10))


def test_a_slow_consumer_holds_a_few_frames_not_a_growing_pile():
    """15 frames/s in, a consumer that takes 3x a frame's time: the queue stays within the backlog
    limit (without the guard it grows by ~10 frames a second, ~4.6 MB/s at 640x480)."""

    async def go(recv):
        track = relayed(interval=0.002, frames=120)
        longest, last = 0, -1
        while last < 119:
            last = (await recv(track)).pts
            longest = max(longest, track._queue.qsize())
            await asyncio.sleep(0.006)
        return longest

    guarded = run(go(type(relayed()).recv))
    unguarded = run(go(stale_frames._original_recv))
    assert guarded <= stale_frames.MAX_BACKLOG + 1
    assert unguarded > 3 * guarded  # the pile the guard prevents
