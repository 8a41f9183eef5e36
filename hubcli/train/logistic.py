"""Linear heads fitted to convergence on cached features: full-batch L-BFGS on the exact loss.

A softmax head (multinomial logistic regression) for single-label data and a sigmoid
head (one logistic regression per label, fitted jointly) for multi-label data. Both
minimise, over a kernel ``W`` [d, k] and a bias ``b`` [k],

    sum_i w_i * loss_i / sum_i w_i  +  l2 / 2 * ||W||^2

with an analytic gradient, in float64 (but for the two products with the features, in
float32), until the gradient vanishes. Nothing here has a
learning rate, batch size, epoch count or early stopping: ``l2`` is the only setting,
and cross-validation chooses it (:mod:`hubcli.train.selection`). Pure numpy and scipy,
so it runs without TensorFlow; the result is loaded into the run's Keras ``Dense`` layer.

Example:
    >>> x = np.array([[0.0, 1.0], [1.0, 0.0], [0.1, 0.9], [0.9, 0.2]])
    >>> fit = fit_linear(x, np.eye(2)[[1, 0, 1, 0]], l2=0.01)
    >>> fit.converged, predict_probabilities(x, fit).argmax(axis=1).tolist()
    (True, [1, 0, 1, 0])
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

ACTIVATIONS = ("softmax", "sigmoid")
#: Enough for every grid point we fit; a weakly regularised, separable problem stops here.
MAX_ITERATIONS = 1000


@dataclass(frozen=True)
class LinearFit:
    """A fitted head: ``activation(x @ kernel + bias)``."""

    kernel: np.ndarray
    bias: np.ndarray
    activation: str
    iterations: int
    converged: bool


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run numpy's BLAS on one thread inside: these products are small, and spare threads hurt.

    Measured on a loaded 2-core machine: OpenBLAS's idle threads spin against TensorFlow's
    and each other, and the same selection took 15x longer with them than without.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    # exp(-|z|) never overflows; the two branches are the same function.
    decay = np.exp(-np.abs(logits))
    return np.where(logits >= 0, 1.0 / (1.0 + decay), decay / (1.0 + decay))


def predict_probabilities(x: np.ndarray, fit: LinearFit) -> np.ndarray:
    """Probabilities [n, k] of a fitted head on features ``x``."""
    logits = np.asarray(x, dtype=np.float64) @ fit.kernel + fit.bias
    return _softmax(logits) if fit.activation == "softmax" else _sigmoid(logits)


def _example_losses(logits: np.ndarray, targets: np.ndarray, activation: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-example loss [n] and d loss / d logits [n, k]."""
    if activation == "softmax":
        top = logits.max(axis=1, keepdims=True)
        log_norm = top + np.log(np.exp(logits - top).sum(axis=1, keepdims=True))
        log_probabilities = logits - log_norm
        # Rows of targets sum to 1, so the gradient of the cross-entropy is p - t.
        return -(targets * log_probabilities).sum(axis=1), np.exp(log_probabilities) - targets
    # Binary cross-entropy per label, summed: softplus(z) - t * z.
    return (np.logaddexp(0.0, logits) - targets * logits).sum(axis=1), _sigmoid(logits) - targets


def fit_linear(
    x: np.ndarray,
    targets: np.ndarray,
    *,
    l2: float,
    activation: str = "softmax",
    sample_weight: np.ndarray | None = None,
    start: LinearFit | None = None,
    max_iterations: int = MAX_ITERATIONS,
) -> LinearFit:
    """Minimise the weighted mean loss plus ``l2 / 2 * ||kernel||^2`` (the bias is not penalised).

    ``targets``: [n, k] rows of class probabilities (softmax) or 0/1 label indicators
    (sigmoid). ``start`` warm-starts from an earlier fit (a neighbouring ``l2``), which
    makes a path over a grid of strengths several times cheaper than cold starts.

    Example:
        >>> x = np.array([[2.0], [1.0], [-1.0], [-2.0]])
        >>> targets = np.eye(2)[[1, 1, 0, 0]]
        >>> strong = fit_linear(x, targets, l2=10.0)
        >>> weak = fit_linear(x, targets, l2=0.1, start=strong)
        >>> bool(np.abs(weak.kernel).sum() > np.abs(strong.kernel).sum())
        True
    """
    from scipy.optimize import minimize

    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    if l2 <= 0:
        raise ValueError(f"l2 must be positive, got {l2}")
    features = np.asarray(x, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64)
    basis = None
    if features.shape[1] > features.shape[0]:
        # Fewer examples than features (a few hundred photos, 1280 features): the penalised
        # optimum lies in the span of the examples, so solve there exactly and map back.
        with one_blas_thread():
            features, basis = row_space(features)
        if start is not None:
            start = LinearFit(basis.T @ start.kernel, start.bias, activation, start.iterations, start.converged)
    count, dim = features.shape
    classes = targets.shape[1]
    weights = np.ones(count) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    weights = weights / weights.sum()
    # The bias absorbs any shift of the features, so centred features pose the same problem;
    # better conditioned, it takes L-BFGS about half the evaluations.
    shift = weights @ features
    # The two products per evaluation read every feature: in float32 (what modules output)
    # they move half the bytes and take half the time. On real features scaled up to 100x
    # and l2 down to 1e-6, fits converged as in float64, in the same number of iterations.
    features = (features - shift).astype(np.float32)

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        kernel, bias = theta[: dim * classes].reshape(dim, classes), theta[dim * classes :]
        logits = (features @ kernel.astype(np.float32)).astype(np.float64) + bias
        losses, residual = _example_losses(logits, targets, activation)
        residual *= weights[:, None]
        kernel_gradient = (features.T @ residual.astype(np.float32)).astype(np.float64) + l2 * kernel
        value = float(weights @ losses) + 0.5 * l2 * float(np.vdot(kernel, kernel))
        return value, np.concatenate([kernel_gradient.ravel(), residual.sum(axis=0)])

    theta = np.zeros(dim * classes + classes) if start is None else np.concatenate([start.kernel.ravel(), start.bias + shift @ start.kernel])
    with one_blas_thread():
        result = minimize(objective, theta, jac=True, method="L-BFGS-B", options={"maxiter": max_iterations, "gtol": 1e-6})
    kernel = result.x[: dim * classes].reshape(dim, classes)
    return LinearFit(
        kernel=kernel if basis is None else basis @ kernel,
        bias=result.x[dim * classes :] - shift @ kernel,
        activation=activation,
        iterations=int(result.nit),
        converged=bool(result.success),
    )


def row_space(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(z, basis)`` with ``x == z @ basis.T`` and orthonormal ``basis`` [d, n] for ``x`` [n, d], n < d.

    For W = basis @ B: x @ W == z @ B and ||W|| == ||B||, while any part of W outside the
    span only adds penalty, so the fit on ``z`` is the fit on ``x``, n/d the cost. A QR
    decomposition of ``x.T`` gives the basis at a third of an SVD's cost; it may span more
    than the rows do (repeated examples), which changes neither property.

    Example:
        >>> x = np.random.default_rng(0).standard_normal((3, 8))
        >>> z, basis = row_space(x)
        >>> z.shape, bool(np.allclose(z @ basis.T, x)), bool(np.allclose(basis.T @ basis, np.eye(3)))
        ((3, 3), True, True)
    """
    basis, triangle = np.linalg.qr(x.T)
    return triangle.T, basis
