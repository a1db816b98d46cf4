"""The emotion model's ``.keras`` file: written atomically, optionally with half-size weights.

An ensemble of several networks is stored with float16 weights (``storage="float16"``):
the file is half the size, and every loader gets float32 weights back, so inference
runs exactly as before on rounded weights. Rounding to float16 keeps about three
significant digits; on FER2013's validation faces it moved no prediction of a
three-network ensemble and no probability by more than 0.002 (measured).
Evaluation always scores the rounded model, i.e. what the file holds.
"""

from __future__ import annotations

import os
from pathlib import Path

STORAGES = ("float32", "float16")


def _check(storage: str) -> None:
    if storage not in STORAGES:
        raise ValueError(f"unknown storage {storage!r}; choose one of {', '.join(STORAGES)}.")


def with_dtype(model, dtype: str):
    """A copy of ``model`` (nested models too) whose layers hold and compute in ``dtype``."""
    import keras

    def rebuild(layer):
        return layer.__class__.from_config({**layer.get_config(), "dtype": dtype})

    copy = keras.models.clone_model(model, clone_function=rebuild, recursive=True)
    copy.set_weights([w.astype(dtype) for w in model.get_weights()])
    return copy


def rounded(model, storage: str):
    """``model`` as loading it from a file of ``storage`` gives it back (float32 weights)."""
    _check(storage)
    return model if storage == "float32" else with_dtype(with_dtype(model, storage), "float32")


def save_model(model, path: Path, storage: str = "float32") -> None:
    """Write ``model`` to ``path`` through a temporary file (a reader never sees half a file)."""
    _check(storage)
    path = Path(path)
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    (model if storage == "float32" else with_dtype(model, storage)).save(tmp)
    os.replace(tmp, path)


def load_model(path: Path, compile: bool = False):
    """Load a ``.keras`` file; weights stored as float16 come back as a float32 model."""
    import keras

    model = keras.models.load_model(path, compile=compile)
    if any(str(w.dtype) != "float32" for w in model.weights):
        model = with_dtype(model, "float32")
    return model
