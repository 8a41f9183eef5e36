"""Training options, kept free of TensorFlow so the CLI can read their defaults at start-up.

Example:
    >>> TrainConfig(epochs=10, fine_tune=True).fine_tune_epochs
    5
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class TrainConfig:
    """Head and training options. Defaults were measured on flowers (see benchmarks/bench_retrain.py)."""

    epochs: int = 40
    batch_size: int = 32
    learning_rate: float = 0.003
    optimizer: str = "adam"
    dropout: float = 0.2
    l2: float = 1e-4
    label_smoothing: float = 0.1
    #: Epochs without a better validation loss before stopping (the best weights are kept).
    patience: int = 5
    fine_tune: bool = False
    fine_tune_epochs: int = 5
    #: Fine-tuning learning rate; default learning_rate / 10.
    fine_tune_learning_rate: float | None = None
    #: Augmented copies of each training example whose features are cached (frozen module).
    augment_copies: int = 0
    seed: int = 0
    tensorboard: bool = False
    extraction_batch_size: int = 32

    def to_json(self) -> dict:
        return asdict(self)
