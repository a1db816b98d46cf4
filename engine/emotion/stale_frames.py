"""Live video keeps only the newest frames when the server falls behind.

streamlit-webrtc passes every video track through aiortc's ``MediaRelay``: a task reads the
source as fast as frames come and puts each on a queue per consumer, a queue without bound.
The consumer of the processed video is the VP8 encoder that sends it back to the browser.
When the machine is busier than the stream (two cameras on a starved 2-core host), the encoder
falls behind and processed frames (~0.9 MB each at 640x480) pile up on its queue: the soak
measured server memory growing ~1.5 MiB/s while a stream lived, all of it live memory
(glibc's mmapped blocks), released only when the stream ended, and the picture sent back
lagged further and further behind the face. A late frame is worth nothing in a live view, so
:func:`install` makes a relayed video track hand out the newest frame once more than
:data:`MAX_BACKLOG` wait, and drop the older ones (counted in :data:`stats`). Audio is
untouched (the app takes none; gaps would be heard).

Example:
    >>> install()   # once per process; a second call does nothing
    True
"""

from __future__ import annotations

import asyncio
import logging
import threading

log = logging.getLogger(__name__)

#: Frames that may wait before the older ones are dropped: a little slack for jitter (at 15 fps,
#: ~0.2 s), while memory stays bounded to a few frames per stream.
MAX_BACKLOG = 3

_lock = threading.Lock()
_original_recv = None
#: Counters for logs and tests: frames handed out and frames dropped as stale, over all streams.
stats = {"delivered": 0, "dropped": 0}


def newest(queue: asyncio.Queue, frame, max_backlog: int = MAX_BACKLOG):
    """``frame`` or, when more than ``max_backlog`` frames wait behind it, the newest of them (the
    rest dropped). An end-of-stream marker (None) stays queued so that the next call ends the stream."""
    if frame is None or queue.qsize() <= max_backlog:
        return frame
    ended, dropped = False, 0
    while True:
        try:
            item = queue.get_nowait()
        except asyncio.QueueEmpty:
            break
        if item is None:
            ended = True
            break
        frame, dropped = item, dropped + 1
    if ended:
        queue.put_nowait(None)
    stats["dropped"] += dropped
    if dropped and (stats["dropped"] == dropped or stats["dropped"] // 1000 != (stats["dropped"] - dropped) // 1000):
        log.info("live video behind: %d stale frames dropped so far (%d shown)", stats["dropped"], stats["delivered"])
    return frame


def install() -> bool:
    """Make aiortc's relayed video tracks skip stale frames (idempotent). False when aiortc lacks the
    buffered queue this relies on (another version): nothing is changed then, and it is logged."""
    global _original_recv
    from aiortc.contrib.media import MediaRelay, RelayStreamTrack
    from aiortc.mediastreams import VideoStreamTrack

    with _lock:
        if _original_recv is not None:
            return True
        probe = RelayStreamTrack(MediaRelay(), VideoStreamTrack(), buffered=True)
        if not isinstance(getattr(probe, "_queue", None), asyncio.Queue) or not hasattr(probe, "_frame"):
            log.warning("aiortc's RelayStreamTrack has no frame queue here: stale frames are not dropped")
            return False
        original = RelayStreamTrack.recv

        async def recv(self):
            frame = await original(self)
            if self.kind != "video" or not self._buffered:
                return frame
            stats["delivered"] += 1
            self._frame = newest(self._queue, frame)
            return self._frame

        recv.__doc__ = original.__doc__
        RelayStreamTrack.recv = recv
        _original_recv = original
        return True
