"""Running a model over many inputs a batch at a time: the one loop every caller shares.

Training, evaluation, prediction and every export check call a model (Keras, a SavedModel
signature, a TFLite interpreter) on arrays too large for one call.

Example:
    >>> in_batches(lambda batch: batch * 2, np.arange(5), batch_size=2)
    array([0, 2, 4, 6, 8])
    >>> list(batch_bounds(5, 2))
    [(0, 2), (2, 4), (4, 5)]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

#: Inference batch size: large enough to keep the module busy, small enough for big images.
PREDICT_BATCH = 64


def batch_bounds(count: int, batch_size: int) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` of consecutive batches of at most ``batch_size`` covering ``range(count)``."""
    for start in range(0, count, batch_size):
        yield start, min(start + batch_size, count)


def in_batches(function: Callable[[np.ndarray], object], inputs: np.ndarray, *, batch_size: int = PREDICT_BATCH) -> np.ndarray:
    """``function`` applied to consecutive slices of ``inputs``, its outputs (arrays or tensors) concatenated."""
    outputs = [np.asarray(function(inputs[start:stop])) for start, stop in batch_bounds(len(inputs), batch_size)]
    if not outputs:
        raise ValueError("no inputs to run the model on")
    return np.concatenate(outputs)
