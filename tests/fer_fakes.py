"""Small stand-ins for FER2013 and its networks, shared by the emotion test files."""

from __future__ import annotations

import cv2
import numpy as np

from engine.emotion.dataset import EMOTIONS


def fake_fer(tmp_path, n_per_class=6):
    """FER2013's folder layout with ``n_per_class`` grey noise images per emotion (2 per emotion in test)."""
    rng = np.random.default_rng(0)
    root = tmp_path / "fer"
    for split in ("train", "test"):
        for k, name in enumerate(EMOTIONS):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n_per_class if split == "train" else 2):
                img = np.clip(rng.normal(30 * k, 20, (48, 48)), 0, 255).astype(np.uint8)
                cv2.imwrite(str(folder / f"{i}.jpg"), img)
    return root


def two_nets(tmp_path):
    """Two untrained networks of the two architectures, from different random starts."""
    import keras

    from engine.emotion.model import make_model

    nets = []
    for seed, arch in ((1, "vgg"), (2, "res")):
        keras.utils.set_random_seed(seed)
        nets.append(make_model(arch))
    return nets
