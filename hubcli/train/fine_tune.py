"""Fine-tuning: training the whole model, module included, after the head.

It runs on raw inputs held in memory (with seeded augmentation where the modality has
it) at a lower learning rate, with early stopping on validation loss (best weights kept).

Example:
    >>> history = fine_tune(model, modality, raw, labels, config=config, num_classes=5, log_dir=None)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from hubcli import console
from hubcli.train.batches import PREDICT_BATCH
from hubcli.train.config import TrainConfig
from hubcli.train.head import make_optimizer, one_hot
from hubcli.train.modality import Modality


class _EpochProgress(keras.callbacks.Callback):
    """One progress bar over epochs (quiet off a TTY), showing the latest losses."""

    def __init__(self, epochs: int, description: str):
        super().__init__()
        self._context = console.progress_bar(epochs, description, unit="epoch")
        self._bar = None

    def on_train_begin(self, logs=None):
        self._bar = self._context.__enter__()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self._bar.set_postfix({k: f"{v:.3f}" for k, v in logs.items() if k in ("loss", "val_loss", "val_accuracy")})
        self._bar.update(1)

    def on_train_end(self, logs=None):
        self._context.__exit__(None, None, None)


def _callbacks(config: TrainConfig, has_validation: bool, log_dir: Path | None) -> list:
    callbacks = [
        keras.callbacks.EarlyStopping(
            monitor="val_loss" if has_validation else "loss",
            patience=config.patience,
            restore_best_weights=True,
        ),
        _EpochProgress(config.fine_tune_epochs, "fine-tuning"),
    ]
    if log_dir is not None:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(log_dir)))
    return callbacks


def _datasets(modality: Modality, raw: dict, labels: dict, config: TrainConfig, num_classes: int):
    """The shuffled, augmented training dataset and the validation dataset (or None) of model inputs."""
    augment = modality.supports_augmentation

    def prepare(batch_raw, batch_y):
        if augment:
            seeds = tf.random.uniform([tf.shape(batch_raw)[0], 2], maxval=2**31 - 1, dtype=tf.int32)
            batch_raw = modality.augment(batch_raw, seeds)
        return modality.model_inputs(batch_raw), batch_y

    train = (
        tf.data.Dataset.from_tensor_slices((raw["train"], one_hot(labels["train"], num_classes)))
        .shuffle(len(raw["train"]), seed=config.seed, reshuffle_each_iteration=True)
        .batch(config.batch_size)
        .map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .prefetch(tf.data.AUTOTUNE)
    )
    validation = None
    if "validation" in raw:
        validation = (
            tf.data.Dataset.from_tensor_slices((raw["validation"], one_hot(labels["validation"], num_classes)))
            .batch(PREDICT_BATCH)
            .map(lambda r, t: (modality.model_inputs(r), t))
        )
    return train, validation


def fine_tune(
    model: keras.Model, modality: Modality, raw: dict[str, np.ndarray], labels: dict[str, np.ndarray], *,
    config: TrainConfig, num_classes: int, log_dir: Path | None,
) -> dict:
    """Train ``model`` with its encoder trainable on ``raw["train"]`` (validated on ``raw["validation"]``).

    ``labels`` holds the class indices of the same splits. Returns the Keras history.
    """
    model.compile(
        optimizer=make_optimizer(config.optimizer, config.fine_tune_learning_rate or config.learning_rate / 10),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
        metrics=["accuracy"],
    )
    train, validation = _datasets(modality, raw, labels, config, num_classes)
    return model.fit(
        train,
        epochs=config.fine_tune_epochs,
        validation_data=validation,
        shuffle=False,  # the dataset reshuffles itself each epoch
        callbacks=_callbacks(config, validation is not None, log_dir),
        verbose=0,
    ).history
