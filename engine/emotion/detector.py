"""Faces and their emotions in an image: detect, crop, classify (:class:`EmotionRecognizer`).

* Detection (:mod:`engine.emotion.faces`): two of OpenCV's frontal-face Haar cascades from
  ``cv2.data`` (they ship inside the opencv wheel; nothing is downloaded), each box confirmed
  by the second (:class:`~engine.emotion.faces.FaceDetector`). The frame is shrunk to at most
  ``DETECT_WIDTH`` pixels wide for detection, and boxes scaled back. Live video also keeps
  boxes steady over frames (:class:`~engine.emotion.faces.FaceTracker`).
* Crop (:mod:`engine.emotion.images`, which also decodes and checks photos): rows ``y:y+h``,
  columns ``x:x+w`` of the gray image (the seed swapped them), resized to 48x48 -- the same
  gray 48x48 pixels training saw, as raw 0-255 values.
* Classify (here): one compiled call for all faces of a frame -- the network converted to
  LiteRT and run by its XNNPACK kernels (:mod:`engine.emotion.lite`; a ``tf.function``
  when that fails or ``EMOTION_RUNTIME=tensorflow``) -- each face averaged with its
  mirror image (as in evaluation). The model may be an ensemble
  (:mod:`engine.emotion.ensemble`); each of its networks can run on its own too,
  for live video's one network per frame.

Example:
    >>> recognizer = EmotionRecognizer.load()                     # doctest: +SKIP
    >>> [f.label for f in recognizer.analyze(open("me.jpg", "rb").read())]  # doctest: +SKIP
    ['happy']
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .dataset import EMOTIONS, IMAGE_SIZE
from .faces import FaceDetector, FaceTracker
from .images import crop_face, to_gray
from .lite import cache_keys, cached_networks, compile_networks, record_networks, runtime_of

log = logging.getLogger(__name__)


@dataclass
class Face:
    box: tuple[int, int, int, int]  # x, y, width, height in the input image
    label: str
    confidence: float
    probabilities: dict[str, float]

    def as_dict(self) -> dict:
        return {
            "box": list(self.box),
            "label": self.label,
            "confidence": round(self.confidence, 4),
            "probabilities": {k: round(v, 4) for k, v in self.probabilities.items()},
        }


class EmotionRecognizer:
    """The shipped CNN behind a compiled call, plus the face detector."""

    def __init__(
        self,
        model,
        labels: tuple[str, ...] = EMOTIONS,
        detector: FaceDetector | None = None,
        model_file: Path | None = None,
        networks: list | None = None,
    ):
        """``model_file``: the file ``model`` was loaded from (None: built in memory); its
        networks' LiteRT conversions are then cached on disk (:mod:`engine.emotion.lite`).
        ``networks``: the compiled networks themselves (``model`` None), as :meth:`load` reads
        them from that cache without Keras."""
        self._model, self._model_file = model, model_file
        self.labels = tuple(labels)
        self.detector = detector or FaceDetector()
        if networks is not None:
            self._member_forward = list(networks)
        else:
            from .ensemble import members_of

            # An ensemble runs as its networks, each compiled on its own (live video may take them
            # in turn), their scores averaged here as the ensemble's last layer does: one conversion
            # per network instead of one more for the whole.
            members = members_of(model)
            keys = cache_keys(model_file, len(members)) if model_file else None
            self._member_forward = compile_networks(members, keys)
            if model_file and all(runtime_of(f) == "litert" for f in self._member_forward):
                record_networks(model_file, [m.name for m in members], int(model.output_shape[-1]))
        if len(self._member_forward) == 1:
            self._forward = self._member_forward[0]
        else:
            nets = self._member_forward
            self._forward = lambda x: np.mean([net(x) for net in nets], axis=0)
        self.runtime = runtime_of(self._member_forward[0])
        blank = np.zeros((1, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
        self.classify(blank)  # plan the buffers now, not on frame 1
        for k in range(1, len(self._member_forward)):
            self.classify(blank, False, member=k)

    @property
    def model(self):
        """The Keras model (loaded now from its file when the networks came from the LiteRT cache:
        serving never needs it, evaluation and benchmarks may)."""
        if self._model is None:
            from .model_file import load_model

            self._model = load_model(self._model_file)
        return self._model

    @property
    def n_members(self) -> int:
        """Networks in the model: 1, or the size of an ensemble."""
        return len(self._member_forward)

    @classmethod
    def load(cls, model_dir: str | Path | None = None) -> "EmotionRecognizer":
        from ..settings import get_settings
        from .runs import METRICS_FILE, MODEL_FILE

        folder = Path(model_dir) if model_dir else get_settings().emotion_model_dir
        path = folder / MODEL_FILE
        if not path.exists():
            raise FileNotFoundError(
                f"No emotion model at {path}. It ships with the repository; "
                "restore it with git, or train one with "
                "`python -m engine.emotion train --data fer2013.zip`."
            )
        labels = EMOTIONS
        metrics = folder / METRICS_FILE
        try:
            labels = tuple(json.loads(metrics.read_text()).get("labels", EMOTIONS))
        except FileNotFoundError:
            pass
        except (ValueError, AttributeError) as exc:
            # Training always writes the outputs in EMOTIONS order; the file only documents it.
            logging.getLogger(__name__).warning("%s unreadable (%s): using the standard labels", metrics, exc)

        def check(outputs: int) -> None:
            if len(labels) != outputs:
                raise RuntimeError(
                    f"{metrics} lists {len(labels)} labels but {path} has {outputs} outputs. "
                    "Restore both files with git."
                )

        if get_settings().emotion_runtime == "litert":
            cached = cached_networks(path)  # no Keras, no TensorFlow: the conversions of an earlier load
            if cached is not None:
                networks, outputs = cached
                check(outputs)
                return cls(None, labels, model_file=path, networks=networks)
        from .model_file import load_model

        try:
            model = load_model(path)
        except Exception as exc:  # Keras raises many types for a damaged archive
            raise RuntimeError(
                f"{path} could not be loaded ({type(exc).__name__}: {exc}). Restore it with git or retrain."
            ) from exc
        check(model.output_shape[-1])
        return cls(model, labels, model_file=path)

    def classify(self, faces: np.ndarray, flip_average: bool = True, member: int | None = None) -> np.ndarray:
        """(n, 48, 48) uint8 faces -> (n, 7) probabilities.

        ``flip_average`` averages each face with its mirror image (+1.3 points of test
        accuracy, twice the compute); live video turns it off and smooths over frames.
        ``member`` k runs only the k-th network of an ensemble (``k % n_members``);
        None runs them all.
        """
        if len(faces) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        forward = self._forward if member is None else self._member_forward[member % len(self._member_forward)]
        x = faces.astype(np.float32)[..., None]
        if not flip_average:
            return forward(x)
        both = np.concatenate([x, x[:, :, ::-1]], axis=0)
        probs = forward(both)
        return (probs[: len(x)] + probs[len(x) :]) / 2

    def analyze(
        self,
        image,
        color_order: str = "bgr",
        max_faces: int = 10,
        flip_average: bool = True,
        member: int | None = None,
        tracker: FaceTracker | None = None,
    ) -> list[Face]:
        """Every face in ``image`` with its box, label and the 7 probabilities.

        No face is an empty list, not an error. ``flip_average`` and ``member``: see
        :meth:`classify`. ``tracker``: a video's frames, in order, keep their boxes steady.
        """
        gray = to_gray(image, color_order)
        boxes = self.detector.detect(gray)
        if tracker is not None:
            boxes = tracker.update(boxes)
        boxes = boxes[:max_faces]
        if not boxes:
            return []
        probs = self.classify(np.stack([crop_face(gray, b) for b in boxes]), flip_average, member)
        faces = []
        for box, p in zip(boxes, probs):
            k = int(np.argmax(p))
            faces.append(
                Face(
                    box=box,
                    label=self.labels[k],
                    confidence=float(p[k]),
                    probabilities={lab: float(v) for lab, v in zip(self.labels, p)},
                )
            )
        return faces


def draw_faces(frame_bgr: np.ndarray, faces: list[Face]) -> np.ndarray:
    """Boxes and 'label 87%' captions drawn on a copy of a BGR frame."""
    out = frame_bgr.copy()
    for f in faces:
        x, y, w, h = f.box
        cv2.rectangle(out, (x, y), (x + w, y + h), (80, 220, 80), 2)
        text = f"{f.label} {f.confidence:.0%}"
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.6, 2)
        ty = max(th + 4, y - 6)
        cv2.rectangle(out, (x, ty - th - 4), (x + tw + 4, ty + 2), (80, 220, 80), -1)
        cv2.putText(out, text, (x + 2, ty - 2), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 2)
    return out
