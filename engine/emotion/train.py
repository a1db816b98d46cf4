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

Any Keras backend trains it: TensorFlow here, JAX on a GPU machine without TensorFlow
(``scripts/train_emotion_gpu.sh``). ``--no-test`` trains on data without test images;
:func:`finish_run` evaluates such a run later.

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

import hashlib
import json
import logging
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .dataset import EMOTIONS, load_split
from .augment import batches
from .averaging import SNAPSHOT_DIR, averaged_model, save_snapshot, snapshots
from .evaluation import evaluate_arrays, predict_probabilities
from .model import DEFAULT_ARCH, make_model
from .model_file import load_model, save_model

log = logging.getLogger(__name__)

MODEL_FILE = "emotion.keras"
METRICS_FILE = "metrics.json"


class WarmStartError(ValueError):
    """A run cannot be continued or averaged (missing files, other data or seed)."""


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
    seed: int = 42              # weights, shuffling, augmentation
    split_seed: int | None = None  # the validation split; None: ``seed`` (runs before it existed)
    resume: bool = False
    init_from: str | None = None
    average_last: int = 0
    arch: str = DEFAULT_ARCH    # engine.emotion.model.ARCHITECTURES
    time_budget: float = 0      # seconds of training; 0: run all ``epochs``
    evaluate_test: bool = True  # False: the data holds no test images (``finish`` evaluates later)
    teacher: str | None = None  # distil from this emotion.keras (a network or an ensemble)
    teacher_weight: float = 0.7  # share of the teacher's scores in the targets (the rest: labels)


def split_seed_of(config: dict | TrainConfig | None) -> int | None:
    """The seed of a run's validation split (``seed`` for runs that predate ``split_seed``)."""
    if config is None:
        return None
    if isinstance(config, TrainConfig):
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
            f"(fingerprint {expected}, the run's {seen}). Pass the data it was trained with ({source}).")


def check_run_validation_split(path, meta: dict, expected: str, data: str) -> None:
    """:func:`check_validation_split` for a finished run, ``meta`` being its metrics.json."""
    check_validation_split(path, (meta.get("data_fingerprint") or {}).get("validation"), expected,
                           data, meta.get("data_source") or "the file it names in data_source")


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
                self.model.optimizer.learning_rate = learning_rate_at(
                    epoch, self.cfg, self.state["planned_epochs"])

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
                log.info("epoch %d/%d: loss %.4f acc %.4f val_loss %.4f val_acc %.4f lr %.2e (%.1f s)",
                         epoch + 1, self.state["planned_epochs"], logs.get("loss", 0),
                         logs.get("accuracy", 0), logs.get("val_loss", 0), logs.get("val_accuracy", 0),
                         logs["learning_rate"], logs["seconds"])
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
                    log.info("time budget: %.0f s left at %.1f s per epoch -> %d epochs",
                             left, pace, planned)
                    self.state["planned_epochs"] = planned

        return Impl(*args, **kwargs)


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
        raise WarmStartError(f"{meta_file}, line {exc.lineno}: not valid JSON ({exc.msg}); it tells "
                             "which data and seed the model was trained with.") from exc
    if meta.get("members"):
        raise WarmStartError(f"{path}: an ensemble of {len(meta['members'])} networks, not one network; "
                             "--init-from takes one network's run (e.g. runs/a/emotion.keras).")
    if meta.get("config") and arch_of(meta["config"]) != cfg.arch:
        raise WarmStartError(f"{path}: a {arch_of(meta['config'])!r} network (its {meta_file.name} says so); "
                             f"this run trains {cfg.arch!r}. Pass --arch {arch_of(meta['config'])} "
                             "to continue it.")
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
            "Train from scratch instead, or pass --split-seed.")
    _, val_idx = stratified_split(train_split.labels, cfg.val_fraction, split_seed_of(cfg))
    check_run_validation_split(path, meta, validation_fingerprint(train_split, val_idx), cfg.data)
    init = {"model": str(path), "accuracy": meta.get("accuracy"),
            "epochs_run": meta.get("epochs_run"), "training_seconds": meta.get("training_seconds", 0),
            "training_curve": meta.get("training_curve", []), "config": meta.get("config"),
            "init": meta.get("init")}
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
        raise WarmStartError(f"{path}: no emotion.keras with its {METRICS_FILE} there; --teacher takes "
                             "a trained model's file (e.g. models/emotion/emotion.keras).")
    try:
        meta = json.loads(meta_file.read_text())
    except json.JSONDecodeError as exc:
        raise WarmStartError(f"{meta_file}, line {exc.lineno}: not valid JSON ({exc.msg}); it tells "
                             "which images the teacher was trained with.") from exc
    seen = (meta.get("data_fingerprint") or {})
    if seen.get("train") != train_split.fingerprint or seen.get("validation") is None:
        raise WarmStartError(
            f"{path}: a teacher must be trained on these training images with a recorded validation "
            f"split (its {meta_file.name} says train fingerprint {seen.get('train')}, validation "
            f"{seen.get('validation')}; this run's train fingerprint is {train_split.fingerprint}).")
    if seen["validation"] != val_fingerprint:
        split = split_seed_of(meta.get("config"))
        raise WarmStartError(
            f"{path}: the teacher held out other validation faces (fingerprint {seen['validation']}, "
            f"this run's {val_fingerprint}), so it learnt faces this run validates on and the "
            f"student's validation accuracy would be flattering. Pass the teacher's --split-seed"
            + (f" ({split})" if split is not None else "") + " and the data it was trained with.")
    return {"model": str(path), "weight": cfg.teacher_weight, "accuracy": meta.get("accuracy"),
            "members": len(meta.get("members") or []) or 1,
            "val_accuracy": (meta.get("selection") or {}).get("ensemble", meta.get("best_val_accuracy"))}


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
    log.info("train %d, validation %d, test %s images; class weights %s", len(y_tr), len(y_val),
             len(test_split) if test_split else "no", {EMOTIONS[k]: round(v, 2) for k, v in weights.items()})

    state_file = ckpt_dir / "state.json"
    if cfg.resume and (ckpt_dir / "last.keras").exists() and state_file.exists():
        state = json.loads(state_file.read_text())
        _check_run_data(state, train_split, val_fingerprint, cfg.data)
        model = load_model(ckpt_dir / "last.keras", compile=True)  # with its optimizer state
        state["planned_epochs"] = cfg.epochs  # this invocation's --epochs (and budget) decide
        log.info("resuming after epoch %d (best val_accuracy %.4f at epoch %d)",
                 state["epoch"], state["best_val_accuracy"], state["best_epoch"])
    else:
        state = {"config": asdict(cfg), "epoch": 0, "best_epoch": 0, "planned_epochs": cfg.epochs,
                 "best_val_accuracy": 0.0, "history": [],
                 "train_fingerprint": train_split.fingerprint, "val_fingerprint": val_fingerprint}
        shutil.rmtree(ckpt_dir / SNAPSHOT_DIR, ignore_errors=True)  # an earlier run's weights
        model = make_model(cfg.arch)
        if cfg.teacher:
            state["teacher"] = check_teacher(cfg, train_split, val_fingerprint)
        if cfg.init_from:
            state["init"] = _warm_start(model, Path(cfg.init_from), train_split, cfg)
        model.compile(
            optimizer=keras.optimizers.AdamW(cfg.learning_rate, weight_decay=cfg.weight_decay),
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
            metrics=["accuracy"])
    log.info("model %s: %d parameters (Keras %s backend)", model.name, model.count_params(),
             keras.backend.backend())

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
        model.fit(data, validation_data=(x_val[..., None].astype(np.float32), _one_hot(y_val)),
                  validation_batch_size=256, epochs=cfg.epochs, initial_epoch=done, verbose=2,
                  callbacks=[_Checkpointer(ckpt_dir, state, cfg, patience)])
    return finalize(cfg, state, train_split, test_split)


def average_run(out_dir: str, last: int, data: str | None = None) -> dict:
    """Redo :func:`finalize` of a finished run with the average of its last ``last`` epochs.

    Uses the run's ``checkpoints/state.json`` (its config, seed and validation
    split) and the weight snapshots kept in ``checkpoints/snapshots``.
    """
    ckpt_dir = Path(out_dir) / "checkpoints"
    state_file = ckpt_dir / "state.json"
    if not state_file.exists():
        raise WarmStartError(f"{state_file}: no training run there; train with --average-last first.")
    state = json.loads(state_file.read_text())
    cfg = TrainConfig(**{**state["config"], "out_dir": str(out_dir), "average_last": last,
                         **({"data": data} if data else {})})
    first = state["epoch"] - last + 1
    if last < 1 or not [e for e in snapshots(ckpt_dir) if first <= e <= state["epoch"]]:
        raise WarmStartError(f"{ckpt_dir / SNAPSHOT_DIR}: no weight snapshots of epochs "
                             f"{first}-{state['epoch']}; train with --average-last.")
    train_split = load_split(cfg.data, "train")
    _, val_idx = stratified_split(train_split.labels, cfg.val_fraction, split_seed_of(cfg))
    _check_run_data(state, train_split, validation_fingerprint(train_split, val_idx), cfg.data)
    return finalize(cfg, state, train_split, load_split(cfg.data, "test"))


def _check_run_data(state: dict, train_split, val_fingerprint: str, data: str) -> None:
    """A run continued (``--resume``, averaging) must see its own images and validation split."""
    if train_split.fingerprint != state.get("train_fingerprint", train_split.fingerprint):
        raise WarmStartError(f"{data}: not the training images this run used (fingerprint "
                             f"{train_split.fingerprint}, the run's {state['train_fingerprint']}).")
    source = Path(state.get("config", {}).get("data", "")).name or "the data it was started with"
    check_validation_split(data, state.get("val_fingerprint"), val_fingerprint, data, source)


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
        selection["weight_average"] = {"epochs": [first, state["epoch"]], "n_snapshots": len(files),
                                       "val_accuracy": val_accuracy(averaged)}
        if selection["weight_average"]["val_accuracy"] > selection["best_epoch"]["val_accuracy"]:
            chosen, shipped = "weight_average", averaged
    selection["chosen"] = chosen
    log.info("validation accuracy (flip-averaged): %s; shipping %s",
             {k: v["val_accuracy"] for k, v in selection.items() if isinstance(v, dict)}, chosen)

    if test_split is not None:
        metrics = evaluate_arrays(shipped, test_split.images, test_split.labels)
    else:
        metrics = {"accuracy": None, "accuracy_single_pass": None, "test_pending": True}
    metrics.update({
        "selection": selection,
        "data_fingerprint": {"train": train_split.fingerprint,
                             "validation": validation_fingerprint(train_split, val_idx),
                             "test": test_split.fingerprint if test_split is not None else None},
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
        "total_training_seconds": round(state.get("train_seconds", 0)
                                        + _lineage_total(state.get("init"), "training_seconds"), 1),
        **_versions(),
    })
    save_model(shipped, out / MODEL_FILE)
    _atomic_json(metrics, out / METRICS_FILE)
    if test_split is not None:
        log.info("test accuracy %.4f (flip-averaged), %.4f (single pass)",
                 metrics["accuracy"], metrics["accuracy_single_pass"])
    else:
        log.info("no test images in %s: run `python -m engine.emotion finish --out %s --data PATH` "
                 "where they are", cfg.data, out)
    return metrics


def finish_run(out_dir: str, data: str) -> dict:
    """Evaluate on ``data``'s test images a run trained where they were not (``--no-test``).

    The run's own training images must be in ``data`` too (same fingerprint): this
    ties the test score to the model it describes. Fills in ``metrics.json``.
    """
    out = Path(out_dir)
    meta_file, model_file = out / METRICS_FILE, out / MODEL_FILE
    if not meta_file.exists() or not model_file.exists():
        raise WarmStartError(f"{out}: no {MODEL_FILE} with its {METRICS_FILE}; pass the --out folder "
                             "of a finished training run.")
    metrics = json.loads(meta_file.read_text())
    if not metrics.get("test_pending"):
        raise WarmStartError(f"{meta_file}: this run was already evaluated on test "
                             f"(accuracy {metrics.get('accuracy')}); nothing to finish.")
    train_split = load_split(data, "train")
    if train_split.fingerprint != metrics["data_fingerprint"]["train"]:
        raise WarmStartError(f"{data}: not the training images this run used (fingerprint "
                             f"{train_split.fingerprint}, the run's {metrics['data_fingerprint']['train']}).")
    test_split = load_split(data, "test")
    model = load_model(model_file, compile=False)
    metrics.pop("test_pending")
    metrics.update(evaluate_arrays(model, test_split.images, test_split.labels))
    metrics["data_fingerprint"]["test"] = test_split.fingerprint
    metrics["test_evaluated_with"] = _versions()
    _atomic_json(metrics, meta_file)
    log.info("test accuracy %.4f (flip-averaged), %.4f (single pass)",
             metrics["accuracy"], metrics["accuracy_single_pass"])
    return metrics
