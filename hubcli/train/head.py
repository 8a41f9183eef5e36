"""The classifier head on features, and its training on cached features (in memory, or streamed).

The head is dropout then an L2-regularised softmax (multi-label: sigmoid) layer. ``--head
fixed`` trains it here with label smoothing and early stopping on validation loss (best
weights kept); ``--head auto`` fits it by :mod:`hubcli.train.selection` and loads the result
with :func:`head_for_fit`. Its layers are reused as they are on
top of the encoder for the full model, so what was trained on cached features is what gets
saved.

Example:
    >>> head = build_head(1280, 5, TrainConfig())  # doctest: +SKIP
    >>> history = fit_head(head, (x_train, one_hot(y_train, 5)), None, config=TrainConfig())  # doctest: +SKIP
    >>> sorted(history)  # doctest: +SKIP
    ['accuracy', 'loss']
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from hubcli import console
from hubcli.errors import UsageError
from hubcli.train.batches import PREDICT_BATCH, in_batches
from hubcli.train.config import OPTIMIZERS, TrainConfig
from hubcli.train.feature_stream import FeatureSource, InMemoryFeatures
from hubcli.train.logistic import LinearFit

#: Names of the head's layers, which the full model reuses.
DROPOUT_LAYER, CLASSIFIER_LAYER = "head_dropout", "classifier"


def make_optimizer(name: str, learning_rate: float, *, schedule=None) -> keras.optimizers.Optimizer:
    """The Keras optimizer ``name`` (a key of :data:`OPTIMIZERS`, any case) at ``learning_rate``.

    ``schedule``, a Keras learning-rate schedule that peaks at ``learning_rate``, replaces the constant rate.
    """
    class_name = OPTIMIZERS.get(name.lower())
    if class_name is None:
        raise UsageError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")
    if learning_rate <= 0:
        raise UsageError(f"learning rate must be positive, got {learning_rate}")
    return getattr(keras.optimizers, class_name)(learning_rate=learning_rate if schedule is None else schedule)


class BestEpoch:
    """Early stopping of a hand-written epoch loop on ``val_loss`` (else ``loss``), keeping the best weights.

    Example:
        >>> best = BestEpoch(patience=1)
        >>> [best.monitor({"loss": loss}, lambda: loss) for loss in (3.0, 2.0, 2.5)]
        [False, False, True]
        >>> best.weights
        2.0
    """

    def __init__(self, patience: int):
        self.patience = patience
        self.loss = float("inf")
        self.weights = None
        self.waited = 0

    def monitor(self, logs: dict[str, float], weights) -> bool:
        """Record one epoch's ``logs``; ``weights()`` is called when it is the best yet. True: stop now."""
        monitored = logs.get("val_loss", logs["loss"])
        if monitored < self.loss:
            self.loss, self.weights, self.waited = monitored, weights(), 0
            return False
        self.waited += 1
        return self.waited >= self.patience

    def end_epoch(self, logs: dict[str, float], history: dict[str, list[float]], bar, model: keras.Model) -> bool:
        """Append ``logs`` to ``history``, show them on the progress ``bar`` and :meth:`monitor` ``model``'s weights."""
        for key, value in logs.items():
            history[key].append(value)
        bar.set_postfix({k: f"{v:.3f}" for k, v in logs.items() if k != "accuracy"})
        bar.update(1)
        return self.monitor(logs, model.get_weights)


def one_hot(labels: Sequence[int], num_classes: int) -> np.ndarray:
    """Class indices -> float32 one-hot rows.

    Example:
        >>> one_hot([1, 0], 3).tolist()
        [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]
    """
    return np.eye(num_classes, dtype=np.float32)[np.asarray(labels, dtype=np.int64)]


def build_head(feature_dim: int, num_classes: int, config: TrainConfig, *, activation: str = "softmax", l2: float | None = None) -> keras.Model:
    """The head on features: dropout, then an L2-regularised softmax (or sigmoid) layer.

    ``l2`` overrides ``config.l2`` as Keras counts it (``l2 * sum(W**2)`` added to the loss).
    """
    features = keras.Input((feature_dim,), name="features")
    dropout = keras.layers.Dropout(config.dropout, name=DROPOUT_LAYER)
    penalty = config.l2 if l2 is None else l2
    classifier = keras.layers.Dense(
        num_classes, activation=activation, kernel_regularizer=keras.regularizers.L2(penalty), name=CLASSIFIER_LAYER
    )
    return keras.Model(features, classifier(dropout(features)), name="head")


def head_for_fit(fit: LinearFit, l2: float, config: TrainConfig) -> keras.Model:
    """A head that computes ``fit`` exactly (same Keras layers as :func:`build_head`).

    The solver penalises ``l2 / 2 * ||W||^2``; Keras' L2 adds ``l * ||W||^2``, so a fine-tuned
    head keeps the chosen strength as ``l2 / 2``.

    Example:
        >>> fit = LinearFit(np.eye(2), np.zeros(2), "softmax", 1, True)  # doctest: +SKIP
        >>> head_for_fit(fit, 0.1, TrainConfig()).predict(np.eye(2)).argmax(1)  # doctest: +SKIP
        array([0, 1])
    """
    head = build_head(fit.kernel.shape[0], fit.kernel.shape[1], config, activation=fit.activation, l2=l2 / 2)
    head.get_layer(CLASSIFIER_LAYER).set_weights([fit.kernel.astype(np.float32), fit.bias.astype(np.float32)])
    return head


def _compiled_steps(head: keras.Model, optimizer, config: TrainConfig, *, feature_dim: int, target_dim: int):
    """Compiled functions: training over one chunk of features in a given order, and sums for an evaluation."""
    cross_entropy = keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)
    per_example = keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing, reduction="none")
    batch_size = config.batch_size
    x_spec, y_spec = tf.TensorSpec([None, feature_dim], tf.float32), tf.TensorSpec([None, target_dim], tf.float32)
    vector = tf.TensorSpec([None], tf.float32)

    def total_loss(x_batch, y_batch, weights, training):
        probabilities = head(x_batch, training=training)
        # Weights of 1.0 (no --class-weight) leave the mean exactly as without them.
        loss = cross_entropy(y_batch, probabilities, sample_weight=weights)
        if head.losses:
            loss += tf.add_n(head.losses)
        hits = tf.cast(tf.equal(tf.argmax(probabilities, -1), tf.argmax(y_batch, -1)), tf.float32)
        return loss, tf.reduce_mean(hits)

    @tf.function(input_signature=[x_spec, y_spec, vector, tf.TensorSpec([None], tf.int32)])
    def train_chunk(x, y, weights, order):
        """Sums of the batch losses and accuracies over the chunk, and its number of batches."""
        losses, accuracies = tf.TensorArray(tf.float32, 0, dynamic_size=True), tf.TensorArray(tf.float32, 0, dynamic_size=True)
        batches = (tf.size(order) + batch_size - 1) // batch_size
        for step in tf.range(batches):
            chosen = order[step * batch_size : (step + 1) * batch_size]
            with tf.GradientTape() as tape:
                loss, accuracy = total_loss(tf.gather(x, chosen), tf.gather(y, chosen), tf.gather(weights, chosen), True)
            gradients = tape.gradient(loss, head.trainable_variables)
            optimizer.apply(gradients, head.trainable_variables)
            losses, accuracies = losses.write(step, loss), accuracies.write(step, accuracy)
        return tf.reduce_sum(losses.stack()), tf.reduce_sum(accuracies.stack()), batches

    @tf.function(input_signature=[x_spec, y_spec])
    def evaluation_sums(x, y):
        """Summed cross-entropy and hits over the chunk (the weight penalty is added once, by the caller)."""
        probabilities = head(x, training=False)
        hits = tf.cast(tf.equal(tf.argmax(probabilities, -1), tf.argmax(y, -1)), tf.float32)
        return tf.reduce_sum(per_example(y, probabilities)), tf.reduce_sum(hits)

    return train_chunk, evaluation_sums


def as_source(features: np.ndarray | FeatureSource) -> FeatureSource:
    """Features as a :class:`~hubcli.train.feature_stream.FeatureSource` (an array becomes one chunk)."""
    return InMemoryFeatures(features) if isinstance(features, np.ndarray) else features


class _Chunks:
    """A source's chunks as tensors with their targets and weights; one in memory is converted once, not every epoch."""

    def __init__(self, features: np.ndarray | FeatureSource, targets: np.ndarray, weights: np.ndarray | None = None):
        self.source = as_source(features)
        self.targets = np.asarray(targets, np.float32)
        self.weights = np.ones(len(self.targets), np.float32) if weights is None else np.asarray(weights, np.float32)
        self._resident = None

    def __iter__(self):
        return self.chunks()

    def chunks(self, rng: np.random.Generator | None = None):
        if isinstance(self.source, InMemoryFeatures):
            if self._resident is None:
                # Features may come as float64 (cross-validation folds); the head computes in float32.
                self._resident = (tf.constant(self.source.x, tf.float32), tf.constant(self.targets), tf.constant(self.weights))
            yield self._resident
            return
        for x, positions in self.source.chunks(rng):
            yield tf.constant(x), tf.constant(self.targets[positions]), tf.constant(self.weights[positions])


def fit_head(
    head: keras.Model, train: tuple, validation: tuple | None, *, config: TrainConfig, log_dir: Path | None = None,
    sample_weight: np.ndarray | None = None,
) -> dict:
    """Train the head on features; early stopping on validation loss, best weights kept.

    ``train`` and ``validation`` are ``(features, one-hot labels)``, the features an array or a
    :class:`~hubcli.train.feature_stream.FeatureSource` streamed from the feature cache's shards:
    the loss and the choice of the best epoch are the same either way. ``sample_weight``
    weighs the training examples (``--class-weight auto``). A compiled loop over a whole chunk
    instead of ``Model.fit``: on cached features an epoch is a few milliseconds of math, and
    fit's per-epoch dataset and callback overhead would be most of a warm re-run.
    """
    optimizer = make_optimizer(config.optimizer, config.learning_rate)
    optimizer.build(head.trainable_variables)
    train_chunks = _Chunks(*train, sample_weight)
    validation_chunks = _Chunks(*validation) if validation is not None else None
    train_chunk, evaluation_sums = _compiled_steps(
        head, optimizer, config, feature_dim=train_chunks.source.shape[1], target_dim=train_chunks.targets.shape[1]
    )
    rng = np.random.default_rng(config.seed)
    history: dict[str, list[float]] = {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": []}
    writer = tf.summary.create_file_writer(str(log_dir)) if log_dir is not None else None
    best = BestEpoch(config.patience)
    with console.progress_bar(config.epochs, "training head", unit="epoch") as bar:
        for epoch in range(config.epochs):
            loss_sum, accuracy_sum, batches = 0.0, 0.0, 0
            for x, y, weights in train_chunks.chunks(rng):
                order = tf.constant(rng.permutation(int(x.shape[0])), tf.int32)
                chunk_loss, chunk_accuracy, chunk_batches = train_chunk(x, y, weights, order)
                loss_sum, accuracy_sum, batches = loss_sum + float(chunk_loss), accuracy_sum + float(chunk_accuracy), batches + int(chunk_batches)
            logs = {"loss": loss_sum / batches, "accuracy": accuracy_sum / batches}
            if validation_chunks is not None:
                logs.update(zip(("val_loss", "val_accuracy"), _evaluate(head, validation_chunks, evaluation_sums), strict=True))
            if writer is not None:
                with writer.as_default(step=epoch):
                    for key, value in logs.items():
                        tf.summary.scalar(key, value)
            if best.end_epoch(logs, history, bar, head):
                break
    if writer is not None:
        writer.close()
    if best.weights is not None:
        head.set_weights(best.weights)
    return {key: values for key, values in history.items() if values}


def _evaluate(head: keras.Model, chunks: _Chunks, evaluation_sums) -> tuple[float, float]:
    """Mean loss (with the weight penalty) and accuracy over every chunk."""
    loss_sum, hits, rows = 0.0, 0.0, 0
    for x, y, _ in chunks:
        chunk_loss, chunk_hits = evaluation_sums(x, y)
        loss_sum, hits, rows = loss_sum + float(chunk_loss), hits + float(chunk_hits), rows + int(x.shape[0])
    penalty = float(tf.add_n(head.losses)) if head.losses else 0.0
    return loss_sum / rows + penalty, hits / rows


def predict_features(head: keras.Model, features: np.ndarray | FeatureSource) -> np.ndarray:
    """The head's outputs for every row of ``features`` (an array or a streamed source), in row order."""
    # Called directly: Model.predict would build a dataset and a predict function for a few matrix products.
    def predict(x: np.ndarray) -> np.ndarray:
        return in_batches(lambda batch: head(batch, training=False), x, batch_size=PREDICT_BATCH)

    source = as_source(features)
    if isinstance(source, InMemoryFeatures):
        return predict(source.x)
    outputs = None
    for x, positions in source.chunks():
        predicted = predict(x)
        if outputs is None:
            outputs = np.empty((source.shape[0], predicted.shape[1]), predicted.dtype)
        outputs[positions] = predicted
    return outputs


def merge_history(*histories: dict) -> dict[str, list[float]]:
    """One history of several training phases (head, then fine-tuning), values rounded for metrics.json.

    Example:
        >>> merge_history({"loss": [0.9, 0.5]}, {"loss": [0.4], "val_loss": [0.45]})
        {'loss': [0.9, 0.5, 0.4], 'val_loss': [0.45]}
    """
    merged: dict[str, list[float]] = {}
    for history in histories:
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            merged.setdefault(key, []).extend(round(float(v), 5) for v in history.get(key, []))
    return {k: v for k, v in merged.items() if v}
