"""Emotion benchmark: test accuracy, per-face CNN latency, end-to-end 640x480 frame latency.

    python bench/bench_emotion.py [--data ../shared/data/fer2013.zip] [--model models/emotion]

For an ensemble, live video runs one network per frame (in turn) and photos run all of
them on the face and its mirror; both are timed. The networks run through LiteRT
(``engine/emotion/lite.py``); the first case is timed through a ``tf.function`` too,
in the same run, for the ratio.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.emotion.cli import evaluate  # noqa: E402
from engine.emotion.detector import EmotionRecognizer  # noqa: E402
from engine.emotion.frames import face_frame  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "fer2013.zip"


def timed(fn, n):
    fn()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=os.environ.get("FER2013_DATA", str(DEFAULT_DATA)))
    parser.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    args = parser.parse_args()
    recognizer = EmotionRecognizer.load(args.model)
    nets = recognizer.n_members
    result = evaluate(recognizer, args.data)
    print(
        f"test accuracy {result['accuracy']:.4f} on {result['n_images']} FER2013 test images "
        f"(flip-averaged, as served; {nets} network{'s' if nets > 1 else ''})"
    )
    for name, c in result["per_class"].items():
        print(f"  {name:>9}: precision {c['precision']:.3f}  recall {c['recall']:.3f}  n={c['support']}")
    one = np.zeros((1, 48, 48), np.uint8)
    turn = iter(range(10**9))
    live = {"flip_average": False, "member": None}
    cases = [("one pass", {"flip_average": False}), ("face + mirror (photos)", {})]
    if nets > 1:  # live video: one network per frame, in turn
        live = {"flip_average": False, "member": "turn"}
        cases = [
            ("one pass of one network (live video)", live),
            (f"one pass of all {nets} networks", {"flip_average": False}),
        ] + cases[1:]
    else:
        cases[0] = ("one pass (live video)", live)

    def args_of(kw):
        return {**kw, "member": next(turn)} if kw.get("member") == "turn" else kw

    first = None
    for what, kw in cases:
        p50, p95 = timed(lambda: recognizer.classify(one, **args_of(kw)), 300)
        first = first or p50
        print(f"CNN per face, {what}: p50 {p50:.2f} ms, p95 {p95:.2f} ms ({recognizer.runtime})")
    if recognizer.runtime == "litert":  # the same call through TensorFlow, in this run: the ratio
        os.environ["EMOTION_RUNTIME"] = "tensorflow"
        try:
            graph = EmotionRecognizer(recognizer.model, recognizer.labels)
        finally:
            del os.environ["EMOTION_RUNTIME"]
        p50, p95 = timed(lambda: graph.classify(one, **args_of(cases[0][1])), 300)
        print(
            f"CNN per face, {cases[0][0]} through a tf.function instead: p50 {p50:.2f} ms, "
            f"p95 {p95:.2f} ms ({p50 / first:.1f}x the LiteRT time)"
        )
    frame = face_frame(args.data, "happy")
    d50, d95 = timed(lambda: recognizer.detector.detect(frame[:, :, 0]), 100)
    print(f"face detection, 640x480: p50 {d50:.2f} ms, p95 {d95:.2f} ms")
    for what, kw in (("live", live), ("photo", {})):
        e50, e95 = timed(lambda: recognizer.analyze(frame, **args_of(kw)), 100)
        print(
            f"end to end ({what}), 640x480 frame with one face: p50 {e50:.2f} ms, p95 {e95:.2f} ms "
            f"= {1000 / e50:.0f} frames/s at p50, {1000 / e95:.0f} at p95"
        )


if __name__ == "__main__":
    main()
