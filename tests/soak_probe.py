"""The soak's server with a memory probe beside it (``SOAK_PROBE=<file>``: tests/test_soak.py starts the
server through this). Every 15 s one JSON line: RSS, glibc's heap in use vs free, the live video's
queues, the most numerous Python object types, the largest containers and every thread's stack, to tell
a Python-level pile from native growth (``SOAK_PROBE_TRACE=1`` adds tracemalloc's growth by traceback).

A diagnostic, not a test: while it samples it holds a reference to every object for a moment, and the
LiteRT interpreter refuses to run while anything else holds its internals (one frame per stream was
refused that way in a 30-minute run; the stream goes on).
"""

from __future__ import annotations

import collections
import ctypes
import gc
import json
import os
import sys
import threading
import time
import traceback
import tracemalloc


class MallInfo2(ctypes.Structure):
    _fields_ = [
        (n, ctypes.c_size_t)
        for n in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def heap() -> dict:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = MallInfo2
        m = libc.mallinfo2()
        return {k: round(getattr(m, k) / 2**20, 1) for k in ("arena", "hblkhd", "uordblks", "fordblks")}
    except (OSError, AttributeError):
        return {}


def rss() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def sample(path: str) -> None:
    t0 = time.monotonic()
    state = {}
    with open(path, "a") as out:
        while True:
            time.sleep(15)
            objects = gc.get_objects()
            counts = collections.Counter(type(o).__name__ for o in objects)
            queues = {}
            for o in objects:
                name = type(o).__name__
                if name == "RemoteStreamTrack":
                    queues.setdefault("remote_track", []).append(o._queue.qsize())
                elif name == "RelayStreamTrack" and getattr(o, "_queue", None) is not None:
                    queues.setdefault("relay", []).append(o._queue.qsize())
                elif name == "RTCRtpReceiver":
                    q = getattr(o, "_RTCRtpReceiver__decoder_queue", None)
                    if q is not None:
                        queues.setdefault("decoder", []).append(q.qsize())
                elif name == "IOStream":  # tornado: bytes waiting for a slow browser
                    queues.setdefault("websocket_write_kib", []).append(
                        round(getattr(o, "_write_buffer_size", 0) / 1024)
                    )
                elif name == "AsyncVideoProcessTrack":
                    q = getattr(o, "_in_queue", None)
                    if q is not None:
                        queues.setdefault("process_in", []).append(q.qsize())
            big = sorted(
                (o for o in objects if type(o) in (list, dict, collections.deque, set) and len(o) > 300),
                key=len,
                reverse=True,
            )[:6]
            containers = []
            for o in big:
                owners = [type(r).__name__ for r in gc.get_referrers(o) if r is not objects][:3]
                sample = next(iter(o), None)
                containers.append([type(o).__name__, len(o), type(sample).__name__, repr(sample)[:60], owners])
            del objects, big
            traced = []
            if tracemalloc.is_tracing():
                snap = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
                if state.get("snap") is not None:
                    for d in snap.compare_to(state["snap"], "traceback")[:5]:
                        traced.append([round(d.size_diff / 2**20, 2), d.count_diff, d.traceback.format()[-8:]])
                state["snap"] = snap
            line = {
                "t": round(time.monotonic() - t0),
                "rss": round(rss()),
                "heap": heap(),
                "queues": queues,
                "threads": threading.active_count(),
                "top": counts.most_common(12),
                "containers": containers,
                "stacks": {
                    str(ident): [
                        f"{f.filename.rsplit('/', 2)[-1]}:{f.lineno} {f.name}"
                        for f in traceback.extract_stack(frame)[-7:]
                    ]
                    for ident, frame in sys._current_frames().items()
                    if ident != threading.get_ident()
                },
                "traced": traced,
            }
            out.write(json.dumps(line) + "\n")
            out.flush()


if __name__ == "__main__":
    if os.environ.get("SOAK_PROBE_TRACE"):
        tracemalloc.start(12)
    threading.Thread(target=sample, args=(os.environ["SOAK_PROBE"],), daemon=True).start()
    from streamlit.web import cli

    sys.argv = ["streamlit", *sys.argv[1:]]
    sys.exit(cli.main())
