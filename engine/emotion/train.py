"""Train the emotion CNN on FER2013.

The recipe, step by step:

1. Load ``train`` and ``test``; carve a seeded, stratified validation split out of
   ``train``. Test is only touched once, at the very end.
2. Augment on the fly (flip, shift, rotation, zoom, contrast): faces in a webcam
   are never as well aligned as FER2013's.
3. Handle the imbalance (disgust has 436 images, happy 7,215) with class weights
   softened by a square root: full inverse-frequency weights cost overall accuracy.
4. AdamW with a warm-up then cosine decay, label smoothing.
5. After every epoch: save a full checkpoint (model + optimizer) and, when the
   validation accuracy improves, the best weights. ``--resume`` continues from the
   last checkpoint; training stops early when validation accuracy stalls.
   With ``--average-last N`` the last N epochs' weights are kept too.
6. Pick what to ship on validation accuracy: the best epoch, or the average of
   the last N epochs' weights (:mod:`engine.emotion.averaging`).
7. Evaluate it on test (with the horizontal-flip averaging that inference uses)
   and write ``emotion.keras`` + ``metrics.json``.

``--init-from MODEL`` starts a new learning-rate cycle from a finished model of
the same data and seed; ``metrics.json`` then records the lineage (``init``).
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

from .dataset import EMOTIONS, load_split
from .averaging import SNAPSHOT_DIR, averaged_model, save_snapshot, snapshots
from .evaluation import evaluate_arrays, predict_probabilities
from .model import DEFAULT_ARCH, make_model

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


def class_weights(labels: np.ndarray) -> dict[int, float]:
    """Square-root inverse-frequency weights, mean 1 over the samples."""
    counts = np.bincount(labels, minlength=len(EMOTIONS)).astype(float)
    w = np.sqrt(counts.sum() / np.maximum(counts, 1))
    w /= (w[labels]).mean()
    return {i: float(w[i]) for i in range(len(EMOTIONS))}


def _augmenter(seed: int):
    import keras
    from keras import layers
    return keras.Sequential([
        layers.RandomFlip("horizontal", seed=seed),
        layers.RandomTranslation(0.1, 0.1, fill_mode="reflect", seed=seed + 1),
        layers.RandomRotation(0.05, fill_mode="reflect", seed=seed + 2),
        layers.RandomZoom(0.1, fill_mode="reflect", seed=seed + 3),
        layers.RandomContrast(0.2, seed=seed + 4),
    ], name="augment")


def _datasets(x_tr, y_tr, x_val, y_val, cfg: TrainConfig, weights):
    import tensorflow as tf
    aug = _augmenter(cfg.seed)
    w_table = tf.constant([weights[i] for i in range(len(EMOTIONS))], tf.float32)

    def augment(x, y):
        x = tf.cast(x, tf.float32)
        x = aug(x, training=True)
        x = tf.clip_by_value(x, 0.0, 255.0)
        return x, tf.one_hot(y, len(EMOTIONS)), tf.gather(w_table, y)

    train = (tf.data.Dataset.from_tensor_slices((x_tr[..., None], y_tr))
             .shuffle(len(y_tr), seed=cfg.seed, reshuffle_each_iteration=True)
             .batch(cfg.batch_size)
             .map(augment, num_parallel_calls=tf.data.AUTOTUNE)
             .prefetch(tf.data.AUTOTUNE))
    val = (tf.data.Dataset.from_tensor_slices(
        (x_val[..., None].astype(np.float32), tf.one_hot(y_val, len(EMOTIONS))))
        .batch(256).prefetch(tf.data.AUTOTUNE))
    return train, val


def _schedule(cfg: TrainConfig, steps_per_epoch: int):
    import keras
    total = cfg.epochs * steps_per_epoch
    warmup = cfg.warmup_epochs * steps_per_epoch
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=cfg.learning_rate / 10, decay_steps=max(1, total - warmup),
        alpha=0.01, warmup_target=cfg.learning_rate, warmup_steps=warmup)


def _atomic_save(model, path: Path) -> None:
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    model.save(tmp)
    os.replace(tmp, path)


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
    """Keras callback: last + best checkpoints, training state, early stopping."""

    def __new__(cls, *args, **kwargs):  # build the Keras subclass lazily (no TF at import)
        import keras

        class Impl(keras.callbacks.Callback):
            def __init__(self, ckpt_dir: Path, state: dict, patience: int, snapshot_after: int):
                super().__init__()
                self.ckpt_dir, self.state, self.patience = ckpt_dir, state, patience
                self.snapshot_after = snapshot_after
                self.t0 = time.time()

            def on_epoch_end(self, epoch, logs=None):
                logs = {k: float(v) for k, v in (logs or {}).items()}
                logs["seconds"] = round(time.time() - self.t0, 1)
                self.t0 = time.time()
                self.state["history"].append({"epoch": epoch + 1, **logs})
                self.state["epoch"] = epoch + 1
                self.state["train_seconds"] = self.state.get("train_seconds", 0) + logs["seconds"]
                if logs.get("val_accuracy", 0) > self.state["best_val_accuracy"]:
                    self.state["best_val_accuracy"] = logs["val_accuracy"]
                    self.state["best_epoch"] = epoch + 1
                    _atomic_save(self.model, self.ckpt_dir / "best.keras")
                if epoch + 1 > self.snapshot_after:
                    save_snapshot(self.model, self.ckpt_dir, epoch + 1)
                _atomic_save(self.model, self.ckpt_dir / "last.keras")
                _atomic_json(self.state, self.ckpt_dir / "state.json")
                log.info("epoch %d: loss %.4f acc %.4f val_loss %.4f val_acc %.4f (%.0f s)",
                         epoch + 1, logs.get("loss", 0), logs.get("accuracy", 0),
                         logs.get("val_loss", 0), logs.get("val_accuracy", 0), logs["seconds"])
                if epoch + 1 - self.state["best_epoch"] >= self.patience:
                    log.info("no val_accuracy gain for %d epochs: stopping", self.patience)
                    self.model.stop_training = True

        return Impl(*args, **kwargs)


def _warm_start(model, path: Path, train_split, cfg: TrainConfig) -> dict:
    """Load the weights of an earlier model (a new learning-rate cycle continues its training).

    Only a model trained on the same training images with the same validation split
    (``split_seed``) may be continued: otherwise its training set overlaps ours and the
    validation accuracy used to pick the best epoch would be flattering.
    Returns the earlier run's summary, kept in ``metrics.json`` as its lineage.
    """
    import keras

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
        earlier = keras.models.load_model(path, compile=False)
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
    init = {"model": str(path), "accuracy": meta.get("accuracy"),
            "epochs_run": meta.get("epochs_run"), "training_seconds": meta.get("training_seconds", 0),
            "training_curve": meta.get("training_curve", []), "config": meta.get("config"),
            "init": meta.get("init")}
    log.info("continuing %s (%s epochs, test accuracy %s)", path, init["epochs_run"], init["accuracy"])
    return init


def train(cfg: TrainConfig) -> dict:
    """Run the whole recipe; returns the metrics written to ``metrics.json``."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(cfg.seed)
    out = Path(cfg.out_dir)
    ckpt_dir = out / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)

    log.info("loading FER2013 from %s", cfg.data)
    train_split = load_split(cfg.data, "train")
    test_split = load_split(cfg.data, "test")
    tr_idx, val_idx = stratified_split(train_split.labels, cfg.val_fraction, split_seed_of(cfg))
    x_tr, y_tr = train_split.images[tr_idx], train_split.labels[tr_idx]
    x_val, y_val = train_split.images[val_idx], train_split.labels[val_idx]
    weights = class_weights(y_tr)
    log.info("train %d, validation %d, test %d images; class weights %s",
             len(y_tr), len(y_val), len(test_split), {EMOTIONS[k]: round(v, 2) for k, v in weights.items()})

    train_ds, val_ds = _datasets(x_tr, y_tr, x_val, y_val, cfg, weights)
    steps = math.ceil(len(y_tr) / cfg.batch_size)

    state_file = ckpt_dir / "state.json"
    if cfg.resume and (ckpt_dir / "last.keras").exists() and state_file.exists():
        state = json.loads(state_file.read_text())
        model = keras.models.load_model(ckpt_dir / "last.keras")
        log.info("resuming after epoch %d (best val_accuracy %.4f at epoch %d)",
                 state["epoch"], state["best_val_accuracy"], state["best_epoch"])
    else:
        state = {"config": asdict(cfg), "epoch": 0, "best_epoch": 0,
                 "best_val_accuracy": 0.0, "history": [],
                 "train_fingerprint": train_split.fingerprint}
        shutil.rmtree(ckpt_dir / SNAPSHOT_DIR, ignore_errors=True)  # an earlier run's weights
        model = make_model(cfg.arch)
        if cfg.init_from:
            state["init"] = _warm_start(model, Path(cfg.init_from), train_split, cfg)
        model.compile(
            optimizer=keras.optimizers.AdamW(_schedule(cfg, steps), weight_decay=cfg.weight_decay),
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
            metrics=["accuracy"])
    log.info("model %s: %d parameters", model.name, model.count_params())

    patience = effective_patience(cfg)
    if state["epoch"] < cfg.epochs and state["epoch"] - state["best_epoch"] < patience:
        model.fit(train_ds, validation_data=val_ds, epochs=cfg.epochs,
                  initial_epoch=state["epoch"], verbose=2,
                  callbacks=[_Checkpointer(ckpt_dir, state, patience, _snapshot_after(cfg))])
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
    if train_split.fingerprint != state.get("train_fingerprint", train_split.fingerprint):
        raise WarmStartError(f"{cfg.data}: not the training images this run used.")
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


def _snapshot_after(cfg: TrainConfig) -> int:
    """Weights of the epochs after this one are kept for averaging."""
    return cfg.epochs - cfg.average_last if cfg.average_last > 0 else 10**9


def finalize(cfg: TrainConfig, state: dict, train_split, test_split) -> dict:
    """Pick the model to ship on validation accuracy, evaluate it on test, write it.

    The candidates are the best epoch and, when snapshots of the last
    ``cfg.average_last`` epochs exist, their weight average. Both are scored on the
    validation split with the flip averaging that inference uses.
    """
    import keras
    import tensorflow as tf

    out = Path(cfg.out_dir)
    ckpt_dir = out / "checkpoints"
    tr_idx, val_idx = stratified_split(train_split.labels, cfg.val_fraction, split_seed_of(cfg))
    x_val, y_val = train_split.images[val_idx], train_split.labels[val_idx]

    def val_accuracy(m) -> float:
        return round(float((predict_probabilities(m, x_val).argmax(1) == y_val).mean()), 4)

    # compile=False drops the optimizer state (2x the weights): the shipped file stays small.
    best = keras.models.load_model(ckpt_dir / "best.keras", compile=False)
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

    metrics = evaluate_arrays(shipped, test_split.images, test_split.labels)
    metrics.update({
        "selection": selection,
        "data_fingerprint": {"train": train_split.fingerprint, "test": test_split.fingerprint},
        "data_source": Path(cfg.data).name,
        "best_epoch": state["best_epoch"],
        "best_val_accuracy": state["best_val_accuracy"],
        "epochs_run": state["epoch"],
        "training_seconds": round(state.get("train_seconds", 0), 1),
        "parameters": int(shipped.count_params()),
        "training_curve": state["history"],
        "config": asdict(cfg),
        "init": state.get("init"),
        "total_epochs": state["epoch"] + _lineage_total(state.get("init"), "epochs_run"),
        "total_training_seconds": round(state.get("train_seconds", 0)
                                        + _lineage_total(state.get("init"), "training_seconds"), 1),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    })
    _atomic_save(shipped, out / MODEL_FILE)
    _atomic_json(metrics, out / METRICS_FILE)
    log.info("test accuracy %.4f (flip-averaged), %.4f (single pass)",
             metrics["accuracy"], metrics["accuracy_single_pass"])
    return metrics
