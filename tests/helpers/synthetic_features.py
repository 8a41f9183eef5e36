"""Learnable synthetic feature matrices for the head solvers: Gaussian classes, optional label noise."""

from __future__ import annotations

import numpy as np


def gaussian_classes(count: int, dim: int, classes: int, *, separation: float = 3.0, label_noise: float = 0.0, seed: int = 0):
    """``(x, y)``: each class a unit Gaussian around its own centre; ``label_noise`` of labels redrawn at random."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim))
    centres *= separation / np.linalg.norm(centres, axis=1, keepdims=True)
    y = np.arange(count) % classes
    x = centres[y] + rng.normal(size=(count, dim))
    noisy = rng.random(count) < label_noise
    y = np.where(noisy, rng.integers(0, classes, count), y)
    return x, y


def multilabel_features(count: int, dim: int, labels: int, *, seed: int = 0):
    """``(x, indicators)``: each label present with probability 0.4 and adds its own direction to x."""
    rng = np.random.default_rng(seed)
    indicators = rng.random((count, labels)) < 0.4
    directions = rng.normal(size=(labels, dim)) * 2.0
    x = indicators @ directions + rng.normal(size=(count, dim))
    return x, indicators.astype(np.int64)
