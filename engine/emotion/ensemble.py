"""Independently trained emotion CNNs answering as one: their softmax scores averaged.

Two copies of the network trained from different random starts (``train --seed``)
on the same images make different mistakes, so the mean of their probabilities is
right more often than either. The ensemble is saved as one ordinary ``.keras``
model (input -> every member -> average), with float16 weights by default (half the
file; :mod:`engine.emotion.model_file` loads them back as float32), so everything
that loads, evaluates or serves the emotion model takes it unchanged;
:func:`members_of` gives the member networks back (live video runs one member per
frame, see :class:`engine.emotion.live.FrameProcessor`).

Members must share the training images and the validation split (``--split-seed``):
the ensemble is only shipped when it beats its best member on that split, and a
member trained on another split would have seen the validation images.

Example::

    python -m engine.emotion train --data fer2013.zip --seed 7 --split-seed 42 --out runs/b
    python -m engine.emotion ensemble --data fer2013.zip \\
        --members models/emotion/emotion.keras runs/b/emotion.keras --out models/emotion
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from .dataset import IMAGE_SIZE, load_split
from .evaluation import evaluate_arrays, predict_probabilities
from .model_file import load_model, rounded, save_model
from .runs import (
    METRICS_FILE,
    MODEL_FILE,
    WarmStartError,
    _atomic_json,
    _versions,
    check_run_validation_split,
    split_seed_of,
    stratified_split,
    validation_fingerprint,
)

log = logging.getLogger(__name__)

MEMBER_PREFIX = "member_"


class EnsembleNotBetter(RuntimeError):
    """The ensemble did not beat its best member on validation; nothing was written."""

    def __init__(self, selection: dict):
        self.selection = selection
        best = max(selection["members"])
        super().__init__(
            f"the ensemble scored {selection['ensemble']:.2%} on the validation split, not above its "
            f"best member ({best:.2%}); nothing was written. Members that err alike gain nothing: "
            "train one from another --seed."
        )


def build_ensemble(members: list) -> "keras.Model":  # noqa: F821 - keras imported lazily
    """One Keras model averaging the softmax outputs of ``members`` (same input and labels)."""
    import keras
    from keras import layers

    if len(members) < 2:
        raise ValueError(f"an ensemble needs at least two members, got {len(members)}")
    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 1), name="face")
    outputs = []
    for i, member in enumerate(members, start=1):
        # A fresh name per member: nested models must be unique within the ensemble.
        named = keras.Model(member.inputs[0], member.outputs[0], name=f"{MEMBER_PREFIX}{i}")
        outputs.append(named(inputs))
    return keras.Model(inputs, layers.Average(name="emotion")(outputs), name="fer_ensemble")


def members_of(model) -> list:
    """The member networks of an ensemble; ``[model]`` for a single network."""
    import keras

    found = [layer for layer in model.layers if isinstance(layer, keras.Model) and layer.name.startswith(MEMBER_PREFIX)]
    return found or [model]


def _member_metrics(path: Path) -> dict:
    meta_file = path.with_name(METRICS_FILE)
    try:
        return json.loads(meta_file.read_text())
    except FileNotFoundError:
        raise WarmStartError(
            f"{meta_file}: no such file. A member needs the metrics.json its "
            "training wrote (it says which images and validation split it used)."
        )
    except json.JSONDecodeError as exc:
        raise WarmStartError(f"{meta_file}, line {exc.lineno}: not valid JSON ({exc.msg}).") from exc


def _summary(path: Path, meta: dict) -> dict:
    """What the ensemble's metrics.json keeps of a member: its figures and whole lineage."""
    keep = (
        "accuracy",
        "accuracy_single_pass",
        "parameters",
        "epochs_run",
        "training_seconds",
        "training_curve",
        "config",
        "init",
        "selection",
        "best_epoch",
        "best_val_accuracy",
        "backend",
        "device",
    )
    return {
        "model": str(path),
        **{k: meta.get(k) for k in keep},
        "total_epochs": meta.get("total_epochs", meta.get("epochs_run")),
        "total_training_seconds": meta.get("total_training_seconds", meta.get("training_seconds")),
    }


def make_ensemble(member_paths: list[str | Path], data: str, out_dir: str | Path, storage: str = "float16") -> dict:
    """Average ``member_paths``' networks and ship them if that wins on validation.

    Writes ``emotion.keras`` and ``metrics.json`` into ``out_dir`` (which may hold
    one of the members: every member is read before anything is written). Returns the
    metrics written; raises :class:`EnsembleNotBetter` (writing nothing) when the
    ensemble does not beat its best member on the validation split.

    ``storage="float16"`` (the default) halves the file (:mod:`engine.emotion.model_file`);
    every score, members' included, is then that of the rounded weights the file holds.
    """
    paths = [Path(p) for p in member_paths]
    if len(paths) < 2:
        raise WarmStartError(f"an ensemble needs at least two member models, got {len(paths)}.")
    if len({p.resolve() for p in paths}) != len(paths):
        raise WarmStartError("the same member model is listed twice; give two different runs.")
    metas = []
    for path in paths:
        if not path.is_file():
            raise WarmStartError(f"{path}: no such model file; members are emotion.keras files.")
        metas.append(_member_metrics(path))
    train_split = load_split(data, "train")
    test_split = load_split(data, "test")
    split_seeds = {split_seed_of(m.get("config") or {}) for m in metas}
    for path, meta in zip(paths, metas):
        seen = meta.get("data_fingerprint", {}).get("train")
        if seen != train_split.fingerprint:
            raise WarmStartError(
                f"{path}: trained on other images (train fingerprint {seen}; {data} has {train_split.fingerprint})."
            )
    if len(split_seeds) != 1 or None in split_seeds:
        raise WarmStartError(
            "the members were trained with different validation splits (split seeds "
            f"{sorted(map(str, split_seeds))}): each has seen the others' validation images, so the "
            "ensemble could not be checked fairly. Train them with the same --split-seed."
        )
    split_seed = split_seeds.pop()
    fraction = (metas[0].get("config") or {}).get("val_fraction", 0.1)
    _, val_idx = stratified_split(train_split.labels, fraction, split_seed)
    val_fingerprint = validation_fingerprint(train_split, val_idx)
    for path, meta in zip(paths, metas):
        check_run_validation_split(path, meta, val_fingerprint, data)

    members, summaries = [], []
    for path, meta in zip(paths, metas):
        try:
            net = load_model(path)
        except Exception as exc:  # noqa: BLE001 - Keras raises many types for a foreign file
            raise WarmStartError(f"{path}: could not be loaded ({type(exc).__name__}: {exc}).") from exc
        nets = members_of(net)  # an ensemble listed as a member gives its networks
        inner = meta.get("members") if len(nets) > 1 else [_summary(path, meta)]
        if not isinstance(inner, list) or len(inner) != len(nets):
            raise WarmStartError(
                f"{path} holds {len(nets)} networks but its {METRICS_FILE} does not "
                "describe them; restore both files with git."
            )
        members.extend(nets)
        summaries.extend(dict(s) for s in inner)
    ensemble = rounded(build_ensemble(members), storage)
    members = members_of(ensemble)

    x_val, y_val = train_split.images[val_idx], train_split.labels[val_idx]

    def val_accuracy(model) -> float:
        return round(float((predict_probabilities(model, x_val).argmax(1) == y_val).mean()), 4)

    scores = [val_accuracy(m) for m in members]
    selection = {"members": scores, "ensemble": val_accuracy(ensemble)}
    log.info("validation accuracy (flip-averaged): members %s, ensemble %.4f", scores, selection["ensemble"])
    if selection["ensemble"] <= max(scores):
        raise EnsembleNotBetter(selection)

    metrics = evaluate_arrays(ensemble, test_split.images, test_split.labels)
    for summary, member in zip(summaries, members):
        # What one member gets on test: live video runs one member per frame.
        alone = evaluate_arrays(member, test_split.images, test_split.labels)
        summary["test"] = {k: alone[k] for k in ("accuracy", "accuracy_single_pass")}
    metrics.update(
        {
            "selection": {**selection, "chosen": "ensemble"},
            "members": summaries,
            "data_fingerprint": {
                "train": train_split.fingerprint,
                "validation": val_fingerprint,
                "test": test_split.fingerprint,
            },
            "data_source": Path(data).name,
            "parameters": int(ensemble.count_params()),
            "config": {"members": [str(p) for p in paths], "split_seed": split_seed, "val_fraction": fraction},
            "total_epochs": sum(s["total_epochs"] or 0 for s in summaries),
            "total_training_seconds": round(sum(s["total_training_seconds"] or 0 for s in summaries), 1),
            "storage": storage,
            **_versions(),
        }
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_model(ensemble, out / MODEL_FILE, storage)
    _atomic_json(metrics, out / METRICS_FILE)
    log.info(
        "test accuracy %.4f (flip-averaged), %.4f (single pass)", metrics["accuracy"], metrics["accuracy_single_pass"]
    )
    return metrics
