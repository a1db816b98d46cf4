"""Accuracy, per-class precision/recall and the confusion matrix of an emotion model."""

from __future__ import annotations

import numpy as np

from .dataset import EMOTIONS


def predict_probabilities(model, images: np.ndarray, flip_average: bool = True, batch_size: int = 512) -> np.ndarray:
    """Softmax scores for (n, 48, 48) uint8 faces, averaged with their mirror image.

    Averaging a face with its horizontal mirror is the test-time augmentation that
    inference uses too, so evaluation measures what users get.
    """
    x = images[..., None].astype(np.float32)
    probs = model.predict(x, batch_size=batch_size, verbose=0)
    if flip_average:
        probs = (probs + model.predict(x[:, :, ::-1], batch_size=batch_size, verbose=0)) / 2
    return probs


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, k: int = len(EMOTIONS)) -> np.ndarray:
    m = np.zeros((k, k), np.int64)
    np.add.at(m, (y_true, y_pred), 1)
    return m


def metrics_from_predictions(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """Accuracy, per-class precision/recall/support and confusion matrix (rows = truth)."""
    cm = confusion_matrix(y_true, y_pred)
    per_class = {}
    for i, name in enumerate(EMOTIONS):
        tp, predicted, actual = cm[i, i], cm[:, i].sum(), cm[i, :].sum()
        per_class[name] = {
            "precision": round(float(tp / predicted), 4) if predicted else 0.0,
            "recall": round(float(tp / actual), 4) if actual else 0.0,
            "support": int(actual),
        }
    return {
        "accuracy": round(float(np.trace(cm) / max(1, cm.sum())), 4),
        "n_images": int(cm.sum()),
        "per_class": per_class,
        "labels": list(EMOTIONS),
        "confusion_matrix": cm.tolist(),
    }


def evaluate_arrays(model, images: np.ndarray, labels: np.ndarray) -> dict:
    """Evaluate with flip averaging; also report the single-pass accuracy."""
    probs = predict_probabilities(model, images, flip_average=True)
    out = metrics_from_predictions(labels, probs.argmax(1))
    single = predict_probabilities(model, images, flip_average=False).argmax(1)
    out["accuracy_single_pass"] = round(float((single == labels).mean()), 4)
    return out
