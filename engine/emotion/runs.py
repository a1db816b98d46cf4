"""A training run's records: its files, the data checks that keep its validation honest, what it
continues from or distils, and the choice of what to ship.

A run's folder holds ``emotion.keras`` + ``metrics.json`` (what :func:`finalize` picked on validation
accuracy, evaluated once on test) and ``checkpoints/`` (the state the training loop of
:mod:`engine.emotion.train` keeps after every epoch). Continuing a run (``--resume``,
``--init-from``, averaging, a ``--teacher``) is refused, with a :class:`WarmStartError` saying why,
unless it sees the same training images with the same validation split: otherwise the validation
accuracy that picks the shipped model would be flattering.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .averaging import averaged_model, snapshots
from .dataset import load_split
from .evaluation import evaluate_arrays, predict_probabilities
from .model import DEFAULT_ARCH
from .model_file import load_model, save_model

if TYPE_CHECKING:
    from .train import TrainConfig

log = logging.getLogger(__name__)

MODEL_FILE = "emotion.keras"
METRICS_FILE = "metrics.json"


class WarmStartError(ValueError):
    """A run cannot be continued or averaged (missing files, other data or seed)."""


def split_seed_of(config: dict | TrainConfig | None) -> int | None:
    """The seed of a run's validation split (``seed`` for runs that predate ``split_seed``)."""
    if config is None:
        return None
    if not isinstance(config, dict):  # a TrainConfig
        config = asdict(config)
    split = config.get("split_seed")
    return config.get("seed") if split is None else split


def arch_of(config: dict | None) -> str:
    """A run's network architecture (``vgg`` for runs that predate ``arch``)."""
    return (config or {}).get("arch") or DEFAULT_ARCH


def stratified_split(labels: np.ndarray, fraction: float, seed: int):
    """Indices (train, val) with ``fraction`` of every class in val, seeded."""
    rng = np.random.default_rng(seed)
    train_idx, val_idx = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_val = max(1, int(round(len(idx) * fraction)))
        val_idx.append(idx[:n_val])
        train_idx.append(idx[n_val:])
    return np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(val_idx))


def validation_fingerprint(split, val_idx: np.ndarray) -> str:
    """sha256 over the names of the faces held out for validation: which split a run used.

    :func:`stratified_split` draws by position, so the same images read in another
    order (a zip and its unpacked folder list them differently) give another split
    under the same data fingerprint. Runs record this one so that continuing or
    ensembling them on a differently ordered copy is refused instead of scoring
    networks on faces they trained on.
    """
    h = hashlib.sha256()
    for name in sorted(split.names[i] for i in val_idx):
        h.update(f"{name}\n".encode())
    return h.hexdigest()[:16]


def check_validation_split(where, seen: str | None, expected: str, data: str, source: str) -> None:
    """Refuse a run whose recorded validation split (``seen``) is not ``expected``.

    Runs from before the split was recorded (``seen`` None) pass. ``source`` names the
    data the run was trained with, for the message.
    """
    if seen is not None and seen != expected:
        raise WarmStartError(
            f"{where}: {data} holds the run's images read in another order (a zip and its unpacked "
            f"folder list them differently), so its validation split would hold out other faces "
            f"(fingerprint {expected}, the run's {seen}). Pass the data it was trained with ({source})."
        )


def check_run_validation_split(path, meta: dict, expected: str, data: str) -> None:
    """:func:`check_validation_split` for a finished run, ``meta`` being its metrics.json."""
    check_validation_split(
        path,
        (meta.get("data_fingerprint") or {}).get("validation"),
        expected,
        data,
        meta.get("data_source") or "the file it names in data_source",
    )


def lineage(metrics: dict | None) -> list[dict]:
    """The runs behind ``metrics``, first to last (``init`` links a run to the one it continued)."""
    runs = []
    while metrics:
        runs.append(metrics)
        metrics = metrics.get("init")
    return runs[::-1]


def _lineage_total(init: dict | None, key: str) -> float:
    """Sum ``key`` over the earlier runs this model continues."""
    return sum(run.get(key) or 0 for run in lineage(init))


def _atomic_json(obj, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    os.replace(tmp, path)


def _warm_start(model, path: Path, train_split, cfg: TrainConfig) -> dict:
    """Load the weights of an earlier model (a new learning-rate cycle continues its training).

    Only a model trained on the same training images with the same validation split
    (``split_seed``) may be continued: otherwise its training set overlaps ours and the
    validation accuracy used to pick the best epoch would be flattering.
    Returns the earlier run's summary, kept in ``metrics.json`` as its lineage.
    """
    if not path.is_file():
        raise WarmStartError(f"{path}: no such model file; --init-from takes an emotion.keras file.")
    meta_file = path.with_name(METRICS_FILE)
    try:
        meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
    except json.JSONDecodeError as exc:
        raise WarmStartError(
            f"{meta_file}, line {exc.lineno}: not valid JSON ({exc.msg}); it tells "
            "which data and seed the model was trained with."
        ) from exc
    if meta.get("members"):
        raise WarmStartError(
            f"{path}: an ensemble of {len(meta['members'])} networks, not one network; "
            "--init-from takes one network's run (e.g. runs/a/emotion.keras)."
        )
    if meta.get("config") and arch_of(meta["config"]) != cfg.arch:
        raise WarmStartError(
            f"{path}: a {arch_of(meta['config'])!r} network (its {meta_file.name} says so); "
            f"this run trains {cfg.arch!r}. Pass --arch {arch_of(meta['config'])} "
            "to continue it."
        )
    try:
        earlier = load_model(path, compile=False)
        model.set_weights(earlier.get_weights())
    except Exception as exc:  # noqa: BLE001 - Keras raises many types for a foreign file
        raise WarmStartError(f"{path}: not a model of this architecture ({exc}).") from exc
    seen = meta.get("data_fingerprint", {}).get("train")
    seed = split_seed_of(meta.get("config") or {})
    if seen != train_split.fingerprint or seed != split_seed_of(cfg):
        raise WarmStartError(
            f"{path}: can only continue a model trained on the same training images with the same "
            f"validation split seed (its {meta_file.name} says train fingerprint {seen}, split seed "
            f"{seed}; this run has {train_split.fingerprint}, split seed {split_seed_of(cfg)}). "
            "Train from scratch instead, or pass --split-seed."
        )
    _, val_idx = stratified_split(train_split.labels, cfg.val_fraction, split_seed_of(cfg))
    check_run_validation_split(path, meta, validation_fingerprint(train_split, val_idx), cfg.data)
    init = {
        "model": str(path),
        "accuracy": meta.get("accuracy"),
        "epochs_run": meta.get("epochs_run"),
        "training_seconds": meta.get("training_seconds", 0),
        "training_curve": meta.get("training_curve", []),
        "config": meta.get("config"),
        "init": meta.get("init"),
    }
    log.info("continuing %s (%s epochs, test accuracy %s)", path, init["epochs_run"], init["accuracy"])
    return init


def check_teacher(cfg: TrainConfig, train_split, val_fingerprint: str) -> dict:
    """Refuse a teacher that saw other training images or this run's validation faces.

    Returns what ``metrics.json`` records about it.
    """
    path = Path(cfg.teacher)
    if not 0 < cfg.teacher_weight <= 1:
        raise WarmStartError(f"--teacher-weight {cfg.teacher_weight}: must be above 0 and at most 1.")
    meta_file = path.with_name(METRICS_FILE)
    if not path.is_file() or not meta_file.is_file():
        raise WarmStartError(
            f"{path}: no emotion.keras with its {METRICS_FILE} there; --teacher takes "
            "a trained model's file (e.g. models/emotion/emotion.keras)."
        )
    try:
        meta = json.loads(meta_file.read_text())
    except json.JSONDecodeError as exc:
        raise WarmStartError(
            f"{meta_file}, line {exc.lineno}: not valid JSON ({exc.msg}); it tells "
            "which images the teacher was trained with."
        ) from exc
    seen = meta.get("data_fingerprint") or {}
    if seen.get("train") != train_split.fingerprint or seen.get("validation") is None:
        raise WarmStartError(
            f"{path}: a teacher must be trained on these training images with a recorded validation "
            f"split (its {meta_file.name} says train fingerprint {seen.get('train')}, validation "
            f"{seen.get('validation')}; this run's train fingerprint is {train_split.fingerprint})."
        )
    if seen["validation"] != val_fingerprint:
        split = split_seed_of(meta.get("config"))
        raise WarmStartError(
            f"{path}: the teacher held out other validation faces (fingerprint {seen['validation']}, "
            f"this run's {val_fingerprint}), so it learnt faces this run validates on and the "
            f"student's validation accuracy would be flattering. Pass the teacher's --split-seed"
            + (f" ({split})" if split is not None else "")
            + " and the data it was trained with."
        )
    return {
        "model": str(path),
        "weight": cfg.teacher_weight,
        "accuracy": meta.get("accuracy"),
        "members": len(meta.get("members") or []) or 1,
        "val_accuracy": (meta.get("selection") or {}).get("ensemble", meta.get("best_val_accuracy")),
    }


def _check_run_data(state: dict, train_split, val_fingerprint: str, data: str) -> None:
    """A run continued (``--resume``, averaging) must see its own images and validation split."""
    if train_split.fingerprint != state.get("train_fingerprint", train_split.fingerprint):
        raise WarmStartError(
            f"{data}: not the training images this run used (fingerprint "
            f"{train_split.fingerprint}, the run's {state['train_fingerprint']})."
        )
    source = Path(state.get("config", {}).get("data", "")).name or "the data it was started with"
    check_validation_split(data, state.get("val_fingerprint"), val_fingerprint, data, source)


def _versions() -> dict:
    """The Keras backend and versions a run used (TensorFlow only where it is installed)."""
    import importlib.util

    import keras

    found = {"keras": keras.__version__, "backend": keras.backend.backend()}
    for name in ("tensorflow", "jax"):
        if importlib.util.find_spec(name) is not None:
            found[name] = __import__(name).__version__
    try:  # e.g. "cpu:0", "cuda:0"
        found["device"] = keras.distribution.list_devices()[0]
    except Exception:  # noqa: BLE001 - not every backend lists its devices
        pass
    return found


def finalize(cfg: TrainConfig, state: dict, train_split, test_split) -> dict:
    """Pick the model to ship on validation accuracy, evaluate it on test, write it.

    The candidates are the best epoch and, when snapshots of the last
    ``cfg.average_last`` epochs exist, their weight average. Both are scored on the
    validation split with the flip averaging that inference uses. Without
    ``test_split`` (data with no test images) the test fields stay empty until
    :func:`finish_run`.
    """
    out = Path(cfg.out_dir)
    ckpt_dir = out / "checkpoints"
    tr_idx, val_idx = stratified_split(train_split.labels, cfg.val_fraction, split_seed_of(cfg))
    x_val, y_val = train_split.images[val_idx], train_split.labels[val_idx]

    def val_accuracy(m) -> float:
        return round(float((predict_probabilities(m, x_val).argmax(1) == y_val).mean()), 4)

    # compile=False drops the optimizer state (2x the weights): the shipped file stays small.
    best = load_model(ckpt_dir / "best.keras", compile=False)
    selection = {"best_epoch": {"epoch": state["best_epoch"], "val_accuracy": val_accuracy(best)}}
    chosen, shipped = "best_epoch", best
    first = state["epoch"] - cfg.average_last + 1 if cfg.average_last > 0 else state["epoch"] + 1
    files = [f for e, f in snapshots(ckpt_dir).items() if first <= e <= state["epoch"]]
    if files:
        log.info("averaging the weights of %d epochs (%d-%d)", len(files), first, state["epoch"])
        averaged = averaged_model(files, train_split.images[tr_idx], cfg.arch)
        selection["weight_average"] = {
            "epochs": [first, state["epoch"]],
            "n_snapshots": len(files),
            "val_accuracy": val_accuracy(averaged),
        }
        if selection["weight_average"]["val_accuracy"] > selection["best_epoch"]["val_accuracy"]:
            chosen, shipped = "weight_average", averaged
    selection["chosen"] = chosen
    log.info(
        "validation accuracy (flip-averaged): %s; shipping %s",
        {k: v["val_accuracy"] for k, v in selection.items() if isinstance(v, dict)},
        chosen,
    )

    if test_split is not None:
        metrics = evaluate_arrays(shipped, test_split.images, test_split.labels)
    else:
        metrics = {"accuracy": None, "accuracy_single_pass": None, "test_pending": True}
    metrics.update(
        {
            "selection": selection,
            "data_fingerprint": {
                "train": train_split.fingerprint,
                "validation": validation_fingerprint(train_split, val_idx),
                "test": test_split.fingerprint if test_split is not None else None,
            },
            "data_source": Path(cfg.data).name,
            "best_epoch": state["best_epoch"],
            "best_val_accuracy": state["best_val_accuracy"],
            "epochs_run": state["epoch"],
            "training_seconds": round(state.get("train_seconds", 0), 1),
            "parameters": int(shipped.count_params()),
            "training_curve": state["history"],
            "config": asdict(cfg),
            "init": state.get("init"),
            "teacher": state.get("teacher"),
            "total_epochs": state["epoch"] + _lineage_total(state.get("init"), "epochs_run"),
            "total_training_seconds": round(
                state.get("train_seconds", 0) + _lineage_total(state.get("init"), "training_seconds"), 1
            ),
            **_versions(),
        }
    )
    save_model(shipped, out / MODEL_FILE)
    _atomic_json(metrics, out / METRICS_FILE)
    if test_split is not None:
        log.info(
            "test accuracy %.4f (flip-averaged), %.4f (single pass)",
            metrics["accuracy"],
            metrics["accuracy_single_pass"],
        )
    else:
        log.info(
            "no test images in %s: run `python -m engine.emotion finish --out %s --data PATH` where they are",
            cfg.data,
            out,
        )
    return metrics


def finish_run(out_dir: str, data: str) -> dict:
    """Evaluate on ``data``'s test images a run trained where they were not (``--no-test``).

    The run's own training images must be in ``data`` too (same fingerprint): this
    ties the test score to the model it describes. Fills in ``metrics.json``.
    """
    out = Path(out_dir)
    meta_file, model_file = out / METRICS_FILE, out / MODEL_FILE
    if not meta_file.exists() or not model_file.exists():
        raise WarmStartError(
            f"{out}: no {MODEL_FILE} with its {METRICS_FILE}; pass the --out folder of a finished training run."
        )
    metrics = json.loads(meta_file.read_text())
    if not metrics.get("test_pending"):
        raise WarmStartError(
            f"{meta_file}: this run was already evaluated on test "
            f"(accuracy {metrics.get('accuracy')}); nothing to finish."
        )
    train_split = load_split(data, "train")
    if train_split.fingerprint != metrics["data_fingerprint"]["train"]:
        raise WarmStartError(
            f"{data}: not the training images this run used (fingerprint "
            f"{train_split.fingerprint}, the run's {metrics['data_fingerprint']['train']})."
        )
    test_split = load_split(data, "test")
    model = load_model(model_file, compile=False)
    metrics.pop("test_pending")
    metrics.update(evaluate_arrays(model, test_split.images, test_split.labels))
    metrics["data_fingerprint"]["test"] = test_split.fingerprint
    metrics["test_evaluated_with"] = _versions()
    _atomic_json(metrics, meta_file)
    log.info(
        "test accuracy %.4f (flip-averaged), %.4f (single pass)", metrics["accuracy"], metrics["accuracy_single_pass"]
    )
    return metrics
