"""Fine-tuning: training the model, module included, after the head.

It starts from the fitted head (a warm start: the head is already right for the frozen
features, so the module's first steps are not spent repairing a random head), runs on raw
inputs held in memory (with seeded augmentation where the modality has it), warms the
learning rate up over the first tenth of the steps and then decays it along a cosine to
zero, and stops early on validation loss (best weights kept). ``--unfreeze N`` trains only
the module's top N layers.

Example:
    >>> history = fine_tune(model, encoder, modality, raw, labels, config=config, kind=SingleLabel(), num_classes=5, log_dir=None)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from hubcli import console
from hubcli.train.batches import PREDICT_BATCH
from hubcli.train.config import TrainConfig
from hubcli.train.head import make_optimizer
from hubcli.train.labeling import MultiLabel, SingleLabel
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


def warmup_cosine(learning_rate: float, total_steps: int) -> keras.optimizers.schedules.LearningRateSchedule:
    """Linear warm-up from 0 over the first tenth of ``total_steps``, then cosine decay to 0.

    Example:
        >>> schedule = warmup_cosine(0.001, 100)
        >>> [round(float(schedule(step)), 6) for step in (0, 10, 55, 100)]
        [0.0, 0.001, 0.0005, 0.0]
    """
    warmup = max(1, total_steps // 10)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0, decay_steps=max(1, total_steps - warmup), warmup_target=learning_rate, warmup_steps=warmup
    )


def _datasets(modality: Modality, raw: dict, labels: dict, config: TrainConfig, targets):
    """The shuffled, augmented training dataset and the validation dataset (or None) of model inputs."""
    augment = modality.supports_augmentation

    def prepare(batch_raw, batch_y):
        if augment:
            seeds = tf.random.uniform([tf.shape(batch_raw)[0], 2], maxval=2**31 - 1, dtype=tf.int32)
            batch_raw = modality.augment(batch_raw, seeds)
        return modality.model_inputs(batch_raw), batch_y

    train = (
        tf.data.Dataset.from_tensor_slices((raw["train"], targets(labels["train"])))
        .shuffle(len(raw["train"]), seed=config.seed, reshuffle_each_iteration=True)
        .batch(config.batch_size)
        .map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .prefetch(tf.data.AUTOTUNE)
    )
    validation = None
    if "validation" in raw:
        validation = (
            tf.data.Dataset.from_tensor_slices((raw["validation"], targets(labels["validation"])))
            .batch(PREDICT_BATCH)
            .map(lambda r, t: (modality.model_inputs(r), t))
        )
    return train, validation


def fine_tune(
    model: keras.Model, encoder: keras.layers.Layer, modality: Modality, raw: dict[str, np.ndarray], labels: dict[str, np.ndarray], *,
    config: TrainConfig, kind: SingleLabel | MultiLabel, num_classes: int, log_dir: Path | None,
) -> dict:
    """Train ``model`` with its ``encoder`` (all of it, or its top layers) on ``raw["train"]``, validated on ``raw["validation"]``.

    ``labels`` holds the labels of the same splits. Returns the Keras history.
    """
    encoder.trainable = True
    if config.unfreeze_layers is not None:
        layers = encoder.train_top_layers(config.unfreeze_layers)
        if config.unfreeze_layers > layers:
            console.info(f"--unfreeze {config.unfreeze_layers}: the module has {layers} layers; all of them are fine-tuned")
    steps = config.fine_tune_epochs * math.ceil(len(raw["train"]) / config.batch_size)
    learning_rate = config.fine_tune_learning_rate or config.learning_rate / 10
    optimizer = make_optimizer(config.optimizer, learning_rate, schedule=warmup_cosine(learning_rate, steps))
    model.compile(optimizer=optimizer, loss=kind.keras_loss(config.label_smoothing), metrics=[kind.keras_metric()])
    train, validation = _datasets(modality, raw, labels, config, lambda y: kind.keras_targets(y, num_classes))
    return model.fit(
        train,
        epochs=config.fine_tune_epochs,
        validation_data=validation,
        shuffle=False,  # the dataset reshuffles itself each epoch
        callbacks=_callbacks(config, validation is not None, log_dir),
        verbose=0,
    ).history
