"""Classification metrics and their plots, shared by images and text.

Pure numpy (and matplotlib's Agg backend for the PNGs): the same numbers come
out of ``retrain-images``, ``classify-text`` and ``evaluate``.

Example:
    >>> import numpy as np
    >>> metrics = classification_metrics([0, 1, 1], np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]), ["cat", "dog"])
    >>> metrics["accuracy"], metrics["balanced_accuracy"], metrics["confusion_matrix"]
    (0.6667, 0.75, [[1, 0], [1, 1]])
    >>> metrics["per_class"]["dog"]
    {'precision': 1.0, 'recall': 0.5, 'f1': 0.6667, 'support': 2}
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _ratio(numerator: float, denominator: float) -> float:
    return round(float(numerator) / float(denominator), 4) if denominator else 0.0


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> np.ndarray:
    """Rows: true class; columns: predicted class."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return matrix


def classification_metrics(y_true: Sequence[int], probabilities: np.ndarray, labels: Sequence[str]) -> dict:
    """Accuracy, balanced accuracy, mean cross-entropy, per-class precision/recall/F1/support, macro F1, confusion matrix."""
    y_true = np.asarray(y_true, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    y_pred = probabilities.argmax(axis=1) if len(y_true) else np.zeros(0, np.int64)
    matrix = confusion_matrix(y_true, y_pred, len(labels))
    per_class = {}
    for index, name in enumerate(labels):
        true_positive = matrix[index, index]
        precision = _ratio(true_positive, matrix[:, index].sum())
        recall = _ratio(true_positive, matrix[index, :].sum())
        f1 = round(2 * precision * recall / (precision + recall), 4) if precision + recall else 0.0
        per_class[name] = {"precision": precision, "recall": recall, "f1": f1, "support": int(matrix[index, :].sum())}
    picked = probabilities[np.arange(len(y_true)), y_true] if len(y_true) else np.ones(0)
    # Macro F1 over the classes the data has or the model predicted (as scikit-learn does):
    # evaluating on a subset of a model's classes must not count the absent ones as F1 = 0.
    seen = [name for index, name in enumerate(labels) if matrix[index, :].sum() or matrix[:, index].sum()]
    # Balanced accuracy: mean recall over the classes the data has (imbalance-proof accuracy).
    present = [name for index, name in enumerate(labels) if matrix[index, :].sum()]
    return {
        "accuracy": _ratio((y_pred == y_true).sum(), len(y_true)),
        "balanced_accuracy": round(float(np.mean([per_class[name]["recall"] for name in present])), 4) if present else 0.0,
        "loss": round(float(-np.log(np.clip(picked, 1e-7, 1.0)).mean()), 4) if len(y_true) else None,
        "examples": int(len(y_true)),
        "macro_f1": round(float(np.mean([per_class[name]["f1"] for name in seen])), 4) if seen else 0.0,
        "per_class": per_class,
        "confusion_matrix": matrix.tolist(),
    }


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; never a window, works headless
    import matplotlib.pyplot as plt

    return plt


def plot_confusion_matrix(matrix, labels: Sequence[str], path: str | Path) -> None:
    """A labelled heat map with counts in each cell."""
    plt = _pyplot()
    matrix = np.asarray(matrix)
    size = max(4.0, 0.6 * len(labels) + 2)
    figure, axes = plt.subplots(figsize=(size, size))
    axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    threshold = matrix.max() / 2 if matrix.size else 0
    for (row, column), count in np.ndenumerate(matrix):
        axes.text(column, row, str(count), ha="center", va="center", color="white" if count > threshold else "black")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_training_curves(history: dict[str, list[float]], path: str | Path, phase_starts: Sequence[int] = ()) -> None:
    """Loss and accuracy per epoch, training and validation; dashed lines where a phase begins."""
    plt = _pyplot()
    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(10, 4))
    for axes, metric in ((loss_axes, "loss"), (accuracy_axes, "accuracy")):
        for prefix, style in (("", "-"), ("val_", "--")):
            values = history.get(prefix + metric)
            if values:
                axes.plot(range(1, len(values) + 1), values, style, label=("validation " if prefix else "training ") + metric)
        for start in phase_starts:
            axes.axvline(start + 0.5, color="grey", linestyle=":")
        axes.set_xlabel("epoch")
        axes.set_title(metric)
        axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_selection_path(curve: Sequence[tuple[float, float, float]], chosen: float, metric: str, path: str | Path) -> None:
    """``--head auto``'s cross-validated score (mean, +/- std band) per L2 strength, the chosen one marked."""
    plt = _pyplot()
    strengths, means, stds = (np.asarray(values, dtype=np.float64) for values in zip(*curve, strict=True))
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.plot(strengths, means, "o-", label=f"cross-validated {metric.replace('_', ' ')}")
    axes.fill_between(strengths, means - stds, means + stds, alpha=0.2)
    axes.axvline(chosen, color="grey", linestyle=":", label=f"chosen l2 = {chosen:.0e}")
    axes.set_xscale("log")
    axes.set_xlabel("l2 strength")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
