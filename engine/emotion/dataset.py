"""Read FER2013 in either of its two public layouts.

* Kaggle's image folders: ``train/<emotion>/*.jpg`` and ``test/<emotion>/*.jpg``,
  as a folder or a zip (``../shared/data/fer2013.zip``).
* The original ``fer2013.csv``: ``emotion,pixels,Usage`` where ``Usage`` is
  ``Training``, ``PublicTest`` or ``PrivateTest``.

Both come back as ``uint8`` arrays of shape ``(n, 48, 48)`` and integer labels
in :data:`EMOTIONS` order (the csv's own numbering).
"""

from __future__ import annotations

import csv
import hashlib
import io
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

#: Label order of the original fer2013.csv; the model's output order.
EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
IMAGE_SIZE = 48
_CSV_SPLITS = {"train": ("Training",), "test": ("PublicTest", "PrivateTest")}


class FerDataError(ValueError):
    """The FER2013 data at a path cannot be read; the message says why and what to do."""


@dataclass
class FerSplit:
    images: np.ndarray  # (n, 48, 48) uint8
    labels: np.ndarray  # (n,) int64
    fingerprint: str  # sha256 over the file names and labels, to tie metrics to data
    names: tuple[str, ...] = ()  # per image, in read order: 'train/happy/x.jpg', or the csv line

    def __len__(self) -> int:
        return len(self.labels)


def load_split(path: str | Path, split: str) -> FerSplit:
    """Load ``split`` ('train' or 'test') from a folder, zip or fer2013.csv."""
    path = Path(path)
    if split not in _CSV_SPLITS:
        raise FerDataError(f"Unknown split {split!r}: use 'train' or 'test'.")
    if not path.exists():
        raise FerDataError(
            f"{path}: no such file or folder. Pass --data pointing at fer2013.zip, its unpacked folder, or fer2013.csv."
        )
    if path.suffix.lower() == ".csv":
        return _load_csv(path, split)
    if path.suffix.lower() == ".zip":
        return _load_zip(path, split)
    if path.is_dir():
        return _load_folder(path, split)
    raise FerDataError(f"{path}: not a folder, .zip or .csv; FER2013 comes as one of those.")


def _decode_gray(data: bytes, where: str) -> np.ndarray:
    from .images import EmotionInputError, decode_image  # checked decoding; images imports us

    try:
        img = decode_image(data, cv2.IMREAD_GRAYSCALE)
    except EmotionInputError as exc:
        raise FerDataError(f"{where}: not a readable image ({exc}) Replace or delete the file.") from exc
    if img.shape != (IMAGE_SIZE, IMAGE_SIZE):
        img = cv2.resize(img, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_AREA)
    return img


def _label_of(parts: list[str], split: str) -> int | None:
    """Label index for a member path like '[prefix/]train/happy/x.jpg', else None."""
    if len(parts) < 3 or parts[-3] != split:
        return None
    name = parts[-2].lower()
    return EMOTIONS.index(name) if name in EMOTIONS else None


def _finish(images: list, labels: list, names: list, source: Path, split: str) -> FerSplit:
    if not images:
        raise FerDataError(
            f"{source}: no images under '{split}/<emotion>/'. Expected "
            f"Kaggle's layout with emotions {', '.join(EMOTIONS)}."
        )
    h = hashlib.sha256()
    for name, label in sorted(zip(names, labels)):
        h.update(f"{name}:{label}\n".encode())
    return FerSplit(np.stack(images), np.asarray(labels, np.int64), h.hexdigest()[:16], tuple(names))


def _load_zip(path: Path, split: str) -> FerSplit:
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise FerDataError(f"{path}: not a valid zip ({exc}); download it again.") from exc
    images, labels, names = [], [], []
    with zf:
        for info in zf.infolist():
            parts = info.filename.split("/")
            label = None if info.is_dir() else _label_of(parts, split)
            if label is None:
                continue
            try:
                data = zf.read(info)
            except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
                raise FerDataError(
                    f"{path}: member {info.filename} is damaged ({exc}); "
                    "the zip is truncated or corrupt, download it again."
                ) from exc
            images.append(_decode_gray(data, f"{path}:{info.filename}"))
            labels.append(label)
            names.append("/".join(parts[-3:]))
    return _finish(images, labels, names, path, split)


def _load_folder(path: Path, split: str) -> FerSplit:
    images, labels, names = [], [], []
    for file in sorted(path.rglob("*")):
        if not file.is_file() or file.suffix.lower() not in (".jpg", ".jpeg", ".png"):
            continue
        label = _label_of(list(file.relative_to(path).parts), split)
        if label is None:
            continue
        images.append(_decode_gray(file.read_bytes(), str(file)))
        labels.append(label)
        names.append("/".join(file.parts[-3:]))
    return _finish(images, labels, names, path, split)


def _load_csv(path: Path, split: str) -> FerSplit:
    images, labels, names = [], [], []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise FerDataError(f"{path}: not UTF-8 text ({exc}).") from exc
    reader = csv.DictReader(io.StringIO(text))
    missing = {"emotion", "pixels", "Usage"} - set(reader.fieldnames or [])
    if missing:
        raise FerDataError(
            f"{path}: missing column(s) {', '.join(sorted(missing))}; fer2013.csv has emotion,pixels,Usage."
        )
    for line_no, row in enumerate(reader, start=2):
        if row["Usage"] not in _CSV_SPLITS[split]:
            continue
        try:
            label = int(row["emotion"])
            pixels = np.array(row["pixels"].split(), dtype=np.uint8)
        except ValueError as exc:
            raise FerDataError(f"{path}, line {line_no}: bad emotion or pixels ({exc}).") from exc
        if not 0 <= label < len(EMOTIONS) or pixels.size != IMAGE_SIZE * IMAGE_SIZE:
            raise FerDataError(
                f"{path}, line {line_no}: expected emotion 0-6 and "
                f"{IMAGE_SIZE * IMAGE_SIZE} pixels, got emotion {label} and "
                f"{pixels.size} pixels."
            )
        images.append(pixels.reshape(IMAGE_SIZE, IMAGE_SIZE))
        labels.append(label)
        names.append(str(line_no))
    return _finish(images, labels, names, path, split)
