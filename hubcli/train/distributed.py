"""Fine-tuning across devices or machines: ``--distribute mirrored`` and ``--distribute multi-worker``.

Keras 3's ``Model.fit`` fails under ``MultiWorkerMirroredStrategy``, so this is a custom loop
around ``strategy.run``, the same loop for both strategies and for one device:

- every epoch, all workers draw the same global order of the training examples (seeded by
  ``--seed`` and the epoch); a step takes the next ``batch_size`` of them, and replica ``r``
  of ``R`` gets the ``r``-th slice of ``batch_size / R``. Each worker decodes only the files
  of its own replicas' slices: input is sharded by file. The last partial batch of an epoch
  is left out (it would not split evenly), so every step is a full global batch;
- each replica's loss is scaled by the global batch size and the optimizer sums gradients
  across replicas, so a step computes what one device would on the whole batch; with
  augmentation, an example's seed depends on its content and the epoch, not on the replica;
- validation runs on every worker alike, so all take the same early-stopping decisions;
- the learning rate, ``--unfreeze`` and the warm start from the fitted head are local fine-tuning's.

Batch normalisation in a trainable module normalises with per-replica batch statistics
(``batch_size / R`` examples), so a module with batch norm trains differently from one device;
a module without it matches one device to float rounding.

Multi-worker runs read the cluster from ``TF_CONFIG`` (as TensorFlow does): every worker
runs the same command, and only the chief (``chief`` task, else worker 0) writes the run.

Example:
    >>> cluster_role({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}})
    ClusterRole(chief=False, index=1, workers=2)
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from hubcli import console
from hubcli.errors import DataError, UsageError
from hubcli.train.batches import in_batches
from hubcli.train.config import DISTRIBUTIONS, TrainConfig
from hubcli.train.fine_tune import warmup_cosine
from hubcli.train.head import BestEpoch, make_optimizer, one_hot
from hubcli.train.modality import Modality
from hubcli.train.splits import Example


@dataclass(frozen=True)
class ClusterRole:
    """This process's place in a cluster: whether it writes the run, its index, the worker count."""

    chief: bool
    index: int
    workers: int


def cluster_role(tf_config: dict | None = None) -> ClusterRole:
    """The role ``TF_CONFIG`` (or the given dict) gives this process; a lone process is the chief."""
    if tf_config is None:
        tf_config = _read_tf_config()
    if not tf_config:
        return ClusterRole(chief=True, index=0, workers=1)
    cluster, task = tf_config.get("cluster") or {}, tf_config.get("task") or {}
    workers = len(cluster.get("worker", [])) + len(cluster.get("chief", []))
    kind, index = task.get("type", "worker"), int(task.get("index", 0))
    chief = kind == "chief" or (kind == "worker" and index == 0 and not cluster.get("chief"))
    return ClusterRole(chief=chief, index=index, workers=workers)


def _read_tf_config() -> dict:
    text = os.environ.get("TF_CONFIG", "").strip()
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise UsageError(f"TF_CONFIG is not JSON ({err.msg} at character {err.pos})") from None
    if not isinstance(value, dict) or not isinstance(value.get("cluster"), dict) or not isinstance(value.get("task"), dict):
        example = '{"cluster": {"worker": ["host1:2222", "host2:2222"]}, "task": {"type": "worker", "index": 0}}'
        raise UsageError(f'TF_CONFIG needs "cluster" and "task", e.g. {example}')
    return value


def make_strategy(name: str, *, batch_size: int) -> tf.distribute.Strategy:
    """The strategy for ``--distribute NAME``: every local GPU (else every logical CPU), or the TF_CONFIG cluster.

    ``batch_size`` (global) must split evenly over the strategy's replicas.
    """
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        strategy = tf.distribute.MirroredStrategy([device.name for device in devices])
    elif name == "multi-worker":
        if not _read_tf_config().get("cluster", {}).get("worker"):
            raise UsageError("--distribute multi-worker needs TF_CONFIG naming the cluster's workers and this worker's task")
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        raise UsageError(f"unknown --distribute {name!r}; choose from {', '.join(DISTRIBUTIONS)}")
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise UsageError(f"--batch-size {batch_size} does not split evenly over {replicas} replicas; use a multiple of {replicas}")
    return strategy


def _local_replica_ids(strategy: tf.distribute.Strategy) -> list[int]:
    ids = strategy.experimental_distribute_values_from_function(lambda context: tf.constant(context.replica_id_in_sync_group))
    return [int(value) for value in strategy.experimental_local_results(ids)]


def _augment_seeds(modality: Modality, examples: Sequence[Example], epoch: int) -> np.ndarray:
    return np.asarray([[int(modality.content_hash(e)[:8], 16) & 0x7FFFFFFF, epoch] for e in examples], dtype=np.int32)


def fine_tune_distributed(
    build_model: Callable[[], keras.Model],
    modality: Modality,
    examples: dict[str, list[Example]],
    labels: dict[str, np.ndarray],
    *,
    config: TrainConfig,
    num_classes: int,
    strategy: tf.distribute.Strategy,
) -> tuple[list[np.ndarray], dict]:
    """Fine-tune the model ``build_model`` makes (called in the strategy's scope) on ``examples["train"]``.

    Returns the weights to keep (those of the best validation loss) and the history.
    """
    replicas = strategy.num_replicas_in_sync
    batch = config.batch_size
    train, y_train = examples["train"], labels["train"]
    steps = len(train) // batch
    if steps == 0:
        raise DataError(f"distributed fine-tuning needs at least one full batch: {len(train)} training examples < --batch-size {batch}")
    per_replica = batch // replicas
    with strategy.scope():
        model = build_model()
        # The schedule of local fine-tuning: warm-up over the first tenth of the steps, then cosine decay.
        learning_rate = config.fine_tune_learning_rate or config.learning_rate / 10
        optimizer = make_optimizer(config.optimizer, learning_rate, schedule=warmup_cosine(learning_rate, steps * config.fine_tune_epochs))
        optimizer.build(model.trainable_variables)
    local_ids = _local_replica_ids(strategy)
    train_step = _train_step(model, optimizer, modality, strategy, config)
    validation = _validation(modality, examples, labels, num_classes, config)

    history: dict[str, list[float]] = {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": []}
    best = BestEpoch(config.patience)
    with console.progress_bar(config.fine_tune_epochs, "fine-tuning (distributed)", unit="epoch") as bar:
        for epoch in range(config.fine_tune_epochs):
            order = np.random.default_rng([config.seed, epoch]).permutation(len(train))[: steps * batch]
            # This worker's slices, step by step: what its replicas see, decoded in one stream.
            mine = [order[step * batch + r * per_replica : step * batch + (r + 1) * per_replica] for step in range(steps) for r in local_ids]
            stream = modality.iter_inputs([train[i] for slice_ in mine for i in slice_], per_replica)
            losses, hits = [], 0.0
            for step in range(steps):
                values = {}
                for position, replica in enumerate(local_ids):
                    chosen = mine[step * len(local_ids) + position]
                    got, raw = next(stream, ((), None))
                    if len(got) != per_replica:
                        raise DataError("a training image could no longer be read during fine-tuning")
                    values[replica] = (raw, _augment_seeds(modality, [train[i] for i in chosen], epoch), one_hot(y_train[chosen], num_classes))
                loss, correct = train_step(*(_distribute(strategy, values, part) for part in range(3)))
                losses.append(float(loss))
                hits += float(correct)
            logs = {"loss": float(np.mean(losses)), "accuracy": hits / (steps * batch)}
            if validation is not None:
                logs.update(zip(("val_loss", "val_accuracy"), validation(model), strict=True))
            if best.end_epoch(logs, history, bar, model):
                break
    return best.weights, {key: values for key, values in history.items() if values}


def _distribute(strategy: tf.distribute.Strategy, values: dict, part: int):
    return strategy.experimental_distribute_values_from_function(lambda context: tf.constant(values[context.replica_id_in_sync_group][part]))


def _train_step(model: keras.Model, optimizer, modality: Modality, strategy: tf.distribute.Strategy, config: TrainConfig):
    augment = modality.supports_augmentation
    global_batch = config.batch_size

    def replica_step(raw, seeds, y):
        inputs = modality.model_inputs(modality.augment(raw, seeds) if augment else raw)
        with tf.GradientTape() as tape:
            probabilities = model(inputs, training=True)
            per_example = keras.losses.categorical_crossentropy(y, probabilities, label_smoothing=config.label_smoothing)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
            if model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
        gradients = tape.gradient(loss, model.trainable_variables)
        # Keras sums the gradients of all replicas before applying them.
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(probabilities, -1), tf.argmax(y, -1)), tf.float32))
        return loss, correct

    @tf.function
    def step(raw, seeds, y):
        loss, correct = strategy.run(replica_step, args=(raw, seeds, y))
        return strategy.reduce("SUM", loss, axis=None), strategy.reduce("SUM", correct, axis=None)

    return step


def _validation(modality: Modality, examples: dict, labels: dict, num_classes: int, config: TrainConfig):
    """Validation loss and accuracy of a model, computed alike on every worker (or None without a split)."""
    if not examples.get("validation"):
        return None
    raw = np.concatenate([batch for _, batch in modality.iter_inputs(examples["validation"], config.extraction_batch_size)])
    truth = one_hot(labels["validation"], num_classes)
    cross_entropy = keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)

    def evaluate(model: keras.Model) -> tuple[float, float]:
        probabilities = in_batches(lambda batch: model(modality.model_inputs(tf.constant(batch)), training=False), raw)
        loss = float(cross_entropy(truth, probabilities)) + float(sum(float(v) for v in model.losses))
        accuracy = float(np.mean(np.argmax(probabilities, -1) == labels["validation"]))
        return loss, accuracy

    return evaluate
