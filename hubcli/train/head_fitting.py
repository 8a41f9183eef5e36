"""The training core's head step: ``--head auto`` or ``fixed`` on cached features, and ``--cv K``.

``auto`` cross-validates the L2 strength on the training and validation features
(:func:`hubcli.train.selection.select_head`) and refits on all of them; the result goes into
the same Keras ``Dense`` layer the fixed head trains, so the serving model, ``model.keras``
and every export are unchanged in shape. Before fine-tuning, the warm-start head is fitted
on the training split only, at the chosen strength, so fine-tuning's early stopping still
watches examples no part of the model has seen.

``fixed`` is the Keras head of :mod:`hubcli.train.head` (epochs, learning rate, dropout,
label smoothing, early stopping on validation).

Example:
    >>> fitted = fit_head_step(features, labels, config=TrainConfig(), kind=SingleLabel(), num_labels=5, log_dir=None)  # doctest: +SKIP
    >>> fitted.choice.l2, fitted.choice.cv_mean  # doctest: +SKIP
    (0.1, 0.902)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from hubcli.train.config import TrainConfig
from hubcli.train.head import build_head, fit_head, head_for_fit
from hubcli.train.labeling import MultiLabel, SingleLabel
from hubcli.train.logistic import fit_linear, predict_probabilities
from hubcli.train.selection import Augmented, HeadChoice, cross_validate, select_head, selection_arrays


@dataclass
class FittedHead:
    """The head on features, its training history (fixed head), and how it was chosen (auto)."""

    head: keras.Model
    history: dict = field(default_factory=dict)
    choice: HeadChoice | None = None
    #: Per-label thresholds of a multi-label head.
    thresholds: np.ndarray | None = None


def fit_head_step(
    x: Mapping[str, np.ndarray], y: Mapping[str, np.ndarray], *, config: TrainConfig, kind: SingleLabel | MultiLabel, num_labels: int,
    augmented: Augmented | None = None, log_dir: Path | None = None, choice: HeadChoice | None = None,
) -> FittedHead:
    """Fit the head on split features ``x`` / labels ``y`` (``train``, maybe ``validation``; never test).

    ``augmented`` holds cached augmented copies of training examples (sources index ``x["train"]``).
    ``choice`` is an automatic head already selected on these very features (by the prefetching helper).
    """
    if config.head == "auto":
        return _auto_head(x, y, config=config, kind=kind, num_labels=num_labels, augmented=augmented, choice=choice)
    x_train, y_train = x["train"], y["train"]
    if augmented is not None:
        x_train, y_train = np.concatenate([x_train, augmented.x]), np.concatenate([y_train, augmented.y])
    head = build_head(x_train.shape[1], num_labels, config)
    validation = None
    if "validation" in x:
        validation = (x["validation"], kind.keras_targets(y["validation"], num_labels))
    weights = kind.head_task(num_labels, config.class_weight).weights(y_train)
    history = fit_head(head, (x_train, kind.keras_targets(y_train, num_labels)), validation, config=config, log_dir=log_dir, sample_weight=weights)
    return FittedHead(head=head, history=history)


def _auto_head(
    x: Mapping[str, np.ndarray], y: Mapping[str, np.ndarray], *, config: TrainConfig, kind: SingleLabel | MultiLabel, num_labels: int,
    augmented: Augmented | None, choice: HeadChoice | None,
) -> FittedHead:
    task = kind.head_task(num_labels, config.class_weight)
    if choice is None:
        choice = select_head(*selection_arrays(x, y), task=task, seed=config.seed, augmented=augmented)
    fit = choice.fit
    if config.fine_tune and "validation" in x:
        x_train, y_train = x["train"], y["train"]
        if augmented is not None:
            x_train, y_train = np.concatenate([x_train, augmented.x]), np.concatenate([y_train, augmented.y])
        fit = fit_linear(x_train, task.targets(y_train), l2=choice.l2, activation=task.activation, sample_weight=task.weights(y_train))
    return FittedHead(head=head_for_fit(fit, choice.l2, config), choice=choice, thresholds=choice.thresholds)


def cross_validated_score(x: np.ndarray, y: np.ndarray, *, config: TrainConfig, kind: SingleLabel | MultiLabel, num_labels: int) -> dict:
    """``--cv K``: the whole head procedure (``auto`` or ``fixed``) cross-validated on all labelled features.

    Fine-tuning is not repeated per fold, nor are augmented copies used: the estimate is of
    the head on the plain frozen features.
    """
    task = kind.head_task(num_labels, config.class_weight)

    def auto(x_fit: np.ndarray, y_fit: np.ndarray, x_held: np.ndarray):
        choice = select_head(x_fit, y_fit, task=task, seed=config.seed, purpose="selection inside --cv")
        return predict_probabilities(x_held, choice.fit), choice.thresholds

    def fixed(x_fit: np.ndarray, y_fit: np.ndarray, x_held: np.ndarray):
        head = build_head(x_fit.shape[1], num_labels, config)
        weights = task.weights(y_fit)
        fit_head(head, (x_fit, kind.keras_targets(y_fit, num_labels)), None, config=config, sample_weight=weights)
        return head.predict(x_held, verbose=0), None

    result = cross_validate(x, y, task=task, folds=config.cv_folds, seed=config.seed, fit_predict=auto if config.head == "auto" else fixed)
    return {**result, "head": config.head, "examples": int(len(y))}
