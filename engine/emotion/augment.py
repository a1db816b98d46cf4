"""Training-time augmentation of FER2013 faces, on the CPU with OpenCV.

Every training face is, independently: mirrored with probability 1/2, rotated by
up to 18 degrees, zoomed by up to 10 %, shifted by up to 10 % of its size (the
borders filled by reflection), and its contrast scaled by 0.8-1.2 around its mean.
Faces in a webcam are never as well aligned as FER2013's.

Why not Keras's image layers inside the model: on the JAX backend their affine
warps are slow on accelerators (an H200 trained slower than two CPU cores here;
keras-team/keras#23229), while one ``cv2.warpAffine`` of a 48x48 face takes
microseconds on any machine. Batches are built by :func:`batches` in worker
threads, so augmentation overlaps the training step on every backend.
Randomness is seeded per (seed, epoch, batch): a run is reproducible and a
resumed run augments its later epochs as an uninterrupted one would.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from .dataset import IMAGE_SIZE

MAX_ROTATION_DEGREES = 18.0  # 0.05 of a turn
MAX_ZOOM = 0.10
MAX_SHIFT = 0.10             # of the image size
CONTRAST = (0.8, 1.2)


def augment_faces(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Augmented copies of (n, 48, 48) uint8 faces as float32 pixels in 0-255."""
    n = len(images)
    flips = rng.random(n) < 0.5
    angles = rng.uniform(-MAX_ROTATION_DEGREES, MAX_ROTATION_DEGREES, n)
    scales = rng.uniform(1 - MAX_ZOOM, 1 + MAX_ZOOM, n)
    shifts = rng.uniform(-MAX_SHIFT, MAX_SHIFT, (n, 2)) * IMAGE_SIZE
    contrast = rng.uniform(*CONTRAST, n)
    centre = ((IMAGE_SIZE - 1) / 2, (IMAGE_SIZE - 1) / 2)
    out = np.empty((n, IMAGE_SIZE, IMAGE_SIZE), np.float32)
    for i in range(n):
        face = images[i, :, ::-1] if flips[i] else images[i]
        warp = cv2.getRotationMatrix2D(centre, float(angles[i]), float(scales[i]))
        warp[:, 2] += shifts[i]
        moved = cv2.warpAffine(np.ascontiguousarray(face), warp, (IMAGE_SIZE, IMAGE_SIZE),
                               flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT).astype(np.float32)
        mean = moved.mean()
        out[i] = (moved - mean) * contrast[i] + mean
    return np.clip(out, 0.0, 255.0, out=out)


def batches(images: np.ndarray, targets: np.ndarray, weights: np.ndarray, batch_size: int,
            seed: int, workers: int = 4):
    """A ``keras.utils.PyDataset`` of shuffled, augmented ``(faces, targets, sample weights)``.

    ``images`` are (n, 48, 48) uint8; faces come out as (batch, 48, 48, 1) float32.
    The order is reshuffled every epoch, seeded like the augmentation.
    """
    import keras

    class Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=16)
            self.epoch = 0
            self.order = self._order()

        def _order(self) -> np.ndarray:
            return np.random.default_rng([seed, self.epoch, 0]).permutation(len(images))

        def __len__(self) -> int:
            return math.ceil(len(images) / batch_size)

        def __getitem__(self, index: int):
            idx = np.sort(self.order[index * batch_size:(index + 1) * batch_size])
            rng = np.random.default_rng([seed, self.epoch, index + 1])
            return augment_faces(images[idx], rng)[..., None], targets[idx], weights[idx]

        def on_epoch_end(self) -> None:
            self.epoch += 1
            self.order = self._order()

        def start_at_epoch(self, epoch: int) -> None:
            self.epoch = epoch
            self.order = self._order()

    return Batches()
