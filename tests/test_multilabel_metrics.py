"""Multi-label metrics and thresholds against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from hubcli.train.multilabel_metrics import average_precision, best_threshold, choose_thresholds, multilabel_metrics


def test_average_precision_follows_the_ranking():
    assert average_precision([1, 1, 0, 0], [0.9, 0.8, 0.3, 0.1]) == 1.0
    # Hits at ranks 2 and 3: (1/2 + 2/3) / 2.
    assert average_precision([0, 1, 1], [0.9, 0.8, 0.7]) == pytest.approx(0.5833, abs=1e-4)
    assert average_precision([0, 0], [0.4, 0.2]) is None


def test_tied_scores_are_one_cut_point():
    # Both 0.5s go together: cutting between them is impossible.
    assert average_precision([1, 0], [0.5, 0.5]) == 0.5
    assert best_threshold([1, 0, 0], [0.5, 0.5, 0.1]) == pytest.approx(0.3)


def test_thresholds_maximise_each_labels_f1():
    truth = np.array([[1, 0], [1, 0], [0, 1], [0, 0]])
    probabilities = np.array([[0.30, 0.9], [0.25, 0.2], [0.10, 0.7], [0.05, 0.8]])
    thresholds = choose_thresholds(truth, probabilities)
    assert thresholds[0] == pytest.approx(0.175)  # between 0.25 (positive) and 0.10 (negative)
    metrics = multilabel_metrics(truth, probabilities, thresholds, ["a", "b"])
    assert metrics["per_label"]["a"]["f1"] == 1.0 and metrics["per_label"]["a"]["threshold"] == 0.175


def test_metrics_by_hand():
    truth = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 0]])
    probabilities = np.array([[0.9, 0.2, 0.1], [0.8, 0.4, 0.1], [0.3, 0.6, 0.7], [0.1, 0.55, 0.1]])
    metrics = multilabel_metrics(truth, probabilities, np.array([0.5, 0.5, 0.5]), ["a", "b", "c"])
    # a: TP 2; b: TP 1, FP 1 (row 4), FN 1 (row 2); c: FP 1, no positives.
    assert metrics["per_label"]["b"] == {
        "precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2, "average_precision": 0.8333, "threshold": 0.5,
    }
    assert metrics["micro_precision"] == 0.6 and metrics["micro_recall"] == 0.75
    assert metrics["micro_f1"] == pytest.approx(2 * 0.6 * 0.75 / 1.35, abs=1e-4)
    # c has no positives but was predicted once: it counts, with F1 0.
    assert metrics["macro_f1"] == pytest.approx((1.0 + 0.5 + 0.0) / 3, abs=1e-4)
    assert metrics["subset_accuracy"] == 0.25  # only row 1 is wholly right
    assert metrics["mean_average_precision"] == pytest.approx((1.0 + 0.8333) / 2, abs=1e-4)
    assert metrics["examples"] == 4 and metrics["loss"] > 0
