"""Fine-tuning: training the model, module included, after the head.

It starts from the fitted head (a warm start: the head is already right for the frozen
features, so the module's first steps are not spent repairing a random head), reads and
decodes its inputs anew in every epoch, batch by batch, so memory holds a few batches of
raw inputs and never a whole split (with seeded augmentation where the modality has it), warms the
learning rate up over the first tenth of the steps and then decays it along a cosine to
zero, and stops early on validation loss (best weights kept). ``--unfreeze N`` trains only
the module's top N layers.

Example:
    >>> examples = {"train": data.train, "validation": data.validation}  # doctest: +SKIP
    >>> history = fine_tune(model, encoder, modality, examples, labels, config=config, kind=SingleLabel(), num_classes=5, log_dir=None)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Sequence
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
from hubcli.train.splits import Example


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


def _streamed(modality: Modality, examples: Sequence[Example], targets: np.ndarray, batch_size: int, *, seed: int | None) -> tf.data.Dataset:
    """Batches of (raw inputs, ``targets`` rows) decoded anew on every pass, so no pass holds them all.

    ``targets`` has one row per example. With a ``seed``, each pass (epoch) visits the
    examples in a new order drawn from it.
    """
    order_source = np.random.default_rng(seed)

    def batches():
        order = order_source.permutation(len(examples)) if seed is not None else np.arange(len(examples))
        for positions, raw in modality.iter_inputs([examples[i] for i in order], batch_size):
            yield raw, targets[order[positions]]

    _, first = next(modality.iter_inputs(examples[:1], 1))
    raw_spec = tf.TensorSpec([None, *first.shape[1:]], tf.string if first.dtype == object else tf.as_dtype(first.dtype))
    target_spec = tf.TensorSpec([None, *targets.shape[1:]], tf.as_dtype(targets.dtype))
    dataset = tf.data.Dataset.from_generator(batches, output_signature=(raw_spec, target_spec))
    # Keras needs the batch count up front: with an unknown one it warns on stderr that the data "ran
    # out" and mis-steps the learning-rate schedule. Extraction already dropped unreadable examples.
    return dataset.apply(tf.data.experimental.assert_cardinality(math.ceil(len(examples) / batch_size)))


def _datasets(modality: Modality, examples: dict, labels: dict, config: TrainConfig, targets):
    """The shuffled, augmented training dataset and the validation dataset (or None) of model inputs."""
    augment = modality.supports_augmentation

    def prepare(batch_raw, batch_y):
        if augment:
            seeds = tf.random.uniform([tf.shape(batch_raw)[0], 2], maxval=2**31 - 1, dtype=tf.int32)
            batch_raw = modality.augment(batch_raw, seeds)
        return modality.model_inputs(batch_raw), batch_y

    train = (
        _streamed(modality, examples["train"], targets(labels["train"]), config.batch_size, seed=config.seed)
        .map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .prefetch(tf.data.AUTOTUNE)
    )
    validation = None
    if "validation" in examples:
        validation = _streamed(modality, examples["validation"], targets(labels["validation"]), PREDICT_BATCH, seed=None).map(
            lambda r, t: (modality.model_inputs(r), t)
        )
    return train, validation


def fine_tune(
    model: keras.Model, encoder: keras.layers.Layer, modality: Modality, examples: dict[str, list[Example]], labels: dict[str, np.ndarray], *,
    config: TrainConfig, kind: SingleLabel | MultiLabel, num_classes: int, log_dir: Path | None,
) -> dict:
    """Train ``model`` with its ``encoder`` (all of it, or its top layers) on ``examples["train"]``, validated on ``examples["validation"]``.

    ``labels`` holds the labels of the same splits, row for row. Inputs are read and decoded
    batch by batch in every epoch, never all held at once. Returns the Keras history.
    """
    encoder.trainable = True
    if config.unfreeze_layers is not None:
        layers = encoder.train_top_layers(config.unfreeze_layers)
        if config.unfreeze_layers > layers:
            console.info(f"--unfreeze {config.unfreeze_layers}: the module has {layers} layers; all of them are fine-tuned")
    steps = config.fine_tune_epochs * math.ceil(len(examples["train"]) / config.batch_size)
    learning_rate = config.fine_tune_learning_rate or config.learning_rate / 10
    optimizer = make_optimizer(config.optimizer, learning_rate, schedule=warmup_cosine(learning_rate, steps))
    model.compile(optimizer=optimizer, loss=kind.keras_loss(config.label_smoothing), metrics=[kind.keras_metric()])
    train, validation = _datasets(modality, examples, labels, config, lambda y: kind.keras_targets(y, num_classes))
    return model.fit(
        train,
        epochs=config.fine_tune_epochs,
        validation_data=validation,
        shuffle=False,  # the dataset visits the examples in a new order each epoch itself
        callbacks=_callbacks(config, validation is not None, log_dir),
        verbose=0,
    ).history


def predict_examples(model: keras.Model, modality: Modality, examples: Sequence[Example]) -> np.ndarray:
    """Outputs of the whole model on ``examples``, read batch by batch, in their order."""
    batches = [
        model(modality.model_inputs(tf.constant(raw)), training=False).numpy() for _, raw in modality.iter_inputs(examples, PREDICT_BATCH)
    ]
    return np.concatenate(batches) if batches else np.zeros((0, model.output_shape[-1]), np.float32)
