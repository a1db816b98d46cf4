"""How good is the shipped emotion model? Tables for people, from its ``metrics.json``.

``metrics.json`` is written by training (see :mod:`engine.emotion.runs`); this
module only reshapes it: headline figures, per-class precision/recall, the
row-normalised confusion matrix and the training curve over every run of the
model's lineage (a model continued with ``--init-from`` shows both cycles; an
ensemble shows each network's lineage, ``net 1 · run 2``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..settings import get_settings
from .dataset import EMOTIONS
from .runs import METRICS_FILE, arch_of, lineage

ARCH_NAMES = {"vgg": "VGG (4 conv blocks + dense)", "res": "residual (3 blocks + global pooling)"}


class ReportError(ValueError):
    """metrics.json is missing or not what training writes."""


@dataclass
class ModelReport:
    summary: dict  # accuracy, one-pass accuracy, networks, images, parameters, epochs, hours, choice
    per_class: pd.DataFrame  # emotion, precision, recall, support
    confusion: pd.DataFrame  # share of each true emotion (rows) predicted as each emotion (columns)
    curve: pd.DataFrame  # epoch (counted over a network's lineage), run, split, accuracy
    networks: pd.DataFrame  # one row per network: architecture, parameters, epochs, its own test accuracy


def load_report(model_dir: str | Path | None = None) -> ModelReport:
    path = Path(model_dir or get_settings().emotion_model_dir) / METRICS_FILE
    try:
        metrics = json.loads(path.read_text())
    except FileNotFoundError:
        raise ReportError(
            f"{path}: no such file. The emotion model ships with it; restore it with "
            f"`git checkout {METRICS_FILE}` or retrain (`python -m engine.emotion train`)."
        )
    except json.JSONDecodeError as exc:
        raise ReportError(f"{path}, line {exc.lineno}: not valid JSON ({exc.msg}).") from exc
    try:
        return _report(metrics)
    except (KeyError, TypeError, ValueError) as exc:
        raise ReportError(f"{path}: not the metrics file training writes (missing or bad {exc}).") from exc


def _report(metrics: dict) -> ModelReport:
    labels = metrics["labels"]
    if list(labels) != list(EMOTIONS):
        raise ValueError(f"labels {labels}")
    per_class = pd.DataFrame([{"emotion": k, **metrics["per_class"][k]} for k in labels])
    cm = pd.DataFrame(metrics["confusion_matrix"], index=labels, columns=labels, dtype=float)
    confusion = cm.div(cm.sum(axis=1).where(lambda s: s > 0, 1), axis=0).round(3)
    confusion.index.name, confusion.columns.name = "true", "predicted"

    members = metrics.get("members") or [metrics]
    rows = []
    for net, member in enumerate(members, start=1):
        offset = 0
        for number, run in enumerate(lineage(member), start=1):
            name = f"net {net} · run {number}" if len(members) > 1 else f"run {number}"
            for point in run.get("training_curve") or []:
                for split, key in (("train", "accuracy"), ("validation", "val_accuracy")):
                    if key in point:
                        rows.append(
                            {
                                "epoch": offset + point["epoch"],
                                "run": name,
                                "split": split,
                                "accuracy": round(float(point[key]), 4),
                            }
                        )
            offset += len(run.get("training_curve") or [])
    curve = pd.DataFrame(rows, columns=["epoch", "run", "split", "accuracy"])

    archs = [arch_of(m.get("config")) for m in members]
    nets = []
    for net, (member, arch) in enumerate(zip(members, archs), start=1):
        alone = member.get("test") or member  # an ensemble member's own test figures
        nets.append(
            {
                "network": f"net {net}",
                "architecture": ARCH_NAMES.get(arch, arch),
                "parameters": member.get("parameters"),
                "epochs": member.get("total_epochs", member.get("epochs_run")),
                "trained with": _trained_with(member),
                "test accuracy": alone.get("accuracy"),
                "one pass": alone.get("accuracy_single_pass"),
            }
        )
    networks = pd.DataFrame(
        nets, columns=["network", "architecture", "parameters", "epochs", "trained with", "test accuracy", "one pass"]
    )

    selection = metrics.get("selection") or {}
    single = metrics.get("accuracy_single_pass")
    if len(members) > 1:  # live video runs one network per frame: what one pass of one gets
        passes = [(m.get("test") or {}).get("accuracy_single_pass") for m in members]
        single = round(sum(passes) / len(passes), 4) if None not in passes else None
    summary = {
        "accuracy": float(metrics["accuracy"]),
        "accuracy_single_pass": single,
        "networks": len(members),
        "architectures": sorted(set(archs)),
        "n_images": int(metrics["n_images"]),
        "parameters": metrics.get("parameters"),
        "epochs": metrics.get("total_epochs", metrics.get("epochs_run")),
        "training_hours": round(
            (metrics.get("total_training_seconds") or metrics.get("training_seconds") or 0) / 3600, 2
        ),
        "runs": sum(len(lineage(m)) for m in members),
        "shipped": selection.get("chosen", "best_epoch"),
        "storage": metrics.get("storage", "float32"),
    }
    return ModelReport(summary, per_class, confusion, curve, networks)


def _trained_with(run: dict) -> str:
    """The Keras backend (and device, where recorded) a run trained on; runs before this was recorded
    all trained with TensorFlow."""
    backend = {"tensorflow": "TensorFlow", "jax": "JAX"}.get(run.get("backend") or "tensorflow", run.get("backend"))
    return f"{backend} ({run['device']})" if run.get("device") else backend
