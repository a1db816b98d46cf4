"""Where the faces are: frontal faces found by two of OpenCV's Haar cascades that must agree
(:class:`FaceDetector`), and kept steady over a video's frames (:class:`FaceTracker`).

The cascades ship inside the opencv wheel (``cv2.data``); nothing is downloaded.
"""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np

DETECT_WIDTH = 320
MIN_FACE = 40  # pixels, in the original image
CASCADE = "haarcascade_frontalface_default.xml"
CONFIRM_CASCADE = "haarcascade_frontalface_alt2.xml"  # a second opinion on each box
MERGE_OVERLAP = 0.3  # boxes overlapping more (of the smaller one) are one face


def overlap(a, b) -> float:
    """Intersection of boxes ``a`` and ``b`` (x, y, w, h) over the smaller one's area: 1.0 when one
    lies inside the other."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return 0.0 if w <= 0 or h <= 0 else w * h / min(a[2] * a[3], b[2] * b[3])


def under_chin(b, face) -> bool:
    """Whether box ``b`` is a smaller box hanging from ``face``'s lower half: its chin and neck, which
    both cascades took for a second face on a heavily compressed frame (320x240 at 50 kbit/s, what
    WebRTC sends from a busy machine). A real face right under another's chin is rare enough to lose."""
    centre_x = b[0] + b[2] / 2
    return (
        b[2] < face[2]
        and face[0] <= centre_x <= face[0] + face[2]
        and face[1] + face[3] / 2 <= b[1] <= face[1] + face[3] * 1.25
    )


class FaceDetector:
    """Frontal faces as (x, y, w, h) boxes in input coordinates, biggest first.

    Two of the Haar cascades that ship in ``cv2.data`` must agree: the default cascade proposes
    boxes, and the ``alt2`` cascade -- trained separately, so its false positives fall elsewhere --
    must find a face in each box's neighbourhood. A grainy, compressed webcam frame made the
    default cascade alone count one face as two or three (chin, cheek and noise patches, issue 24);
    overlapping boxes are merged into the biggest, and a smaller box under a face's chin is dropped. ``bench/bench_detector.py`` measures the choice.
    """

    def __init__(self, cascade: str = CASCADE, detect_width: int = DETECT_WIDTH, confirm: str | None = CONFIRM_CASCADE):
        self._names = (cascade, confirm)
        self._local = threading.local()
        self._cascades()  # a missing cascade fails here, in the constructor's thread
        self.detect_width = detect_width

    def _cascades(self) -> tuple[cv2.CascadeClassifier, cv2.CascadeClassifier | None]:
        """This thread's own cascades. One CascadeClassifier is not safe to call from two threads:
        two live videos on one server (two WebRTC worker threads) crashed it with
        ``vector::_M_range_check`` and stopped a stream. A cascade loads in a few milliseconds;
        a thread's copy goes with the thread."""
        local = self._local
        if not hasattr(local, "cascades"):
            main, confirm = self._names
            local.cascades = (_load_cascade(main), _load_cascade(confirm) if confirm else None)
        return local.cascades

    def detect(self, gray: np.ndarray) -> list[tuple[int, int, int, int]]:
        scale = min(1.0, self.detect_width / gray.shape[1])
        small = gray if scale == 1.0 else cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        small = cv2.equalizeHist(small)
        min_side = max(20, int(MIN_FACE * scale))
        cascade, confirm = self._cascades()
        found = cascade.detectMultiScale(small, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side))
        boxes = sorted(
            (tuple(int(v) for v in b) for b in (found if len(found) else [])), key=lambda b: -b[2] * b[3]
        )  # biggest first: it wins the merging
        if confirm is not None:
            boxes = [b for b in boxes if self._confirmed(confirm, small, b)]
        kept: list[tuple[int, int, int, int]] = []
        for b in boxes:
            if all(overlap(b, k) < MERGE_OVERLAP and not under_chin(b, k) for k in kept):
                kept.append(b)
        return [tuple(int(round(v / scale)) for v in b) for b in kept]

    @staticmethod
    def _confirmed(confirm: cv2.CascadeClassifier, small: np.ndarray, box) -> bool:
        """Whether the second cascade finds a face of about this size around ``box``."""
        x, y, w, h = box
        m = int(w * 0.3)
        x0, y0 = max(0, x - m), max(0, y - m)
        region = small[y0 : y + h + m, x0 : x + w + m]
        lo, hi = max(20, int(w * 0.6)), int(w * 1.6)
        if min(region.shape) < lo:
            return False
        found = confirm.detectMultiScale(region, scaleFactor=1.1, minNeighbors=3, minSize=(lo, lo), maxSize=(hi, hi))
        return any(overlap((x - x0, y - y0, w, h), tuple(f)) >= 0.5 for f in found)


class FaceTracker:
    """Steady boxes over a video's frames: a face is shown once found in ``confirm`` frames in a row
    at about the same place, and kept (its last box) through up to ``hold`` frames it is missed.

    A false positive of one frame never shows; a real face missed in one grainy frame does not
    blink out (issue 24: "faces in view" must read 1, frame after frame, for one face).
    """

    def __init__(self, confirm: int = 2, hold: int = 2, same: float = 0.5):
        self.confirm, self.hold, self.same = confirm, hold, same
        self._tracks: list[dict] = []  # box, streak (frames found in a row), misses, shown
        self._lock = threading.Lock()  # a restarted stream's worker may overlap the old one's

    def update(self, boxes) -> list[tuple[int, int, int, int]]:
        """This frame's boxes (biggest first) -> the boxes to show, biggest first."""
        with self._lock:
            return self._update(boxes)

    def _update(self, boxes) -> list[tuple[int, int, int, int]]:
        free = list(self._tracks)
        for box in boxes:
            match = max(free, key=lambda t: overlap(box, t["box"]), default=None)
            if match is not None and overlap(box, match["box"]) >= self.same:
                free.remove(match)
                match.update(box=tuple(box), streak=match["streak"] + 1, misses=0)
                match["shown"] |= match["streak"] >= self.confirm
            else:
                self._tracks.append({"box": tuple(box), "streak": 1, "misses": 0, "shown": self.confirm <= 1})
        for t in free:
            t["streak"], t["misses"] = 0, t["misses"] + 1
        self._tracks = [t for t in self._tracks if t["misses"] == 0 or (t["shown"] and t["misses"] <= self.hold)]
        return sorted((t["box"] for t in self._tracks if t["shown"]), key=lambda b: -b[2] * b[3])


def _load_cascade(name: str) -> cv2.CascadeClassifier:
    path = Path(cv2.data.haarcascades) / name
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        raise RuntimeError(
            f"OpenCV cascade {path} could not be loaded; reinstall opencv-python-headless (pinned in requirements.txt)."
        )
    return cascade
