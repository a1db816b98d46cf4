"""Face detector candidates on the same noisy webcam videos: faces counted per frame (issue 24).

    python bench/bench_detector.py [--data ../shared/data/fer2013.zip] [--per-emotion 2] [--bitrate 300000]

The videos are built as ``tests/test_soak.py`` builds its noisy one: a FER2013 test face pasted
on grey (``paste_face``), 30 frames each with new Gaussian grain (sigma 14), here also sent
through VP8 at WebRTC's start bitrate and decoded (two loops, as the fake camera loops), which is
what the server's detector sees. One video per face: the first ``--per-emotion`` test faces of six
emotions that the old detector finds on the clean frame (the soak's rule for choosing its face),
and two face-free videos (the same grain, two seeds, on the plain background).

Prints one row per candidate: % of frames with exactly one face (all one-face videos together),
how many one-face videos read one face on >= 95 % of their frames, % of frames with none on the
face-free videos, and CPU milliseconds per 640x480 frame (process time on one thread: a busy
shared machine's waiting is not counted) with the ratio to the old detector's. Then the
per-video figures of the old and the shipped detectors.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.emotion.dataset import EMOTIONS, load_split  # noqa: E402
from engine.emotion.faces import FaceDetector, FaceTracker  # noqa: E402
from engine.emotion.frames import blank_frame, noisy_frames, paste_face, through_vp8  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "fer2013.zip"
HAAR = Path(cv2.data.haarcascades)


def haar(
    cascade: str = "haarcascade_frontalface_default.xml",
    neighbours: int = 5,
    min_fraction: float = 0.0,
    weight: float = 0.0,
):
    """One cascade at 320 px wide, as the old detector ran it (``min_fraction``: smallest face as a
    share of the frame's height; ``weight``: keep boxes scoring at least this share of the best)."""
    model = cv2.CascadeClassifier(str(HAAR / cascade))

    def detect(gray):
        scale = 320 / gray.shape[1]
        small = cv2.equalizeHist(cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))
        side = max(20, int(40 * scale), int(min_fraction * small.shape[0]))
        boxes, _, scores = model.detectMultiScale3(
            small, scaleFactor=1.1, minNeighbors=neighbours, minSize=(side, side), outputRejectLevels=True
        )
        scores = np.ravel(scores)
        keep = scores >= weight * scores.max() if len(scores) else []
        return [tuple(b) for b, k in zip(boxes, keep) if k]

    return detect


def tracked(detector):
    """``detector`` followed by a :class:`FaceTracker` (a new one for each video)."""

    class Run:
        def __init__(self):
            self.tracker = FaceTracker()

        def __call__(self, gray):
            return self.tracker.update(detector(gray))

    return Run


CANDIDATES = {  # name: a detector, or a class whose instances run one video in order
    "old: default cascade, minNeighbors 5": haar(),
    "default, minNeighbors 8": haar(neighbours=8),
    "default, minNeighbors 12": haar(neighbours=12),
    "default, faces >= 1/4 of the frame height": haar(min_fraction=0.25),
    "default, boxes scoring >= 60 % of the best": haar(weight=0.6),
    "alt2 cascade, minNeighbors 3": haar("haarcascade_frontalface_alt2.xml", 3),
    "alt cascade, minNeighbors 3": haar("haarcascade_frontalface_alt.xml", 3),
    "default confirmed by alt2, merged (photos)": FaceDetector().detect,
    "old detector + tracker (2 frames to show, 2 held)": tracked(haar()),
    "shipped: confirmed by alt2 + tracker (live)": tracked(FaceDetector().detect),
}


def videos(data: Path, per_emotion: int, bitrate: int) -> dict[str, list[np.ndarray]]:
    """name -> gray frames as the server receives them; the face-free videos' names start with 'no face'."""
    test = load_split(data, "test")
    old = haar()
    out = {}
    for emotion in ("happy", "neutral", "sad", "surprise", "angry", "fear"):
        found = 0
        for i in np.flatnonzero(test.labels == EMOTIONS.index(emotion)):
            frame = paste_face(test.images[i])
            if len(old(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))) != 1:
                continue
            out[f"{emotion} #{i}"] = frame
            found += 1
            if found == per_emotion:
                break
    clips = {
        name: [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in through_vp8(noisy_frames(frame), bitrate, loops=2)]
        for name, frame in out.items()
    }
    for seed in (0, 1):
        clips[f"no face, seed {seed}"] = [
            cv2.cvtColor(f, cv2.COLOR_BGR2GRAY)
            for f in through_vp8(noisy_frames(blank_frame(), seed=seed), bitrate, loops=2)
        ]
    return clips


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--per-emotion", type=int, default=2)
    parser.add_argument("--bitrate", type=int, default=300_000)
    args = parser.parse_args()
    cv2.setNumThreads(1)  # one core per frame, as the live worker thread shares the machine
    t0 = time.perf_counter()
    clips = videos(Path(args.data), args.per_emotion, args.bitrate)
    faces = [c for c in clips if not c.startswith("no face")]
    print(
        f"{len(faces)} one-face and {len(clips) - len(faces)} face-free videos, {len(clips[faces[0]])} frames "
        f"each (VP8 at {args.bitrate // 1000} kbit/s), built in {time.perf_counter() - t0:.0f} s\n",
        flush=True,
    )
    print(
        "| candidate | frames with exactly 1 face (one-face videos) | videos at 1 face on >= 95 % of frames "
        "| frames with 0 faces (face-free) | CPU ms/frame | x old |"
    )
    print("|---|---|---|---|---|---|")
    base_ms, detail = None, {}
    for name, candidate in CANDIDATES.items():
        right, cpu, frames = {}, 0.0, 0
        for clip, gray_frames in clips.items():
            detect = candidate() if isinstance(candidate, type) else candidate
            start = time.process_time()
            counts = np.array([len(detect(g)) for g in gray_frames])
            cpu += time.process_time() - start
            frames += len(counts)
            right[clip] = float(np.mean(counts == (0 if clip.startswith("no face") else 1)))
        ms = cpu / frames * 1000
        base_ms = base_ms or ms
        ones = [right[c] for c in faces]
        zeros = np.mean([v for c, v in right.items() if c.startswith("no face")])
        print(
            f"| {name} | {np.mean(ones):.1%} | {sum(v >= 0.95 for v in ones)} of {len(ones)} | {zeros:.1%} "
            f"| {ms:.1f} | {ms / base_ms:.2f} |",
            flush=True,
        )
        detail[name] = right
    old, shipped = list(CANDIDATES)[0], list(CANDIDATES)[-1]
    print(f"\n| video | {old} | {shipped} |\n|---|---|---|")
    for clip in clips:
        print(f"| {clip} | {detail[old][clip]:.1%} | {detail[shipped][clip]:.1%} |")


if __name__ == "__main__":
    main()
