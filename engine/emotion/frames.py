"""Synthetic camera frames from dataset faces, for tests, benchmarks and a fake webcam.

Chromium's fake camera plays a Y4M file (``--use-file-for-fake-video-capture``);
:func:`write_y4m` writes one (4:2:0, the format Chromium reads) from frames.
:func:`noisy_frames` gives a webcam's grain, and :func:`through_vp8` what the server
receives of it after WebRTC's VP8 codec (where the face detector's false positives come from).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .dataset import EMOTIONS, load_split
from .faces import FaceDetector

FRAME_W, FRAME_H = 640, 480


def paste_face(face48: np.ndarray, size: int = 240, width: int = FRAME_W, height: int = FRAME_H) -> np.ndarray:
    """A BGR frame with the 48x48 face enlarged in the middle, on a plain background.

    FER2013 crops are tight, so a replicated border gives the detector the bit of
    head and background context a real frame has.
    """
    pad = 8
    framed = cv2.copyMakeBorder(face48, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    big = cv2.resize(framed, (size, size), interpolation=cv2.INTER_CUBIC)
    frame = np.full((height, width), 110, np.uint8)
    y, x = (height - size) // 2, (width - size) // 2
    frame[y : y + size, x : x + size] = big
    return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)


def blank_frame(width: int = FRAME_W, height: int = FRAME_H) -> np.ndarray:
    """A face-free BGR frame: the plain background of :func:`paste_face`."""
    return np.full((height, width, 3), 110, np.uint8)


def noisy_frames(frame: np.ndarray, n: int = 30, sigma: float = 14.0, seed: int = 0) -> list[np.ndarray]:
    """``n`` copies of ``frame`` with a new Gaussian grain on each, as a webcam in dim light."""
    rng = np.random.default_rng(seed)
    return [
        np.clip(frame.astype(np.int16) + rng.normal(0, sigma, frame.shape), 0, 255).astype(np.uint8) for _ in range(n)
    ]


def through_vp8(frames: list[np.ndarray], bitrate: int = 300_000, fps: int = 15, loops: int = 1) -> list[np.ndarray]:
    """BGR frames after a VP8 encode and decode at ``bitrate`` (Chromium's WebRTC starts at 300 kbit/s),
    played ``loops`` times in a row as the fake camera loops its file."""
    import fractions

    import av  # PyAV, installed with streamlit-webrtc; only tests and benchmarks come here

    encoder = av.CodecContext.create("libvpx", "w")
    encoder.width, encoder.height = frames[0].shape[1], frames[0].shape[0]
    encoder.pix_fmt, encoder.bit_rate = "yuv420p", bitrate
    encoder.framerate, encoder.time_base = fractions.Fraction(fps, 1), fractions.Fraction(1, fps)
    encoder.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    decoder = av.CodecContext.create("libvpx", "r")
    out = []
    for pts, frame in enumerate(f for _ in range(loops) for f in frames):
        picture = av.VideoFrame.from_ndarray(frame, format="bgr24").reformat(format="yuv420p")
        picture.pts = pts
        for packet in encoder.encode(picture):
            out += [d.to_ndarray(format="bgr24") for d in decoder.decode(packet)]
    for packet in encoder.encode(None):  # flush
        out += [d.to_ndarray(format="bgr24") for d in decoder.decode(packet)]
    return out


def face_frame(fer_path, emotion: str, recognizer=None, split: str = "test", max_tries: int = 400) -> np.ndarray:
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
