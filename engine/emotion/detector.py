"""Faces and their emotions in an image: detect, crop, classify.

* Detection: two of OpenCV's frontal-face Haar cascades from ``cv2.data`` (they ship inside
  the opencv wheel; nothing is downloaded), each box confirmed by the second
  (:class:`FaceDetector`). The frame is shrunk to at most :data:`DETECT_WIDTH` pixels wide
  for detection, and boxes scaled back. Live video also keeps boxes steady over frames
  (:class:`FaceTracker`).
* Crop: rows ``y:y+h``, columns ``x:x+w`` of the gray image (the seed swapped them),
  resized to 48x48 -- the same gray 48x48 pixels training saw, as raw 0-255 values.
* Classify: one compiled call for all faces of a frame -- the network converted to
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
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .dataset import EMOTIONS, IMAGE_SIZE
from .lite import cache_keys, compile_networks, runtime_of

log = logging.getLogger(__name__)

DETECT_WIDTH = 320
MIN_FACE = 40            # pixels, in the original image
MAX_PIXELS = 40_000_000  # 40 MP: larger inputs are refused, not decoded
MAX_DECODES = 2          # images decoded at once: each may take MAX_PIXELS x 3 bytes and more
DECODE_WAIT_S = 30.0     # how long a decode waits for a free slot before saying "busy"
CASCADE = "haarcascade_frontalface_default.xml"
CONFIRM_CASCADE = "haarcascade_frontalface_alt2.xml"  # a second opinion on each box
MERGE_OVERLAP = 0.3      # boxes overlapping more (of the smaller one) are one face

_decode_slots = threading.BoundedSemaphore(MAX_DECODES)


class EmotionInputError(ValueError):
    """An image that cannot be analysed; the message says why."""


@dataclass
class Face:
    box: tuple[int, int, int, int]  # x, y, width, height in the input image
    label: str
    confidence: float
    probabilities: dict[str, float]

    def as_dict(self) -> dict:
        return {"box": list(self.box), "label": self.label, "confidence": round(self.confidence, 4),
                "probabilities": {k: round(v, 4) for k, v in self.probabilities.items()}}


# ---------------------------------------------------------------------- input
def to_gray(image, color_order: str = "bgr") -> np.ndarray:
    """Gray uint8 image from an array (gray, BGR/RGB, BGRA/RGBA) or encoded bytes.

    Args:
        image: ``np.ndarray`` (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), or the bytes
            of a JPEG, PNG or WebP file.
        color_order: 'bgr' (OpenCV, webcam frames) or 'rgb' (PIL, browsers).
    """
    if isinstance(image, (bytes, bytearray, memoryview)):
        image, color_order = decode_image(image), "bgr"
    if not isinstance(image, np.ndarray):
        raise EmotionInputError(f"Expected an image array or image bytes, got {type(image).__name__}.")
    if image.size == 0 or image.ndim < 2 or image.shape[0] == 0 or image.shape[1] == 0:
        raise EmotionInputError(f"The image is empty (shape {image.shape}).")
    if image.shape[0] * image.shape[1] > MAX_PIXELS:
        raise EmotionInputError(f"The image is too large ({image.shape[1]}x{image.shape[0]} pixels); "
                                f"the limit is {MAX_PIXELS // 1_000_000} megapixels. Resize it first.")
    if image.dtype != np.uint8:
        if np.issubdtype(image.dtype, np.floating) and image.max(initial=0) <= 1.0:
            image = image * 255.0
        image = np.clip(image, 0, 255).astype(np.uint8)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        return np.ascontiguousarray(image)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise EmotionInputError(f"Unsupported image shape {image.shape}: use gray, 3 or 4 channels.")
    rgb_first = color_order.lower() == "rgb"
    if image.shape[2] == 4:
        code = cv2.COLOR_RGBA2GRAY if rgb_first else cv2.COLOR_BGRA2GRAY
    else:
        code = cv2.COLOR_RGB2GRAY if rgb_first else cv2.COLOR_BGR2GRAY
    return cv2.cvtColor(image, code)


def decode_image(data, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """The pixels of JPEG, PNG or WebP bytes, refused from the header alone when too large.

    The size is read from the file's header (:func:`image_header`) before OpenCV sees the
    bytes, so a small file declaring a huge image costs no memory; at most
    :data:`MAX_DECODES` images decode at once. ``cv2.IMREAD_COLOR`` (the default) gives
    BGR, turned upright as its EXIF orientation says.
    """
    data = bytes(data)
    if not data:
        raise EmotionInputError("The image is empty (0 bytes). Upload a JPEG, PNG or WebP photo.")
    kind, width, height = image_header(data)
    if width * height > MAX_PIXELS:
        raise EmotionInputError(f"The image is too large ({width}x{height} pixels); the limit is "
                                f"{MAX_PIXELS // 1_000_000} megapixels. Resize it first.")
    if not _decode_slots.acquire(timeout=DECODE_WAIT_S):
        raise EmotionInputError("Too many photos are being read at once. Try again in a moment.")
    try:
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error:  # OpenCV's own checks; the header said otherwise
        decoded = None
    finally:
        _decode_slots.release()
    if decoded is None or decoded.size == 0:
        raise _corrupt(kind)
    return decoded


def image_header(data: bytes) -> tuple[str, int, int]:
    """(format, width, height) of JPEG, PNG or WebP bytes, read from the header, nothing decoded.

    Other formats, and headers that cannot be read, raise :class:`EmotionInputError`.
    """
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        kind, size = "PNG", _png_size(data)
    elif data[:3] == b"\xff\xd8\xff":
        kind, size = "JPEG", _jpeg_size(data)
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        kind, size = "WebP", _webp_size(data)
    else:
        raise EmotionInputError("These bytes are not a JPEG, PNG or WebP image. Upload a photo "
                                "in one of those formats.")
    if size is None or min(size) <= 0:
        raise _corrupt(kind)
    return (kind, *size)


def _corrupt(kind: str) -> EmotionInputError:
    return EmotionInputError(f"The image could not be decoded (corrupt or truncated {kind} file). "
                             "Try another photo.")


def _png_size(data: bytes) -> tuple[int, int] | None:
    """From IHDR, which must be the first chunk."""
    if len(data) < 24 or data[12:16] != b"IHDR":
        return None
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


_JPEG_NO_LENGTH = {0x01, *range(0xD0, 0xD8)}   # TEM, RST0-7: markers without a segment
_JPEG_SOF = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # not DHT, JPG, DAC


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """From the first frame header (SOFn), walking the segments as libjpeg does."""
    i, n = 2, len(data)
    while True:
        i = data.find(b"\xff", i)  # bytes between segments are skipped, as libjpeg does
        if i < 0:
            return None
        while i < n and data[i] == 0xFF:  # fill bytes
            i += 1
        if i + 2 >= n:
            return None
        marker, i = data[i], i + 1
        if marker == 0x00 or marker in _JPEG_NO_LENGTH:  # 0xFF00: a stuffed byte, not a marker
            continue
        if marker in (0xD8, 0xD9, 0xDA):  # SOI again, EOI or a scan before any frame header
            return None
        if marker in _JPEG_SOF:
            if i + 7 > n:
                return None
            return int.from_bytes(data[i + 5:i + 7], "big"), int.from_bytes(data[i + 3:i + 5], "big")
        length = int.from_bytes(data[i:i + 2], "big")
        if length < 2:
            return None
        i += length


def _webp_size(data: bytes) -> tuple[int, int] | None:
    """From the first chunk: VP8 (lossy), VP8L (lossless) or VP8X (the canvas of extended files)."""
    if len(data) < 30:
        return None
    chunk, body = data[12:16], data[20:30]
    if chunk == b"VP8 " and body[3:6] == b"\x9d\x01\x2a":
        return (int.from_bytes(body[6:8], "little") & 0x3FFF,
                int.from_bytes(body[8:10], "little") & 0x3FFF)
    if chunk == b"VP8L" and body[0] == 0x2F:
        bits = int.from_bytes(body[1:5], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        return int.from_bytes(body[4:7], "little") + 1, int.from_bytes(body[7:10], "little") + 1
    return None


def crop_face(gray: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """48x48 crop of ``box`` = (x, y, w, h): rows y..y+h, columns x..x+w."""
    x, y, w, h = (int(v) for v in box)
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(gray.shape[1], x + w), min(gray.shape[0], y + h)
    if x1 <= x0 or y1 <= y0:
        raise EmotionInputError(f"Face box {box} lies outside the {gray.shape[1]}x{gray.shape[0]} image.")
    face = gray[y0:y1, x0:x1]
    interp = cv2.INTER_AREA if min(face.shape) >= IMAGE_SIZE else cv2.INTER_LINEAR
    return cv2.resize(face, (IMAGE_SIZE, IMAGE_SIZE), interpolation=interp)


# ---------------------------------------------------------------------- detection
def overlap(a, b) -> float:
    """Intersection of boxes ``a`` and ``b`` (x, y, w, h) over the smaller one's area: 1.0 when one
    lies inside the other."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return 0.0 if w <= 0 or h <= 0 else w * h / min(a[2] * a[3], b[2] * b[3])


class FaceDetector:
    """Frontal faces as (x, y, w, h) boxes in input coordinates, biggest first.

    Two of the Haar cascades that ship in ``cv2.data`` must agree: the default cascade proposes
    boxes, and the ``alt2`` cascade -- trained separately, so its false positives fall elsewhere --
    must find a face in each box's neighbourhood. A grainy, compressed webcam frame made the
    default cascade alone count one face as two or three (chin, cheek and noise patches, issue 24);
    overlapping boxes are merged into the biggest. ``bench/bench_detector.py`` measures the choice.
    """

    def __init__(self, cascade: str = CASCADE, detect_width: int = DETECT_WIDTH,
                 confirm: str | None = CONFIRM_CASCADE):
        self._names = (cascade, confirm)
        self._local = threading.local()
        self._cascades()   # a missing cascade fails here, in the constructor's thread
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
        small = gray if scale == 1.0 else cv2.resize(gray, None, fx=scale, fy=scale,
                                                     interpolation=cv2.INTER_AREA)
        small = cv2.equalizeHist(small)
        min_side = max(20, int(MIN_FACE * scale))
        cascade, confirm = self._cascades()
        found = cascade.detectMultiScale(small, scaleFactor=1.1, minNeighbors=5,
                                         minSize=(min_side, min_side))
        boxes = sorted((tuple(int(v) for v in b) for b in (found if len(found) else [])),
                       key=lambda b: -b[2] * b[3])   # biggest first: it wins the merging
        if confirm is not None:
            boxes = [b for b in boxes if self._confirmed(confirm, small, b)]
        kept: list[tuple[int, int, int, int]] = []
        for b in boxes:
            if all(overlap(b, k) < MERGE_OVERLAP for k in kept):
                kept.append(b)
        return [tuple(int(round(v / scale)) for v in b) for b in kept]

    @staticmethod
    def _confirmed(confirm: cv2.CascadeClassifier, small: np.ndarray, box) -> bool:
        """Whether the second cascade finds a face of about this size around ``box``."""
        x, y, w, h = box
        m = int(w * 0.3)
        x0, y0 = max(0, x - m), max(0, y - m)
        region = small[y0:y + h + m, x0:x + w + m]
        lo, hi = max(20, int(w * 0.6)), int(w * 1.6)
        if min(region.shape) < lo:
            return False
        found = confirm.detectMultiScale(region, scaleFactor=1.1, minNeighbors=3,
                                         minSize=(lo, lo), maxSize=(hi, hi))
        return any(overlap((x - x0, y - y0, w, h), tuple(f)) >= 0.5 for f in found)


class FaceTracker:
    """Steady boxes over a video's frames: a face is shown once found in ``confirm`` frames in a row
    at about the same place, and kept (its last box) through up to ``hold`` frames it is missed.

    A false positive of one frame never shows; a real face missed in one grainy frame does not
    blink out (issue 24: "faces in view" must read 1, frame after frame, for one face).
    """

    def __init__(self, confirm: int = 2, hold: int = 2, same: float = 0.5):
        self.confirm, self.hold, self.same = confirm, hold, same
        self._tracks: list[dict] = []   # box, streak (frames found in a row), misses, shown
        self._lock = threading.Lock()   # a restarted stream's worker may overlap the old one's

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
                self._tracks.append({"box": tuple(box), "streak": 1, "misses": 0,
                                     "shown": self.confirm <= 1})
        for t in free:
            t["streak"], t["misses"] = 0, t["misses"] + 1
        self._tracks = [t for t in self._tracks if t["misses"] == 0 or (t["shown"] and t["misses"] <= self.hold)]
        return sorted((t["box"] for t in self._tracks if t["shown"]), key=lambda b: -b[2] * b[3])


def _load_cascade(name: str) -> cv2.CascadeClassifier:
    path = Path(cv2.data.haarcascades) / name
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        raise RuntimeError(f"OpenCV cascade {path} could not be loaded; reinstall "
                           "opencv-python-headless (pinned in requirements.txt).")
    return cascade


# ---------------------------------------------------------------------- classification
class EmotionRecognizer:
    """The shipped CNN behind a compiled call, plus the face detector."""

    def __init__(self, model, labels: tuple[str, ...] = EMOTIONS, detector: FaceDetector | None = None,
                 model_file: Path | None = None):
        """``model_file``: the file ``model`` was loaded from (None: built in memory); its
        networks' LiteRT conversions are then cached on disk (:mod:`engine.emotion.lite`)."""
        from .ensemble import members_of

        self.model = model
        self.labels = tuple(labels)
        self.detector = detector or FaceDetector()
        # An ensemble runs as its networks, each compiled on its own (live video may take them
        # in turn), their scores averaged here as the ensemble's last layer does: one conversion
        # per network instead of one more for the whole.
        members = members_of(model)
        self._member_forward = compile_networks(members,
                                                cache_keys(model_file, len(members)) if model_file else None)
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
    def n_members(self) -> int:
        """Networks in the model: 1, or the size of an ensemble."""
        return len(self._member_forward)

    @classmethod
    def load(cls, model_dir: str | Path | None = None) -> "EmotionRecognizer":
        from ..settings import get_settings
        from .train import METRICS_FILE, MODEL_FILE
        folder = Path(model_dir) if model_dir else get_settings().emotion_model_dir
        path = folder / MODEL_FILE
        if not path.exists():
            raise FileNotFoundError(f"No emotion model at {path}. It ships with the repository; "
                                    "restore it with git, or train one with "
                                    "`python -m engine.emotion train --data fer2013.zip`.")
        from .model_file import load_model
        try:
            model = load_model(path)
        except Exception as exc:  # Keras raises many types for a damaged archive
            raise RuntimeError(f"{path} could not be loaded ({type(exc).__name__}: {exc}). "
                               "Restore it with git or retrain.") from exc
        labels = EMOTIONS
        metrics = folder / METRICS_FILE
        try:
            labels = tuple(json.loads(metrics.read_text()).get("labels", EMOTIONS))
        except FileNotFoundError:
            pass
        except (ValueError, AttributeError) as exc:
            # Training always writes the outputs in EMOTIONS order; the file only documents it.
            logging.getLogger(__name__).warning("%s unreadable (%s): using the standard labels",
                                                metrics, exc)
        if len(labels) != model.output_shape[-1]:
            raise RuntimeError(f"{metrics} lists {len(labels)} labels but {path} has "
                               f"{model.output_shape[-1]} outputs. Restore both files with git.")
        return cls(model, labels, model_file=path)

    def classify(self, faces: np.ndarray, flip_average: bool = True,
                 member: int | None = None) -> np.ndarray:
        """(n, 48, 48) uint8 faces -> (n, 7) probabilities.

        ``flip_average`` averages each face with its mirror image (+1.3 points of test
        accuracy, twice the compute); live video turns it off and smooths over frames.
        ``member`` k runs only the k-th network of an ensemble (``k % n_members``);
        None runs them all.
        """
        if len(faces) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        forward = self._forward if member is None else \
            self._member_forward[member % len(self._member_forward)]
        x = faces.astype(np.float32)[..., None]
        if not flip_average:
            return forward(x)
        both = np.concatenate([x, x[:, :, ::-1]], axis=0)
        probs = forward(both)
        return (probs[: len(x)] + probs[len(x):]) / 2

    def analyze(self, image, color_order: str = "bgr", max_faces: int = 10,
                flip_average: bool = True, member: int | None = None,
                tracker: FaceTracker | None = None) -> list[Face]:
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
            faces.append(Face(box=box, label=self.labels[k], confidence=float(p[k]),
                              probabilities={lab: float(v) for lab, v in zip(self.labels, p)}))
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
