"""Classification metrics shared by training and evaluate."""

from __future__ import annotations

import numpy as np

from hubcli.train.metrics import classification_metrics


def test_macro_f1_ignores_classes_absent_from_the_data_and_never_predicted():
    # evaluate on a folder holding 2 of the model's 3 classes, all predicted right.
    probabilities = np.array([[0.9, 0.05, 0.05], [0.8, 0.1, 0.1], [0.1, 0.8, 0.1]])
    metrics = classification_metrics([0, 0, 1], probabilities, ["cat", "dog", "fox"])
    assert metrics["accuracy"] == 1.0
    assert metrics["macro_f1"] == 1.0
    assert metrics["per_class"]["fox"]["support"] == 0


def test_macro_f1_counts_a_class_that_is_predicted_but_absent():
    # "fox" never occurs but is predicted once: a real error that must lower macro F1.
    probabilities = np.array([[0.9, 0.05, 0.05], [0.1, 0.1, 0.8], [0.1, 0.8, 0.1]])
    metrics = classification_metrics([0, 0, 1], probabilities, ["cat", "dog", "fox"])
    assert metrics["macro_f1"] == round((2 * 1.0 * 0.5 / 1.5 + 1.0 + 0.0) / 3, 4)
