"""Class imbalance: inverse-frequency example weights and the warning that suggests them.

``--class-weight auto`` weighs each example by ``n / (classes * n_class)``, so every
class carries the same total weight in the loss, during cross-validation and the refit
alike; ``none`` (the default) weighs every example 1.

Example:
    >>> inverse_frequency_weights([0, 0, 0, 1], 2).tolist()
    [0.6667, 0.6667, 0.6667, 2.0]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from hubcli import console
from hubcli.errors import UsageError

CLASS_WEIGHTS = ("none", "auto")
#: The largest class over the smallest above which a warning suggests --class-weight auto.
IMBALANCE_RATIO = 3.0


def check_class_weight(mode: str) -> str:
    """``mode`` if it is a known --class-weight value, else one clear usage error."""
    if mode not in CLASS_WEIGHTS:
        raise UsageError(f"--class-weight {mode!r}: choose auto or none")
    return mode


def inverse_frequency_weights(labels: Sequence[int], num_classes: int) -> np.ndarray:
    """One weight per example: ``n / (num_classes * count of its class)``, rounded to 4 places."""
    labels = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    present = max(int((counts > 0).sum()), 1)
    # Classes absent from these examples get no weight; the others share the total evenly.
    return np.round(len(labels) / (present * counts[labels]), 4)


def example_weights(labels: Sequence[int], num_classes: int, mode: str) -> np.ndarray | None:
    """Weights for ``mode`` ("auto"), or None ("none": every example counts once)."""
    return inverse_frequency_weights(labels, num_classes) if check_class_weight(mode) == "auto" else None


def warn_if_imbalanced(counts: Mapping[str, int], mode: str) -> bool:
    """Warn when the largest class has more than 3x the examples of the smallest; True if it did.

    Example:
        >>> warn_if_imbalanced({"ok": 10, "defect": 9}, "none")
        False
    """
    present = {name: count for name, count in counts.items() if count}
    if len(present) < 2:
        return False
    largest = max(present, key=present.get)
    smallest = min(present, key=present.get)
    ratio = present[largest] / present[smallest]
    if ratio <= IMBALANCE_RATIO:
        return False
    advice = "--class-weight auto balances them" if mode == "none" else "weighted by --class-weight auto"
    console.warn(
        f"classes are imbalanced: {largest!r} has {present[largest]} examples, {smallest!r} {present[smallest]} "
        f"({ratio:.1f}x); {advice}, and macro F1 and balanced accuracy show the effect"
    )
    return True
