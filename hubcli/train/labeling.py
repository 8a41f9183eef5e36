"""Single-label and multi-label runs: everything that differs between the two, in one place.

A single-label example has one class index (``Example.label`` is an int), the head is a
softmax, a prediction is the top class. A multi-label example has a tuple of label
indices (possibly empty), the head is a sigmoid per label, and a label is predicted when
its probability reaches that label's threshold. The training core, serving, evaluate
and predict ask a :class:`SingleLabel` or :class:`MultiLabel` instead of branching.

Example:
    >>> from hubcli.train.splits import Example
    >>> kind = label_kind(multi_label=True)
    >>> kind.label_array([Example("a", (0, 2), None), Example("b", (), None)], 3).tolist()
    [[1, 0, 1], [0, 0, 0]]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from hubcli.train.metrics import classification_metrics
from hubcli.train.multilabel_metrics import multilabel_metrics
from hubcli.train.selection import HeadTask
from hubcli.train.splits import Example


class SingleLabel:
    """One class per example: softmax head, accuracy, top-1 class."""

    multi_label = False
    activation = "softmax"
    #: The headline metric of the run, and the one --cv and the gate report.
    metric = "accuracy"

    def label_array(self, examples: Sequence[Example], num_labels: int) -> np.ndarray:
        """Class indices [n]."""
        return np.asarray([example.label for example in examples], dtype=np.int64)

    def keras_targets(self, y: np.ndarray, num_labels: int) -> np.ndarray:
        from hubcli.train.head import one_hot

        return one_hot(y, num_labels)

    def keras_loss(self, label_smoothing: float):
        import keras

        return keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)

    def keras_metric(self):
        """Fine-tuning's ``accuracy``: the top class is right."""
        import keras

        return keras.metrics.CategoricalAccuracy(name="accuracy")

    def head_task(self, num_labels: int, class_weight: str) -> HeadTask:
        return HeadTask(num_outputs=num_labels, class_weight=class_weight)

    def metrics(self, y: np.ndarray, probabilities: np.ndarray, labels: Sequence[str], thresholds: np.ndarray | None = None) -> dict:
        return classification_metrics(y, probabilities, labels)

    def serving_outputs(self, labels: Sequence[str], thresholds: np.ndarray | None = None) -> Callable:
        from hubcli.train.serving import classify_outputs

        return lambda probabilities: classify_outputs(probabilities, labels)


class MultiLabel:
    """Any labels per example: sigmoid head, per-label thresholds, micro F1."""

    multi_label = True
    activation = "sigmoid"
    metric = "micro_f1"

    def label_array(self, examples: Sequence[Example], num_labels: int) -> np.ndarray:
        """0/1 indicators [n, num_labels]."""
        indicators = np.zeros((len(examples), num_labels), dtype=np.int64)
        for row, example in enumerate(examples):
            indicators[row, list(example.label)] = 1
        return indicators

    def keras_targets(self, y: np.ndarray, num_labels: int) -> np.ndarray:
        return np.asarray(y, dtype=np.float32)

    def keras_loss(self, label_smoothing: float):
        import keras

        return keras.losses.BinaryCrossentropy(label_smoothing=label_smoothing)

    def keras_metric(self):
        """Fine-tuning's ``accuracy``: the share of (example, label) decisions at 0.5 that are right."""
        import keras

        return keras.metrics.BinaryAccuracy(name="accuracy")

    def head_task(self, num_labels: int, class_weight: str) -> HeadTask:
        return HeadTask(num_outputs=num_labels, multi_label=True)

    def metrics(self, y: np.ndarray, probabilities: np.ndarray, labels: Sequence[str], thresholds: np.ndarray | None = None) -> dict:
        return multilabel_metrics(y, probabilities, thresholds, labels)

    def serving_outputs(self, labels: Sequence[str], thresholds: np.ndarray | None = None) -> Callable:
        from hubcli.train.serving import multilabel_outputs

        return lambda probabilities: multilabel_outputs(probabilities, thresholds)


def label_kind(*, multi_label: bool) -> SingleLabel | MultiLabel:
    """The kind of run: :class:`MultiLabel` or :class:`SingleLabel`."""
    return MultiLabel() if multi_label else SingleLabel()
