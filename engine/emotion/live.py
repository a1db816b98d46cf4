"""Live video: per-frame analysis, smoothing over frames, results handed to the UI thread.

The WebRTC frame callback runs in a worker thread. It must not touch the UI, so
:class:`FrameProcessor` annotates the frame and puts a :class:`LiveReading` on a
small thread-safe queue that the page drains. Frames are never stored or logged.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass

import numpy as np

from .dataset import EMOTIONS
from .detector import EmotionRecognizer, draw_faces
from .faces import FaceTracker

log = logging.getLogger(__name__)


class EmotionSmoother:
    """Exponential moving average of the probability vectors of recent frames.

    ``alpha`` is the weight of the newest frame: 0.3 settles within ~10 frames
    (under a second at 15 fps) and ignores one-frame flickers.
    """

    def __init__(self, alpha: float = 0.3, labels=EMOTIONS):
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha={alpha}: must be in (0, 1].")
        self.alpha, self.labels = alpha, tuple(labels)
        self.value: np.ndarray | None = None

    def update(self, probs) -> np.ndarray:
        p = np.asarray(probs, dtype=float)
        self.value = p.copy() if self.value is None else self.alpha * p + (1 - self.alpha) * self.value
        return self.value

    @property
    def label(self) -> str | None:
        return None if self.value is None else self.labels[int(np.argmax(self.value))]

    def as_dict(self) -> dict[str, float]:
        return {} if self.value is None else dict(zip(self.labels, self.value.round(4).tolist()))


@dataclass
class LiveReading:
    probabilities: dict[str, float]  # smoothed
    label: str | None  # argmax of the smoothed probabilities
    faces: int  # faces in the latest frame
    fps: float  # frames processed per second, recent average
    frames: int  # frames processed so far


class FrameProcessor:
    """Frame -> annotated frame, plus a reading on ``self.results`` (newest only)."""

    def __init__(self, recognizer: EmotionRecognizer, alpha: float = 0.3):
        self.recognizer = recognizer
        self.smoother = EmotionSmoother(alpha, recognizer.labels)
        # NOTE: maxsize=1 -- the page only wants the latest reading, never a backlog.
        self.results: queue.Queue[LiveReading] = queue.Queue(maxsize=1)
        self._lock = threading.Lock()
        self._times: list[float] = []
        self.frames = 0
        self.errors = 0  # frames whose analysis raised (logged; the stream goes on)
        self.tracker = FaceTracker()  # one video: its boxes stay steady from frame to frame

    def process(self, frame_bgr: np.ndarray) -> np.ndarray:
        # One pass of one network per face: no mirror averaging, and an ensemble's networks
        # take turns frame by frame; the EMA over frames averages them.
        with self._lock:
            turn = self.frames
            self.frames += 1
        try:
            faces = self.recognizer.analyze(
                frame_bgr, color_order="bgr", max_faces=5, flip_average=False, member=turn, tracker=self.tracker
            )
        except Exception:  # one bad frame must not end the stream (its worker thread would die)
            self.errors += 1
            if self.errors == 1 or self.errors % 100 == 0:
                log.exception("live frame %d could not be read (%d such frames so far)", turn, self.errors)
            faces = []
        with self._lock:
            now = time.perf_counter()
            self._times = [t for t in self._times if now - t < 3.0] + [now]
            fps = (len(self._times) - 1) / (self._times[-1] - self._times[0]) if len(self._times) > 1 else 0.0
            if faces:  # the biggest face drives the mood
                self.smoother.update([faces[0].probabilities[k] for k in self.recognizer.labels])
            reading = LiveReading(self.smoother.as_dict(), self.smoother.label, len(faces), round(fps, 1), self.frames)
        try:
            self.results.get_nowait()
        except queue.Empty:
            pass
        try:
            self.results.put_nowait(reading)
        except queue.Full:
            pass
        return draw_faces(frame_bgr, faces)

    def latest(self) -> LiveReading | None:
        try:
            return self.results.get_nowait()
        except queue.Empty:
            return None
