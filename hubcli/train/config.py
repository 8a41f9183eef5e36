"""Training options, kept free of TensorFlow so the CLI can read their defaults at start-up.

Example:
    >>> TrainConfig(epochs=10, fine_tune=True).fine_tune_epochs
    5
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

HEADS = ("auto", "fixed")
#: ``--distribute`` choices (hubcli.train.distributed).
DISTRIBUTIONS = ("mirrored", "multi-worker")
#: --optimizer names (any case) -> Keras optimizer classes.
OPTIMIZERS = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD", "rmsprop": "RMSprop", "nadam": "Nadam"}


@dataclass
class TrainConfig:
    """Head and training options. Defaults were measured on flowers (see benchmarks/bench_retrain.py)."""

    #: "auto": a linear head fitted to convergence, its L2 strength chosen by cross-validation on
    #: training+validation features, then refitted on all of them (hubcli.train.selection);
    #: "fixed": the Keras head below (epochs, learning rate, dropout, l2, label smoothing, patience).
    head: str = "auto"
    #: "auto": weigh examples by inverse class frequency (in cross-validation and the refit); "none".
    class_weight: str = "none"
    #: K > 0: also report the K-fold cross-validated score of the whole procedure on all labelled data.
    cv_folds: int = 0
    #: Sigmoid head with one decision threshold per label (data from a manifest).
    multi_label: bool = False
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
    #: Fine-tuning learning rate; default learning_rate / 10. Warmed up over the first tenth
    #: of the steps, then cosine-decayed to zero.
    fine_tune_learning_rate: float | None = None
    #: What fine-tuning trains: "all" of the module, or its top N layers (the rest, and every
    #: batch-norm statistic, stay as pretrained).
    unfreeze: str = "all"
    #: Augmented copies of each training example whose features are cached (frozen module).
    augment_copies: int = 0
    seed: int = 0
    tensorboard: bool = False
    extraction_batch_size: int = 32
    #: Memory budget ("4G") past which the head streams features from the cache's shards; default half the RAM.
    max_memory: str | None = None
    #: Fine-tune on several devices ("mirrored") or machines ("multi-worker", from TF_CONFIG).
    distribute: str | None = None

    def to_json(self) -> dict:
        return asdict(self)

    @property
    def unfreeze_layers(self) -> int | None:
        """How many top layers fine-tuning trains; None for all of them."""
        return None if self.unfreeze == "all" else int(self.unfreeze)

    def check(self) -> None:
        """One usage error for options that cannot work together, before any data is read.

        Example:
            >>> TrainConfig(head="fixed", multi_label=True).check()
            Traceback (most recent call last):
            ...
            hubcli.errors.UsageError: --multi-label heads are fitted by --head auto; drop --head fixed
        """
        from hubcli.errors import UsageError
        from hubcli.train.class_weights import check_class_weight

        if self.head not in HEADS:
            raise UsageError(f"--head {self.head!r}: choose auto or fixed")
        check_class_weight(self.class_weight)
        if self.optimizer.lower() not in OPTIMIZERS:
            raise UsageError(f"unknown optimizer {self.optimizer!r}; choose from {', '.join(OPTIMIZERS)}")
        if self.cv_folds == 1 or self.cv_folds < 0:
            raise UsageError(f"--cv {self.cv_folds}: give K >= 2 folds (or 0 for none)")
        if self.multi_label and self.head != "auto":
            raise UsageError("--multi-label heads are fitted by --head auto; drop --head fixed")
        if self.multi_label and self.class_weight != "none":
            raise UsageError("--class-weight is for single-label runs; a --multi-label run sets one threshold per label instead")
        if self.unfreeze != "all" and not (self.unfreeze.isdigit() and int(self.unfreeze) > 0):
            raise UsageError(f"--unfreeze {self.unfreeze!r}: give all, or a number of top layers (at least 1)")
        if self.unfreeze != "all" and not self.fine_tune:
            raise UsageError("--unfreeze applies to --fine-tune; add --fine-tune or drop --unfreeze")
        if self.max_memory is not None:
            from hubcli.train.feature_stream import parse_memory

            parse_memory(self.max_memory)
        if self.distribute is not None and self.distribute not in DISTRIBUTIONS:
            raise UsageError(f"unknown --distribute {self.distribute!r}; choose from {', '.join(DISTRIBUTIONS)}")
        if self.distribute is not None and not self.fine_tune:
            raise UsageError("--distribute spreads fine-tuning over devices or machines; add --fine-tune")
        if self.distribute is not None and self.multi_label:
            raise UsageError("--distribute fine-tunes single-label runs; drop --multi-label or --distribute")
