"""Stratified k-fold assignment, deterministic under a seed, for single- and multi-label data.

Every class (every label, for multi-label data) is spread over the folds as evenly as its
count allows, so each held-out fold looks like the whole set. The assignment depends
only on the labels, their order and the seed: the same run picks the same folds.

A class with fewer examples than folds cannot appear in every held-out fold; the fold
count drops to the smallest class's count (with a notice), and a class of one example
is one clear error.

Example:
    >>> folds = stratified_folds([0, 0, 0, 1, 1, 1], folds=3, seed=0)
    >>> [sorted(folds[:3].tolist()), sorted(folds[3:].tolist())]  # each class once in every fold
    [[0, 1, 2], [0, 1, 2]]
    >>> fold_count({"cat": 9, "dog": 3}, requested=5, purpose="selection")
    3
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from hubcli import console
from hubcli.errors import DataError


def fold_count(counts: Mapping[str, int], *, requested: int, purpose: str) -> int:
    """How many folds the data allows: ``requested``, or the smallest class's count if that is less.

    ``counts``: examples per class (or label) that take part; ``purpose`` names the
    cross-validation in the notice and the error ("selection", "--cv").
    """
    if not counts:
        raise DataError(f"cross-validation ({purpose}) has no labelled examples")
    name, smallest = min(counts.items(), key=lambda item: item[1])
    if smallest >= requested:
        return requested
    if smallest < 2:
        raise DataError(
            f"class {name!r} has {smallest} example(s) for cross-validation ({purpose}); each needs at least 2 "
            "(add examples, or lower --validation-split/--test-split)"
        )
    console.info(f"class {name!r} has only {smallest} examples: {purpose} uses {smallest}-fold cross-validation instead of {requested}")
    return smallest


def _deal(groups: Sequence[np.ndarray], folds: int, rng: np.random.Generator, size: int) -> np.ndarray:
    """Shuffle each group and deal its members round-robin, continuing where the last group stopped."""
    assignment = np.empty(size, dtype=np.int64)
    position = 0
    for members in groups:
        shuffled = rng.permutation(members)
        assignment[shuffled] = (position + np.arange(len(shuffled))) % folds
        position += len(shuffled)
    return assignment


def stratified_folds(labels: Sequence[int], *, folds: int, seed: int) -> np.ndarray:
    """A fold index in ``[0, folds)`` for each example, every class spread evenly."""
    labels = np.asarray(labels, dtype=np.int64)
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(labels == value) for value in np.unique(labels)]
    return _deal(groups, folds, rng, len(labels))


def multilabel_folds(indicators: np.ndarray, *, folds: int, seed: int) -> np.ndarray:
    """Folds for multi-label data: examples are grouped by their rarest label, then dealt.

    Rare labels are the hard ones to keep in every fold; grouping by the rarest label an
    example carries spreads each rare label evenly, and common labels follow closely.
    Examples without labels form their own group.

    Example:
        >>> indicators = np.array([[1, 0], [1, 1], [1, 0], [1, 1], [0, 0], [0, 0]])
        >>> folds = multilabel_folds(indicators, folds=2, seed=0)
        >>> sorted(folds[[1, 3]].tolist()), sorted(folds[[4, 5]].tolist())  # the rare label in both folds
        ([0, 1], [0, 1])
    """
    indicators = np.asarray(indicators, dtype=bool)
    counts = indicators.sum(axis=0)
    # Labels an example lacks rank as "infinitely common", so argmin finds its rarest label.
    ranked = np.where(indicators, counts[None, :], np.iinfo(np.int64).max)
    rarest = np.where(indicators.any(axis=1), ranked.argmin(axis=1), -1)
    order = sorted(np.unique(rarest), key=lambda label: (counts[label] if label >= 0 else np.inf, label))
    groups = [np.flatnonzero(rarest == label) for label in order]
    return _deal(groups, folds, np.random.default_rng(seed), len(indicators))
