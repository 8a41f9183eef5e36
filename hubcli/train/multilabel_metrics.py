"""Multi-label metrics and per-label decision thresholds, shared by training and ``evaluate``.

Each example carries any number of labels; the head gives one probability per label,
and a label is predicted when its probability reaches that label's threshold.
Thresholds are chosen where each label's F1 peaks on held-out probabilities (out of
fold, or on validation); the metrics then follow the usual definitions:

- ``micro_f1``: F1 of all (example, label) decisions pooled;
- ``macro_f1``: mean per-label F1 over the labels present in the data or predicted;
- ``subset_accuracy``: share of examples whose whole label set is right;
- ``mean_average_precision``: mean over labels (with positives) of the average
  precision of the ranking by probability, threshold-free.

Pure numpy.

Example:
    >>> truth = np.array([[1, 0], [1, 1], [0, 1], [0, 0]])
    >>> probabilities = np.array([[0.9, 0.2], [0.8, 0.7], [0.3, 0.6], [0.1, 0.55]])
    >>> metrics = multilabel_metrics(truth, probabilities, np.array([0.5, 0.5]), ["cat", "dog"])
    >>> metrics["micro_f1"], metrics["subset_accuracy"], metrics["per_label"]["dog"]["f1"]
    (0.8889, 0.75, 0.8)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: The threshold of a label without any positive example to learn one from.
DEFAULT_THRESHOLD = 0.5


def _ratio(numerator: float, denominator: float) -> float:
    return round(float(numerator) / float(denominator), 4) if denominator else 0.0


def _f1(true_positives: float, predicted: float, actual: float) -> float:
    return round(2.0 * true_positives / (predicted + actual), 4) if predicted + actual else 0.0


def _ranked(truth: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores sorted high to low, true positives among the top j, and the last index of each tied score."""
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    hits = np.cumsum(truth[order])
    # A threshold cannot split tied scores: only the last of a run of ties is a cut point.
    cuts = np.flatnonzero(np.append(sorted_scores[1:] != sorted_scores[:-1], True))
    return sorted_scores, hits, cuts


def average_precision(truth: Sequence[bool], scores: Sequence[float]) -> float | None:
    """Area under the precision-recall steps of the ranking (None without positives).

    Example:
        >>> average_precision([1, 0, 1], [0.9, 0.8, 0.7])
        0.8333
    """
    truth = np.asarray(truth, dtype=np.float64)
    positives = truth.sum()
    if not positives:
        return None
    _, hits, cuts = _ranked(truth, np.asarray(scores, dtype=np.float64))
    precision = hits[cuts] / (cuts + 1)
    recall_gain = np.diff(np.concatenate([[0.0], hits[cuts]])) / positives
    return round(float((precision * recall_gain).sum()), 4)


def best_threshold(truth: Sequence[bool], scores: Sequence[float]) -> float:
    """The threshold with the highest F1 of ``score >= threshold``, midway between two scores.

    Example:
        >>> best_threshold([1, 1, 0, 0], [0.9, 0.6, 0.4, 0.1])
        0.5
    """
    truth = np.asarray(truth, dtype=np.float64)
    positives = truth.sum()
    if not positives or len(truth) == 0:
        return DEFAULT_THRESHOLD
    sorted_scores, hits, cuts = _ranked(truth, np.asarray(scores, dtype=np.float64))
    f1 = 2.0 * hits[cuts] / (cuts + 1 + positives)
    cut = cuts[int(np.argmax(f1))]
    below = sorted_scores[cut + 1] if cut + 1 < len(sorted_scores) else 0.0
    return float((sorted_scores[cut] + below) / 2.0)


def choose_thresholds(indicators: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """One F1-maximising threshold per label (columns of ``indicators``), rounded to 6 places.

    Rounded once, here: run.json records them, and the serving model compares with the same values.
    """
    indicators = np.asarray(indicators, dtype=bool)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    return np.round([best_threshold(indicators[:, j], probabilities[:, j]) for j in range(indicators.shape[1])], 6)


def multilabel_metrics(indicators: np.ndarray, probabilities: np.ndarray, thresholds: np.ndarray, labels: Sequence[str]) -> dict:
    """Micro/macro F1, subset accuracy, mAP, mean binary cross-entropy and per-label scores."""
    truth = np.asarray(indicators, dtype=bool).reshape(-1, len(labels))
    probabilities = np.asarray(probabilities, dtype=np.float64).reshape(-1, len(labels))
    thresholds = np.asarray(thresholds, dtype=np.float64)
    predicted = probabilities >= thresholds[None, :]
    per_label = {}
    for index, name in enumerate(labels):
        hits = float((truth[:, index] & predicted[:, index]).sum())
        guessed, actual = float(predicted[:, index].sum()), float(truth[:, index].sum())
        per_label[name] = {
            "precision": _ratio(hits, guessed),
            "recall": _ratio(hits, actual),
            "f1": _f1(hits, guessed, actual),
            "support": int(actual),
            "average_precision": average_precision(truth[:, index], probabilities[:, index]),
            "threshold": round(float(thresholds[index]), 4),
        }
    hits, guessed, actual = float((truth & predicted).sum()), float(predicted.sum()), float(truth.sum())
    # As for single-label macro F1: a label neither present nor predicted is not a zero.
    seen = [name for index, name in enumerate(labels) if truth[:, index].any() or predicted[:, index].any()]
    precisions = [scores["average_precision"] for scores in per_label.values() if scores["average_precision"] is not None]
    clipped = np.clip(probabilities, 1e-7, 1.0 - 1e-7)
    cross_entropy = -(truth * np.log(clipped) + ~truth * np.log(1.0 - clipped)).mean() if len(truth) else None
    return {
        "micro_f1": _f1(hits, guessed, actual),
        "macro_f1": round(float(np.mean([per_label[name]["f1"] for name in seen])), 4) if seen else 0.0,
        "micro_precision": _ratio(hits, guessed),
        "micro_recall": _ratio(hits, actual),
        "subset_accuracy": _ratio((truth == predicted).all(axis=1).sum(), len(truth)),
        "mean_average_precision": round(float(np.mean(precisions)), 4) if precisions else None,
        "loss": round(float(cross_entropy), 4) if cross_entropy is not None else None,
        "examples": int(len(truth)),
        "per_label": per_label,
    }
