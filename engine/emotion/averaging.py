"""Weight averaging: one network whose weights are the mean of the last epochs' weights.

Averaging the weights a run visited over its last epochs (stochastic weight
averaging) lands nearer the centre of the flat region those epochs circled, and
generalises better than any single epoch; the result is still one network, so
inference costs exactly what it did. Two details make it work:

* only epochs of one run (one basin) are averaged: the weights of unrelated
  networks do not average into anything useful;
* batch-normalisation statistics are not weights that average linearly: after
  averaging they are measured again with one pass over the training images
  (not the validation split, and never test).

Whether the average or the best single epoch is shipped is decided on the
validation split, like everything else in training.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

SNAPSHOT_DIR = "snapshots"
_SNAPSHOT = re.compile(r"epoch_(\d+)\.weights\.h5$")


def snapshot_path(ckpt_dir: Path, epoch: int) -> Path:
    return Path(ckpt_dir) / SNAPSHOT_DIR / f"epoch_{epoch:03d}.weights.h5"


def save_snapshot(model, ckpt_dir: Path, epoch: int) -> None:
    """Write this epoch's weights (no optimizer state: about the shipped file's size)."""
    import os

    path = snapshot_path(ckpt_dir, epoch)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"tmp_{path.name}")
    model.save_weights(tmp)
    os.replace(tmp, path)


def snapshots(ckpt_dir: Path) -> dict[int, Path]:
    """Epoch -> weights file of the snapshots kept in ``ckpt_dir``."""
    folder = Path(ckpt_dir) / SNAPSHOT_DIR
    found = {}
    for f in folder.glob("epoch_*.weights.h5") if folder.is_dir() else []:
        m = _SNAPSHOT.match(f.name)
        if m:
            found[int(m.group(1))] = f
    return dict(sorted(found.items()))


def average_weights(model, files: list[Path]) -> None:
    """Set ``model``'s weights to the element-wise mean of the weights in ``files``."""
    if not files:
        raise ValueError("no snapshots to average")
    total = None
    for f in files:
        model.load_weights(f)
        weights = [w.astype(np.float64) for w in model.get_weights()]
        total = weights if total is None else [t + w for t, w in zip(total, weights)]
    model.set_weights([(t / len(files)).astype(np.float32) for t in total])


def recalibrate_batch_norm(model, images: np.ndarray, batch_size: int = 128, seed: int = 0) -> None:
    """Measure every BatchNormalization layer's statistics again on ``images``.

    One pass in training mode with the momentum set so that each moving statistic
    becomes the plain mean over all batches (batch ``t`` gets weight ``1/t``).
    Dropout is switched off meanwhile, so the statistics are those of the network
    as inference runs it. Uses eager calls: Keras reads ``momentum`` and ``rate``
    on every call.
    """
    import keras

    bns = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    drops = [l for l in model.layers if isinstance(l, keras.layers.Dropout)]
    saved = [l.momentum for l in bns], [l.rate for l in drops]
    order = np.random.default_rng(seed).permutation(len(images))
    try:
        for l in drops:
            l.rate = 0.0
        for t, start in enumerate(range(0, len(images), batch_size), start=1):
            for l in bns:
                l.momentum = (t - 1) / t
            batch = images[order[start : start + batch_size]][..., None].astype(np.float32)
            model(batch, training=True)
    finally:
        for l, m in zip(bns, saved[0]):
            l.momentum = m
        for l, r in zip(drops, saved[1]):
            l.rate = r


def averaged_model(files: list[Path], train_images: np.ndarray, arch: str):
    """A fresh ``arch`` network with the mean of ``files``' weights and re-measured BN statistics."""
    from .model import make_model

    model = make_model(arch)
    average_weights(model, files)
    recalibrate_batch_norm(model, train_images)
    return model
