"""``--head auto``: choose the head's regularisation by cross-validation on cached features, then refit.

With features cached, one fit of a linear head to convergence (:mod:`hubcli.train.logistic`)
costs milliseconds to a second, so hubcli can afford to choose instead of guessing:

1. the labelled non-test examples are split into stratified folds (:mod:`hubcli.train.folds`,
   deterministic under the seed);
2. for each L2 strength on a half-decade grid, strongest first, every fold's head is
   fitted (warm-started from the previous strength) and scored on its held-out fold;
   the path stops once the score has not improved for two strengths in a row;
3. the best strength's head is refitted on *every* non-test example.

Scores: accuracy for single-label data (balanced accuracy under ``--class-weight
auto``, since that is what the weights optimise), with the mean held-out cross-entropy
breaking ties; the mean binary cross-entropy for multi-label data, whose per-label
thresholds are then chosen on the out-of-fold probabilities. The test split never takes
part (the caller passes only training and validation examples).

:func:`cross_validate` is ``--cv K``: the whole selection repeated inside each of K outer
folds of all labelled data, so the estimate never sees the examples it scores.

Example:
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(60, 4)); y = (x[:, 0] > 0).astype(int)
    >>> choice = select_head(x, y, task=HeadTask(num_outputs=2), folds=3, seed=0)
    >>> choice.cv_mean > 0.9, choice.fit.kernel.shape
    (True, (4, 2))
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from hubcli.train.class_weights import example_weights
from hubcli.train.folds import fold_count, multilabel_folds, stratified_folds
from hubcli.train.logistic import LinearFit, fit_linear, one_blas_thread, predict_probabilities, row_space
from hubcli.train.multilabel_metrics import choose_thresholds, multilabel_metrics

DEFAULT_FOLDS = 5
#: L2 strengths tried, strongest first: 10 down to 1e-6 in half decades.
L2_GRID = tuple(float(10.0 ** (exponent / 2)) for exponent in range(2, -13, -1))
#: Strengths in a row without a better cross-validated score before the path stops.
PATIENCE = 2


@dataclass(frozen=True)
class HeadTask:
    """What the head predicts: one of ``num_outputs`` classes (softmax), or each label (sigmoid).

    Labels ``y`` are class indices [n] for single-label data and 0/1 indicators
    [n, num_outputs] for multi-label data.
    """

    num_outputs: int
    multi_label: bool = False
    class_weight: str = "none"

    @property
    def activation(self) -> str:
        return "sigmoid" if self.multi_label else "softmax"

    @property
    def metric(self) -> str:
        if self.multi_label:
            return "micro_f1"
        return "balanced_accuracy" if self.class_weight == "auto" else "accuracy"

    def targets(self, y: np.ndarray) -> np.ndarray:
        return np.asarray(y, dtype=np.float64) if self.multi_label else np.eye(self.num_outputs)[np.asarray(y, dtype=np.int64)]

    def weights(self, y: np.ndarray) -> np.ndarray | None:
        return None if self.multi_label else example_weights(y, self.num_outputs, self.class_weight)

    def assign_folds(self, y: np.ndarray, *, folds: int, seed: int, purpose: str) -> tuple[np.ndarray, int]:
        """Fold of each example and the fold count the rarest class allows."""
        if self.multi_label:
            counts = {str(j): int(c) for j, c in enumerate(np.asarray(y, dtype=bool).sum(axis=0))}
        else:
            counts = {str(j): int(c) for j, c in enumerate(np.bincount(y, minlength=self.num_outputs)) if c}
        count = fold_count(counts, requested=folds, purpose=purpose)
        split = multilabel_folds if self.multi_label else stratified_folds
        return split(y, folds=count, seed=seed), count


def _single_label_scores(y: np.ndarray, probabilities: np.ndarray, metric: str) -> tuple[float, float]:
    """(score to maximise, mean cross-entropy) of single-label probabilities."""
    predicted = probabilities.argmax(axis=1)
    if metric == "balanced_accuracy":
        recalls = [float((predicted[y == c] == c).mean()) for c in np.unique(y)]
        score = float(np.mean(recalls))
    else:
        score = float((predicted == y).mean())
    loss = float(-np.log(np.clip(probabilities[np.arange(len(y)), y], 1e-12, 1.0)).mean())
    return score, loss


def _binary_cross_entropy(y: np.ndarray, probabilities: np.ndarray) -> float:
    clipped = np.clip(probabilities, 1e-12, 1.0 - 1e-12)
    return float(-(y * np.log(clipped) + (1 - y) * np.log(1.0 - clipped)).mean())


@dataclass(frozen=True)
class Augmented:
    """Extra training rows (augmented copies): features, labels, and the row of ``x`` each copies.

    A copy is fitted in every fold whose training part holds its original and never scored,
    so no fold is ever scored on a copy of an example it trained on.
    """

    x: np.ndarray
    y: np.ndarray
    source: np.ndarray


class _FoldData:
    """One fold's fitting and held-out features.

    With fewer examples than features, both are projected once into the span of the fitting
    rows (see :func:`hubcli.train.logistic.row_space`), so every fit on the L2 path solves the
    smaller exact problem without redoing the decomposition. With more examples, the fold
    keeps only its rows and gathers its features for each fit: every fold's copy held at
    once would be most of the selection's memory (five times the features).
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, fit_rows: np.ndarray, held_rows: np.ndarray, augmented: Augmented | None, task: HeadTask):
        self._x, self._y, self._rows, self._augmented = x, y, fit_rows, augmented
        x_fit, y_fit = _with_copies(x, y, fit_rows, augmented)
        self.targets, self.weights = task.targets(y_fit), task.weights(y_fit)
        self.x_held = x[held_rows]
        self._projected = None
        if x_fit.shape[1] > x_fit.shape[0]:
            self._projected, basis = row_space(x_fit)
            self.x_held = self.x_held @ basis

    @property
    def x_fit(self) -> np.ndarray:
        if self._projected is not None:
            return self._projected
        return _with_copies(self._x, self._y, self._rows, self._augmented)[0]


@dataclass
class HeadChoice:
    """The refitted head and how it was chosen."""

    fit: LinearFit
    l2: float
    folds: int
    metric: str
    cv_mean: float
    cv_std: float
    class_weight: str
    #: (l2, mean score, std) for each strength the path visited, strongest first.
    curve: list[tuple[float, float, float]]
    seconds: float
    #: Held-out probabilities of every example at the chosen strength, from the fold that left it out.
    out_of_fold: np.ndarray | None = None
    #: Per-label decision thresholds (multi-label only).
    thresholds: np.ndarray | None = None
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        """The ``selection`` block of metrics.json."""
        return {
            "head": "auto",
            "solver": "lbfgs",
            "l2": self.l2,
            "class_weight": self.class_weight,
            "cv": {"folds": self.folds, "metric": self.metric, "mean": round(self.cv_mean, 4), "std": round(self.cv_std, 4)},
            "path": [{"l2": l2, "mean": round(mean, 4), "std": round(std, 4)} for l2, mean, std in self.curve],
            "refit_examples": int(self.extra.get("refit_examples", 0)),
            "converged": self.fit.converged,
            "selection_time_s": round(self.seconds, 3),
        }


def selection_arrays(x: Mapping[str, np.ndarray], y: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The features and labels ``--head auto`` selects on: the training split's, then validation's if any.

    Example:
        >>> x, y = selection_arrays({"train": np.zeros((2, 3)), "validation": np.ones((1, 3))}, {"train": np.array([0, 1]), "validation": np.array([1])})
        >>> x.shape, y.tolist()
        ((3, 3), [0, 1, 1])
    """
    parts = [name for name in ("train", "validation") if name in x]
    return np.concatenate([x[name] for name in parts]), np.concatenate([y[name] for name in parts])


def select_head(
    x: np.ndarray, y: np.ndarray, *, task: HeadTask, folds: int = DEFAULT_FOLDS, seed: int = 0, purpose: str = "head selection",
    augmented: Augmented | None = None,
) -> HeadChoice:
    """Cross-validate the L2 path on ``(x, y)``, then refit the best strength on all of it (and ``augmented``)."""
    with one_blas_thread():
        return _select_head(x, y, task=task, folds=folds, seed=seed, purpose=purpose, augmented=augmented)


def _with_copies(x: np.ndarray, y: np.ndarray, rows: np.ndarray, augmented: Augmented | None) -> tuple[np.ndarray, np.ndarray]:
    """``x[rows]``, ``y[rows]`` plus the augmented copies of those rows."""
    if augmented is None:
        return x[rows], y[rows]
    copies = np.isin(augmented.source, rows)
    return np.concatenate([x[rows], augmented.x[copies]]), np.concatenate([y[rows], augmented.y[copies]])


def _select_head(
    x: np.ndarray, y: np.ndarray, *, task: HeadTask, folds: int, seed: int, purpose: str, augmented: Augmented | None
) -> HeadChoice:
    started = time.perf_counter()
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y)
    assignment, count = task.assign_folds(y, folds=folds, seed=seed, purpose=purpose)
    held = [np.flatnonzero(assignment == j) for j in range(count)]
    prepared = [_FoldData(x, y, np.flatnonzero(assignment != assignment[rows[0]]), rows, augmented, task) for rows in held]
    starts: list[LinearFit | None] = [None] * count
    out_of_fold: list[np.ndarray] = []
    curve: list[tuple[float, float, float]] = []
    keys: list[tuple[float, float]] = []
    fold_scores: list[list[float]] = []
    for l2 in L2_GRID:
        probabilities = np.zeros((len(y), task.num_outputs))
        for j, fold in enumerate(prepared):
            starts[j] = fit_linear(fold.x_fit, fold.targets, l2=l2, activation=task.activation, sample_weight=fold.weights, start=starts[j])
            probabilities[held[j]] = predict_probabilities(fold.x_held, starts[j])
        out_of_fold.append(probabilities)
        if task.multi_label:
            losses = [_binary_cross_entropy(y[h], probabilities[h]) for h in held]
            scores = [-loss for loss in losses]
            keys.append((float(np.mean(scores)), 0.0))
        else:
            pairs = [_single_label_scores(y[h], probabilities[h], task.metric) for h in held]
            scores = [score for score, _ in pairs]
            keys.append((float(np.mean(scores)), -float(np.mean([loss for _, loss in pairs]))))
        fold_scores.append(scores)
        curve.append((l2, float(np.mean(scores)), float(np.std(scores))))
        best = max(range(len(keys)), key=lambda i: keys[i])
        if len(keys) - 1 - best >= PATIENCE:
            break
    best = max(range(len(keys)), key=lambda i: keys[i])
    chosen_l2 = L2_GRID[best]
    x_all, y_all = _with_copies(x, y, np.arange(len(y)), augmented)
    refit = fit_linear(x_all, task.targets(y_all), l2=chosen_l2, activation=task.activation, sample_weight=task.weights(y_all))
    thresholds = None
    cv_scores = fold_scores[best]
    if task.multi_label:
        thresholds, cv_scores = _thresholds_and_fold_f1(y, out_of_fold[best], held, task.num_outputs)
        curve = [(l2, -mean, std) for l2, mean, std in curve]  # report the cross-entropy itself
    return HeadChoice(
        fit=refit,
        l2=chosen_l2,
        folds=count,
        metric=task.metric,
        cv_mean=float(np.mean(cv_scores)),
        cv_std=float(np.std(cv_scores)),
        class_weight=task.class_weight,
        curve=curve,
        seconds=time.perf_counter() - started,
        out_of_fold=out_of_fold[best],
        thresholds=thresholds,
        extra={"refit_examples": len(y_all), "path_metric": "binary_cross_entropy" if task.multi_label else task.metric},
    )


def _thresholds_and_fold_f1(y: np.ndarray, out_of_fold: np.ndarray, held: Sequence[np.ndarray], labels: int) -> tuple[np.ndarray, list[float]]:
    """Thresholds from all out-of-fold probabilities; each fold scored with thresholds from the others."""
    names = [str(j) for j in range(labels)]
    scores = []
    for j, rows in enumerate(held):
        others = np.concatenate([h for i, h in enumerate(held) if i != j])
        fold_thresholds = choose_thresholds(y[others], out_of_fold[others])
        scores.append(multilabel_metrics(y[rows], out_of_fold[rows], fold_thresholds, names)["micro_f1"])
    return choose_thresholds(y, out_of_fold), scores


#: (training features, training labels, held-out features) -> (held-out probabilities, thresholds or None).
FitPredict = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, "np.ndarray | None"]]


def cross_validate(x: np.ndarray, y: np.ndarray, *, task: HeadTask, folds: int, seed: int, fit_predict: FitPredict) -> dict:
    """``--cv K``: K-fold estimate of the whole training procedure ``fit_predict`` on all labelled data.

    Returns the ``cv`` block of metrics.json: folds, metric, mean, std and the per-fold scores.

    Example:
        >>> rng = np.random.default_rng(1)
        >>> x = rng.normal(size=(40, 3)); y = (x[:, 1] > 0).astype(int)
        >>> task = HeadTask(num_outputs=2)
        >>> auto = lambda x_fit, y_fit, x_held: (predict_probabilities(x_held, select_head(x_fit, y_fit, task=task, folds=3).fit), None)
        >>> result = cross_validate(x, y, task=task, folds=4, seed=0, fit_predict=auto)
        >>> result["folds"], result["mean"] > 0.8
        (4, True)
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y)
    assignment, count = task.assign_folds(y, folds=folds, seed=seed + 1, purpose="--cv")
    scores = []
    for j in range(count):
        held, kept = assignment == j, assignment != j
        probabilities, thresholds = fit_predict(x[kept], y[kept], x[held])
        if task.multi_label:
            names = [str(i) for i in range(task.num_outputs)]
            scores.append(multilabel_metrics(y[held], probabilities, thresholds, names)["micro_f1"])
        else:
            scores.append(_single_label_scores(y[held], probabilities, task.metric)[0])
    return {
        "folds": count,
        "metric": task.metric,
        "mean": round(float(np.mean(scores)), 4),
        "std": round(float(np.std(scores)), 4),
        "per_fold": [round(float(score), 4) for score in scores],
    }
