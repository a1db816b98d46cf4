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
MAX_SHIFT = 0.10  # of the image size
CONTRAST = (0.8, 1.2)


def augment_faces(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Augmented copies of (n, 48, 48) uint8 faces as float32 pixels in 0-255.

    Everything but the warp itself is done for the whole batch at once: the per-face
    Python work is what limits a GPU's feed (the warp is microseconds in C).
    """
    n = len(images)
    flips = rng.random(n) < 0.5
    angles = np.deg2rad(rng.uniform(-MAX_ROTATION_DEGREES, MAX_ROTATION_DEGREES, n))
    scales = rng.uniform(1 - MAX_ZOOM, 1 + MAX_ZOOM, n)
    shifts = rng.uniform(-MAX_SHIFT, MAX_SHIFT, (n, 2)) * IMAGE_SIZE
    contrast = rng.uniform(*CONTRAST, n).astype(np.float32)
    faces = np.where(flips[:, None, None], images[:, :, ::-1], images)
    # Rotation by the angle (counter-clockwise, as cv2.getRotationMatrix2D) and zoom about
    # the centre, then the shift: x' = A x + (I - A) c + shift.
    centre = (IMAGE_SIZE - 1) / 2
    a, b = scales * np.cos(angles), scales * np.sin(angles)
    warps = np.empty((n, 2, 3))
    warps[:, 0, 0], warps[:, 0, 1], warps[:, 1, 0], warps[:, 1, 1] = a, b, -b, a
    warps[:, 0, 2] = (1 - a) * centre - b * centre + shifts[:, 0]
    warps[:, 1, 2] = b * centre + (1 - a) * centre + shifts[:, 1]
    moved = np.empty_like(faces)
    for i in range(n):
        cv2.warpAffine(
            faces[i],
            warps[i],
            (IMAGE_SIZE, IMAGE_SIZE),
            dst=moved[i],
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REFLECT,
        )
    out = moved.astype(np.float32)
    mean = out.mean(axis=(1, 2), keepdims=True)
    out -= mean
    out *= contrast[:, None, None]
    out += mean
    return np.clip(out, 0.0, 255.0, out=out)


def batches(images: np.ndarray, targets: np.ndarray, weights: np.ndarray, batch_size: int, seed: int, workers: int = 4):
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
            idx = np.sort(self.order[index * batch_size : (index + 1) * batch_size])
            rng = np.random.default_rng([seed, self.epoch, index + 1])
            return augment_faces(images[idx], rng)[..., None], targets[idx], weights[idx]

        def on_epoch_end(self) -> None:
            self.epoch += 1
            self.order = self._order()

        def start_at_epoch(self, epoch: int) -> None:
            self.epoch = epoch
            self.order = self._order()

    return Batches()
