"""Train the emotion CNN on FER2013.

The recipe, step by step:

1. Load ``train`` and ``test``; carve a seeded, stratified validation split out of
   ``train``. Test is only touched once, at the very end.
2. Augment on the fly (flip, shift, rotation, zoom, contrast; :mod:`engine.emotion.augment`,
   on the CPU): faces in a webcam are never as well aligned as FER2013's.
3. Handle the imbalance (disgust has 436 images, happy 7,215) with class weights
   softened by a square root: full inverse-frequency weights cost overall accuracy.
4. AdamW with a warm-up then cosine decay (set per epoch, so a ``--time-budget`` run can
   shorten its plan after two epochs), label smoothing.
5. After every epoch: save a full checkpoint (model + optimizer) and, when the
   validation accuracy improves, the best weights. ``--resume`` continues from the
   last checkpoint; training stops early when validation accuracy stalls.
   With ``--average-last N`` the last N epochs' weights are kept too.
6. Pick what to ship on validation accuracy: the best epoch, or the average of
   the last N epochs' weights (:mod:`engine.emotion.averaging`).
7. Evaluate it on test (with the horizontal-flip averaging that inference uses)
   and write ``emotion.keras`` + ``metrics.json``.

This module is the training loop (steps 1-5); a run's records -- its files, the checks
that keep its validation split honest, steps 6-7 -- are in :mod:`engine.emotion.runs`.

Any Keras backend trains it: TensorFlow here, JAX on a GPU machine without TensorFlow
(``scripts/train_emotion_gpu.sh``). ``--no-test`` trains on data without test images;
:func:`~engine.emotion.runs.finish_run` evaluates such a run later.

``--init-from MODEL`` starts a new learning-rate cycle from a finished model of
the same data and seed; ``metrics.json`` then records the lineage (``init``).

``--teacher MODEL`` distils: the targets become a mix of the teacher's scores
(flip-averaged, computed once per run and cached in ``checkpoints/teacher.npy``) and
the true labels, without class weights (the teacher's scores already carry them).
The teacher must have been trained on the same training images with the same
validation split, or its knowledge of the validation faces would flatter the
student's validation accuracy. ``--arch small --teacher models/emotion/emotion.keras``
distils the shipped ensemble into a network a quarter of its size.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .augment import batches
from .averaging import SNAPSHOT_DIR, save_snapshot, snapshots
from .dataset import EMOTIONS, load_split
from .evaluation import predict_probabilities
from .model import DEFAULT_ARCH, make_model
from .model_file import load_model, save_model
from .runs import (
    WarmStartError,
    _atomic_json,
    _check_run_data,
    _warm_start,
    check_teacher,
    finalize,
    split_seed_of,
    stratified_split,
    validation_fingerprint,
)

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    data: str
    out_dir: str
    epochs: int = 60
    batch_size: int = 128
    learning_rate: float = 2e-3
    weight_decay: float = 5e-4
    warmup_epochs: int = 2
    label_smoothing: float = 0.1
    val_fraction: float = 0.1
    patience: int = 15
    seed: int = 42  # weights, shuffling, augmentation
    split_seed: int | None = None  # the validation split; None: ``seed`` (runs before it existed)
    resume: bool = False
    init_from: str | None = None
    average_last: int = 0
    arch: str = DEFAULT_ARCH  # engine.emotion.model.ARCHITECTURES
    time_budget: float = 0  # seconds of training; 0: run all ``epochs``
    evaluate_test: bool = True  # False: the data holds no test images (``finish`` evaluates later)
    teacher: str | None = None  # distil from this emotion.keras (a network or an ensemble)
    teacher_weight: float = 0.7  # share of the teacher's scores in the targets (the rest: labels)


def class_weights(labels: np.ndarray) -> dict[int, float]:
    """Square-root inverse-frequency weights, mean 1 over the samples."""
    counts = np.bincount(labels, minlength=len(EMOTIONS)).astype(float)
    w = np.sqrt(counts.sum() / np.maximum(counts, 1))
    w /= (w[labels]).mean()
    return {i: float(w[i]) for i in range(len(EMOTIONS))}


def learning_rate_at(epoch: int, cfg: TrainConfig, planned: int) -> float:
    """Per-epoch schedule: warm up from a tenth of the peak, then cosine decay to 1 % of it.

    ``epoch`` counts from 0; ``planned`` is the run's length in epochs (``cfg.epochs``,
    or what fits the time budget).
    """
    peak, warmup = cfg.learning_rate, cfg.warmup_epochs
    if epoch < warmup:
        return peak * (0.1 + 0.9 * epoch / warmup)
    progress = min(1.0, (epoch - warmup) / max(1, planned - warmup - 1))  # the last epoch: 1 %
    return peak * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress)))


def plan_epochs(cfg: TrainConfig, done: int, seconds_left: float, epoch_seconds: float) -> int:
    """The epochs a time-budgeted run can finish: those done plus what fits the time left."""
    fits = int(max(0.0, seconds_left) // max(epoch_seconds, 1e-6))
    return max(done, min(cfg.epochs, done + fits))


class _Checkpointer:
    """Keras callback: learning rate, last + best checkpoints, training state, time budget, early stopping."""

    def __new__(cls, *args, **kwargs):  # build the Keras subclass lazily (no TF at import)
        import keras

        class Impl(keras.callbacks.Callback):
            def __init__(self, ckpt_dir: Path, state: dict, cfg: TrainConfig, patience: int):
                super().__init__()
                self.ckpt_dir, self.state, self.cfg = ckpt_dir, state, cfg
                self.patience = patience
                self.started = self.t0 = time.time()
                self.epoch_seconds: list[float] = []  # this invocation's epochs

            def on_epoch_begin(self, epoch, logs=None):
                self.model.optimizer.learning_rate = learning_rate_at(epoch, self.cfg, self.state["planned_epochs"])

            def on_epoch_end(self, epoch, logs=None):
                logs = {k: float(v) for k, v in (logs or {}).items()}
                logs["learning_rate"] = learning_rate_at(epoch, self.cfg, self.state["planned_epochs"])
                logs["seconds"] = round(time.time() - self.t0, 1)
                self.epoch_seconds.append(time.time() - self.t0)
                self.t0 = time.time()
                self.state["history"].append({"epoch": epoch + 1, **logs})
                self.state["epoch"] = epoch + 1
                self.state["train_seconds"] = self.state.get("train_seconds", 0) + logs["seconds"]
                self._plan(epoch + 1)
                if logs.get("val_accuracy", 0) > self.state["best_val_accuracy"]:
                    self.state["best_val_accuracy"] = logs["val_accuracy"]
                    self.state["best_epoch"] = epoch + 1
                    save_model(self.model, self.ckpt_dir / "best.keras")
                if epoch + 1 > _snapshot_after(self.cfg, self.state["planned_epochs"]):
                    save_snapshot(self.model, self.ckpt_dir, epoch + 1)
                save_model(self.model, self.ckpt_dir / "last.keras")
                _atomic_json(self.state, self.ckpt_dir / "state.json")
                log.info(
                    "epoch %d/%d: loss %.4f acc %.4f val_loss %.4f val_acc %.4f lr %.2e (%.1f s)",
                    epoch + 1,
                    self.state["planned_epochs"],
                    logs.get("loss", 0),
                    logs.get("accuracy", 0),
                    logs.get("val_loss", 0),
                    logs.get("val_accuracy", 0),
                    logs["learning_rate"],
                    logs["seconds"],
                )
                if epoch + 1 >= self.state["planned_epochs"]:
                    self.model.stop_training = True
                elif epoch + 1 - self.state["best_epoch"] >= self.patience:
                    log.info("no val_accuracy gain for %d epochs: stopping", self.patience)
                    self.model.stop_training = True

            def _plan(self, done: int) -> None:
                """With a time budget, shorten the run to the epochs that fit (never lengthen it).

                The first epoch of an invocation compiles the step, so the pace is read from
                the later ones (the last three).
                """
                if not self.cfg.time_budget or len(self.epoch_seconds) < 2:
                    return
                pace = float(np.mean(self.epoch_seconds[1:][-3:])) * 1.03
                left = self.cfg.time_budget - (time.time() - self.started)
                planned = min(self.state["planned_epochs"], plan_epochs(self.cfg, done, left, pace))
                if planned != self.state["planned_epochs"]:
                    log.info("time budget: %.0f s left at %.1f s per epoch -> %d epochs", left, pace, planned)
                    self.state["planned_epochs"] = planned

        return Impl(*args, **kwargs)


def teacher_scores(cfg: TrainConfig, ckpt_dir: Path, x_tr: np.ndarray) -> np.ndarray:
    """The teacher's flip-averaged scores for the training faces, cached for ``--resume``."""
    cache = ckpt_dir / "teacher.npy"
    if cache.exists():
        scores = np.load(cache)
        if scores.shape == (len(x_tr), len(EMOTIONS)):
            return scores
    log.info("scoring %d training faces with the teacher %s", len(x_tr), cfg.teacher)
    teacher = load_model(Path(cfg.teacher), compile=False)
    scores = predict_probabilities(teacher, x_tr).astype(np.float32)
    tmp = ckpt_dir / "teacher.tmp.npy"
    np.save(tmp, scores)
    os.replace(tmp, cache)
    return scores


def train(cfg: TrainConfig) -> dict:
    """Run the whole recipe; returns the metrics written to ``metrics.json``."""
    import keras

    keras.utils.set_random_seed(cfg.seed)
    out = Path(cfg.out_dir)
    ckpt_dir = out / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)

    log.info("loading FER2013 from %s", cfg.data)
    train_split = load_split(cfg.data, "train")
    test_split = load_split(cfg.data, "test") if cfg.evaluate_test else None
    tr_idx, val_idx = stratified_split(train_split.labels, cfg.val_fraction, split_seed_of(cfg))
    x_tr, y_tr = train_split.images[tr_idx], train_split.labels[tr_idx]
    x_val, y_val = train_split.images[val_idx], train_split.labels[val_idx]
    val_fingerprint = validation_fingerprint(train_split, val_idx)
    weights = class_weights(y_tr)
    log.info(
        "train %d, validation %d, test %s images; class weights %s",
        len(y_tr),
        len(y_val),
        len(test_split) if test_split else "no",
        {EMOTIONS[k]: round(v, 2) for k, v in weights.items()},
    )

    state_file = ckpt_dir / "state.json"
    if cfg.resume and (ckpt_dir / "last.keras").exists() and state_file.exists():
        state = json.loads(state_file.read_text())
        _check_run_data(state, train_split, val_fingerprint, cfg.data)
        model = load_model(ckpt_dir / "last.keras", compile=True)  # with its optimizer state
        state["planned_epochs"] = cfg.epochs  # this invocation's --epochs (and budget) decide
        log.info(
            "resuming after epoch %d (best val_accuracy %.4f at epoch %d)",
            state["epoch"],
            state["best_val_accuracy"],
            state["best_epoch"],
        )
    else:
        state = {
            "config": asdict(cfg),
            "epoch": 0,
            "best_epoch": 0,
            "planned_epochs": cfg.epochs,
            "best_val_accuracy": 0.0,
            "history": [],
            "train_fingerprint": train_split.fingerprint,
            "val_fingerprint": val_fingerprint,
        }
        shutil.rmtree(ckpt_dir / SNAPSHOT_DIR, ignore_errors=True)  # an earlier run's weights
        model = make_model(cfg.arch)
        if cfg.teacher:
            state["teacher"] = check_teacher(cfg, train_split, val_fingerprint)
        if cfg.init_from:
            state["init"] = _warm_start(model, Path(cfg.init_from), train_split, cfg)
        model.compile(
            optimizer=keras.optimizers.AdamW(cfg.learning_rate, weight_decay=cfg.weight_decay),
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
            metrics=["accuracy"],
        )
    log.info("model %s: %d parameters (Keras %s backend)", model.name, model.count_params(), keras.backend.backend())

    patience = effective_patience(cfg)
    done = state["epoch"]
    if done < state["planned_epochs"] and done - state["best_epoch"] < patience:
        w_table = np.array([weights[i] for i in range(len(EMOTIONS))], np.float32)
        targets, sample_weights = _one_hot(y_tr), w_table[y_tr]
        if cfg.teacher:
            soft = teacher_scores(cfg, ckpt_dir, x_tr)
            targets = cfg.teacher_weight * soft + (1 - cfg.teacher_weight) * targets
            sample_weights = np.ones(len(y_tr), np.float32)
        data = batches(x_tr, targets, sample_weights, cfg.batch_size, cfg.seed)
        data.start_at_epoch(done)
        model.fit(
            data,
            validation_data=(x_val[..., None].astype(np.float32), _one_hot(y_val)),
            validation_batch_size=256,
            epochs=cfg.epochs,
            initial_epoch=done,
            verbose=2,
            callbacks=[_Checkpointer(ckpt_dir, state, cfg, patience)],
        )
    return finalize(cfg, state, train_split, test_split)


def average_run(out_dir: str, last: int, data: str | None = None) -> dict:
    """Redo :func:`~engine.emotion.runs.finalize` of a finished run with the average of its last ``last`` epochs.

    Uses the run's ``checkpoints/state.json`` (its config, seed and validation
    split) and the weight snapshots kept in ``checkpoints/snapshots``.
    """
    ckpt_dir = Path(out_dir) / "checkpoints"
    state_file = ckpt_dir / "state.json"
    if not state_file.exists():
        raise WarmStartError(f"{state_file}: no training run there; train with --average-last first.")
    state = json.loads(state_file.read_text())
    cfg = TrainConfig(
        **{**state["config"], "out_dir": str(out_dir), "average_last": last, **({"data": data} if data else {})}
    )
    first = state["epoch"] - last + 1
    if last < 1 or not [e for e in snapshots(ckpt_dir) if first <= e <= state["epoch"]]:
        raise WarmStartError(
            f"{ckpt_dir / SNAPSHOT_DIR}: no weight snapshots of epochs "
            f"{first}-{state['epoch']}; train with --average-last."
        )
    train_split = load_split(cfg.data, "train")
    _, val_idx = stratified_split(train_split.labels, cfg.val_fraction, split_seed_of(cfg))
    _check_run_data(state, train_split, validation_fingerprint(train_split, val_idx), cfg.data)
    return finalize(cfg, state, train_split, load_split(cfg.data, "test"))


def effective_patience(cfg: TrainConfig) -> int:
    """Epochs without a validation gain before training stops.

    Never stops early when ``patience`` <= 0, or when the last epochs are averaged:
    a new cycle from a trained model starts at its best (low learning rate, warm-up),
    dips while the rate is high and climbs back in the cosine tail, the part worth
    averaging; stopping at the dip would average the wrong epochs (it cost a 17-epoch
    run once).
    """
    return cfg.epochs + 1 if cfg.patience <= 0 or cfg.average_last > 0 else cfg.patience


def _snapshot_after(cfg: TrainConfig, planned: int) -> int:
    """Weights of the epochs after this one are kept for averaging."""
    return planned - cfg.average_last if cfg.average_last > 0 else 10**9


def _one_hot(labels: np.ndarray) -> np.ndarray:
    return np.eye(len(EMOTIONS), dtype=np.float32)[labels]
