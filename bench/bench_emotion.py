"""Emotion benchmark: test accuracy, per-face CNN latency, end-to-end 640x480 frame latency.

    python bench/bench_emotion.py [--data ../shared/data/fer2013.zip] [--model models/emotion]

Photos run all of an ensemble's networks on the face and its mirror. Live video runs
the small network distilled from the ensemble (``models/emotion/live``) once per
face when the model has one, else the ensemble's networks one per frame, in turn.
Every way is timed; the live network's own test accuracy (one pass) is printed too.
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
from engine.emotion.dataset import load_split  # noqa: E402
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
    print(f"test accuracy {result['accuracy']:.4f} on {result['n_images']} FER2013 test images "
          f"(flip-averaged, as served; {nets} network{'s' if nets > 1 else ''})")
    for name, c in result["per_class"].items():
        print(f"  {name:>9}: precision {c['precision']:.3f}  recall {c['recall']:.3f}  n={c['support']}")
    one = np.zeros((1, 48, 48), np.uint8)
    turn = iter(range(10**9))
    live = {"flip_average": False, "member": None}
    cases = [("one pass", {"flip_average": False}), ("face + mirror (photos)", {})]
    if nets > 1:  # without a live network: one network per frame, in turn
        in_turn = {"flip_average": False, "member": "turn"}
        cases = [("one pass of one network" + ("" if recognizer.has_live_network else " (live video)"),
                  in_turn),
                 (f"one pass of all {nets} networks", {"flip_average": False})] + cases[1:]
        live = in_turn
    else:
        cases[0] = ("one pass" + ("" if recognizer.has_live_network else " (live video)"), live)
    if recognizer.has_live_network:
        live = {"flip_average": False, "live": True}
        cases.insert(0, (f"one pass of the live network, {recognizer.live_model.count_params() / 1e6:.2f} M "
                         "parameters (live video)", live))
        split = load_split(args.data, "test")
        probs = np.concatenate([recognizer.classify(split.images[i:i + 512], **live)
                                for i in range(0, len(split), 512)])
        accuracy = float((probs.argmax(1) == split.labels).mean())
        single = np.concatenate([recognizer.classify(split.images[i:i + 512], False, member=0)
                                 for i in range(0, len(split), 512)])
        print(f"live network: test accuracy {accuracy:.4f} in one pass (one pass of the first "
              f"ensemble network: {float((single.argmax(1) == split.labels).mean()):.4f})")

    def args_of(kw):
        return {**kw, "member": next(turn)} if kw.get("member") == "turn" else kw

    for what, kw in cases:
        p50, p95 = timed(lambda: recognizer.classify(one, **args_of(kw)), 300)
        print(f"CNN per face, {what}: p50 {p50:.2f} ms, p95 {p95:.2f} ms")
    frame = face_frame(args.data, "happy")
    d50, d95 = timed(lambda: recognizer.detector.detect(frame[:, :, 0]), 100)
    print(f"face detection, 640x480: p50 {d50:.2f} ms, p95 {d95:.2f} ms")
    for what, kw in (("live", live), ("photo", {})):
        e50, e95 = timed(lambda: recognizer.analyze(frame, **args_of(kw)), 100)
        print(f"end to end ({what}), 640x480 frame with one face: p50 {e50:.2f} ms, p95 {e95:.2f} ms "
              f"= {1000 / e50:.0f} frames/s at p50, {1000 / e95:.0f} at p95")


if __name__ == "__main__":
    main()
