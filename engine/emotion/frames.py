"""Synthetic camera frames from dataset faces, for tests, benchmarks and a fake webcam.

Chromium's fake camera plays a Y4M file (``--use-file-for-fake-video-capture``);
:func:`write_y4m` writes one (4:2:0, the format Chromium reads) from frames.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .dataset import EMOTIONS, load_split
from .detector import FaceDetector

FRAME_W, FRAME_H = 640, 480


def paste_face(face48: np.ndarray, size: int = 240, width: int = FRAME_W,
               height: int = FRAME_H) -> np.ndarray:
    """A BGR frame with the 48x48 face enlarged in the middle, on a plain background.

    FER2013 crops are tight, so a replicated border gives the detector the bit of
    head and background context a real frame has.
    """
    pad = 8
    framed = cv2.copyMakeBorder(face48, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    big = cv2.resize(framed, (size, size), interpolation=cv2.INTER_CUBIC)
    frame = np.full((height, width), 110, np.uint8)
    y, x = (height - size) // 2, (width - size) // 2
    frame[y:y + size, x:x + size] = big
    return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)


def face_frame(fer_path, emotion: str, recognizer=None, split: str = "test",
               max_tries: int = 400) -> np.ndarray:
    """The first dataset face of ``emotion`` that the detector finds once pasted.

    With ``recognizer``, also require that it reads the face as ``emotion``
    (for end-to-end tests that check the label shown on a page).
    """
    data = load_split(fer_path, split)
    detector = FaceDetector()
    wanted = EMOTIONS.index(emotion)
    for img in data.images[data.labels == wanted][:max_tries]:
        frame = paste_face(img)
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        if len(detector.detect(gray)) != 1:
            continue
        if recognizer is not None:
            faces = recognizer.analyze(frame)
            if not faces or faces[0].label != emotion or faces[0].confidence < 0.6:
                continue
        return frame
    raise LookupError(f"No {emotion} face in {fer_path} was detected in {max_tries} tries.")


def write_y4m(path: str | Path, frames: list[np.ndarray], fps: int = 15, repeat: int = 1) -> Path:
    """Write BGR frames (same size, even dimensions) as a 4:2:0 Y4M video."""
    path = Path(path)
    h, w = frames[0].shape[:2]
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(repeat):
            for frame in frames:
                yuv = cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420)  # Y plane, then U, then V
                out.write(b"FRAME\n")
                out.write(yuv.tobytes())
    return path
