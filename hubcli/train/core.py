"""The one training core behind ``retrain-images`` and ``classify-text``.

A run goes: labelled examples -> stable splits -> module inputs -> features
(frozen module: from the on-disk feature cache, computing only the misses) ->
linear softmax head -> optional fine-tuning of the whole model -> a complete
run directory (see the brief's run-directory contract), written to a temporary
directory and renamed into place.

Everything that depends on the kind of data lives in a :class:`Modality`
(``hubcli.train.images.ImageModality``, ``hubcli.train.text.TextModality``);
this module never looks at pixels or characters.

The Modality interface (duck-typed; ``ImageModality`` is the reference)::

    class Modality:
        task: str                     # "image" | "text": run.json "task"; evaluate/predict dispatch on it
        preprocessing: str            # stable id of every step from raw example to module input (size,
                                      # resize method, decoder version...). Part of every feature-cache
                                      # key: change it whenever the module's input could change.
        supports_augmentation: bool   # False for text: --augment is refused, fine-tuning uses none
        representative_limit: int     # at most this many training inputs go to representative.npz (<= 200)
        failures: list[tuple[str, str]]   # (example.key, reason) of examples iter_inputs skipped

        @classmethod
        def from_run(cls, run: hubcli.export.artifacts.Run) -> Modality:   # for evaluate/predict

        def content_hash(self, example: Example) -> str:
            # HEX digest of the example's raw content (image file bytes; utf-8 text, plus anything
            # else that changes the module input). Never the path, label or split.

        def iter_inputs(self, examples, batch_size) -> Iterator[tuple[list[int], np.ndarray]]:
            # Yields (positions in `examples`, batch of RAW inputs), pipelined (decode ahead in
            # threads while the module runs). Raw = compact arrays kept in memory: uint8
            # [b, h, w, 3] for images, object/str array [b] for text. Unreadable examples are
            # skipped and appended to self.failures.

        def model_inputs(self, raw: tf.Tensor) -> tf.Tensor:
            # In-graph: raw batch -> what the Keras model (and module) take. Images: float32
            # [b, h, w, 3] in [0, 1]; text: tf.string [b] (identity).

        def augment(self, raw: tf.Tensor, seeds: tf.Tensor) -> tf.Tensor:
            # Seeded augmentation of a RAW batch (same dtype and shape out); seeds int32 [b, 2],
            # one stateless seed per example so cached augmented copies are reproducible.
            # Only called when supports_augmentation.

        def keras_input(self) -> keras.KerasTensor:      # keras.Input((h, w, 3)) / keras.Input((), dtype="string")

        def build_encoder(self, module: ModuleRef, trainable: bool) -> keras.layers.Layer:
            # model inputs -> features. Image: HubLayer(module.layer_handle, trainable=...,
            # settings=module.settings). Text with a preprocessor: a layer running both.

        def serving_signatures(self, model: keras.Model, labels) -> dict[str, tf.function]:
            # tf.functions with input_signature for model/; each returns
            # classify_outputs(model(x, training=False), labels). Image: serving_default(images),
            # serve_bytes(image_bytes); text: serving_default(text).

        def run_fields(self) -> dict:                    # {"image_size": [h, w]} / {"image_size": None}
        def load_evaluation_data(self, path, **options) -> tuple[list[str], list[Example]]:  # `evaluate`
        def prediction_inputs(self, items: Sequence[str]) -> np.ndarray:  # `predict`: model inputs

The core's entry points: ``train(data, modality, module, config, output, overwrite=False,
data_config=None) -> summary``, ``evaluate(model_path, data_path, **options)``,
``predict(model_path, items, top_k)``. ``data`` is a :class:`hubcli.train.splits.LabeledData`
(build it with ``LabeledData.from_examples(labels, examples, validation_split, test_split)``;
an ``Example.split`` set by the dataset is kept). The feature cache, head, fine-tuning,
metrics, plots and run directory are the core's.

Example (what ``retrain-images`` does):
    >>> from hubcli import image_data, training  # doctest: +SKIP
    >>> module = training.ModuleRef.resolve("efficientnet_lite0", settings)  # doctest: +SKIP
    >>> modality = image_data.ImageModality(module.info.image_size)  # doctest: +SKIP
    >>> data = image_data.load_image_folder("flowers/", validation_split=0.1, test_split=0.1)  # doctest: +SKIP
    >>> summary = training.train(data, modality, module, training.TrainConfig(), "runs/flowers")  # doctest: +SKIP
    >>> summary["accuracy"], summary["extraction"]["features_computed"]  # a warm re-run computes none  # doctest: +SKIP
    (0.88, 0)
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from hubcli import console
from hubcli.errors import DataError, HubcliError, UsageError
from hubcli.fsio import DISK_FULL_ERRNOS
from hubcli.train.config import TrainConfig
from hubcli.train.feature_cache import FeatureCache, features_root
from hubcli.train.metrics import classification_metrics, plot_confusion_matrix, plot_training_curves
from hubcli.train.splits import Example, LabeledData

RUN_SCHEMA = "hubcli.run/1"
#: Bumped when augment() could produce different pixels for the same (image, copy) seed.
AUGMENT_VERSION = 1
_PREDICT_BATCH = 64


@dataclass
class ModuleRef:
    """A resolved module: what the user typed, where it lies, its content digest and inspection."""

    handle: str
    path: Path
    sha256: str
    info: Any
    settings: Any = None

    @classmethod
    def resolve(cls, handle: str, settings) -> ModuleRef:
        from hubcli.hub.pull import resolve_module_path
        from hubcli.savedmodel.inspector import content_digest, inspect_module

        path = Path(resolve_module_path(handle, settings))
        digest = content_digest(path).split(":")[-1]
        return cls(handle=handle, path=path, sha256=digest, info=inspect_module(path), settings=settings)

    @property
    def layer_handle(self) -> str:
        """The handle a saved HubLayer keeps: an absolute path for local modules, else the handle."""
        local = Path(self.handle).expanduser()
        return str(local.resolve()) if local.exists() else self.handle

    def to_json(self) -> dict:
        from hubcli.config import Settings
        from hubcli.hub.local_modules import describe_artifact

        return {
            "handle": self.handle,
            "path": str(self.path),
            "sha256": self.sha256,
            "op_libraries": list(getattr(self.info, "op_libraries", None) or []),
            # Hub module or local conversion: which artifact the name resolved to.
            "artifact": describe_artifact(self.path, self.settings or Settings.load()),
        }


def classify_outputs(probabilities, labels: Sequence[str]) -> dict:
    """The serving outputs every run model returns: probabilities and the top-1 class name."""
    names = tf.constant(list(labels))
    return {"probabilities": probabilities, "classes": tf.gather(names, tf.argmax(probabilities, axis=-1))}


# -- features ------------------------------------------------------------------------


@dataclass
class ExtractionStats:
    """What feature extraction did; `features_computed == 0` means the module never ran."""

    features_computed: int = 0
    features_cached: int = 0
    forward_batches: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict:
        rate = self.features_computed / self.seconds if self.features_computed and self.seconds > 0 else None
        return {
            "features_computed": self.features_computed,
            "features_cached": self.features_cached,
            "forward_batches": self.forward_batches,
            "seconds": round(self.seconds, 3),
            "examples_per_s": round(rate, 1) if rate else None,
        }


class FeatureExtractor:
    """Features of examples under a frozen encoder, through the feature cache.

    Only cache misses are decoded and run through the module, in batches, with
    decoding pipelined ahead by the modality.
    """

    def __init__(self, modality, encoder, cache: FeatureCache | None, batch_size: int = 32):
        self.modality = modality
        self.cache = cache
        self.batch_size = batch_size
        self.stats = ExtractionStats()
        self._forward = tf.function(lambda raw: encoder(modality.model_inputs(raw), training=False), reduce_retracing=True)
        self._forward_augmented = tf.function(
            lambda raw, seeds: encoder(modality.model_inputs(modality.augment(raw, seeds)), training=False),
            reduce_retracing=True,
        )

    def _key(self, example: Example, copy: int | None) -> str:
        digest = self.modality.content_hash(example)
        return digest if copy is None else f"{digest}+aug{AUGMENT_VERSION}.{copy}"

    def features(self, examples: Sequence[Example], copy: int | None = None, description: str = "extracting features") -> tuple[np.ndarray, list[int]]:
        """Features [n_ok, dim] and the positions (into ``examples``) they belong to.

        ``copy`` selects the n-th augmented copy instead of the plain example.
        Unreadable examples are left out (and recorded in ``modality.failures``).
        """
        keys = [self._key(example, copy) for example in examples]
        found, _ = self.cache.get(keys) if self.cache is not None else ({}, None)
        self.stats.features_cached += sum(1 for key in keys if key in found)
        todo = [i for i, key in enumerate(keys) if key not in found]
        # Identical files (same key) are computed once.
        first_of_key = {}
        for i in todo:
            first_of_key.setdefault(keys[i], i)
        unique = list(first_of_key.values())
        if unique:
            started = time.perf_counter()
            with console.progress_bar(len(unique), description, unit="ex") as bar:
                for positions, raw in self.modality.iter_inputs([examples[i] for i in unique], self.batch_size):
                    if copy is None:
                        batch = self._forward(tf.constant(raw))
                    else:
                        seeds = np.asarray(
                            [[int(keys[unique[p]][:8], 16) & 0x7FFFFFFF, copy] for p in positions], dtype=np.int32
                        )
                        batch = self._forward_augmented(tf.constant(raw), tf.constant(seeds))
                    values = batch.numpy()
                    batch_keys = [keys[unique[p]] for p in positions]
                    found.update(zip(batch_keys, values))
                    if self.cache is not None:
                        self.cache.put(batch_keys, values)
                    self.stats.forward_batches += 1
                    self.stats.features_computed += len(positions)
                    bar.update(len(positions))
            self.stats.seconds += time.perf_counter() - started
        kept = [i for i, key in enumerate(keys) if key in found]
        dim = next(iter(found.values())).shape[-1] if found else 0
        matrix = np.stack([found[keys[i]] for i in kept]) if kept else np.zeros((0, dim), np.float32)
        return matrix, kept


# -- the head and its training -------------------------------------------------------

OPTIMIZERS = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD", "rmsprop": "RMSprop", "nadam": "Nadam"}


def make_optimizer(name: str, learning_rate: float):
    class_name = OPTIMIZERS.get(name.lower())
    if class_name is None:
        raise UsageError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")
    if learning_rate <= 0:
        raise UsageError(f"learning rate must be positive, got {learning_rate}")
    return getattr(keras.optimizers, class_name)(learning_rate=learning_rate)


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


def _callbacks(config: TrainConfig, epochs: int, has_validation: bool, description: str, log_dir: Path | None):
    callbacks = [
        keras.callbacks.EarlyStopping(
            monitor="val_loss" if has_validation else "loss",
            patience=config.patience,
            restore_best_weights=True,
        ),
        _EpochProgress(epochs, description),
    ]
    if log_dir is not None:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(log_dir)))
    return callbacks


def build_head(feature_dim: int, num_classes: int, config: TrainConfig):
    """The head on features: dropout, then an L2-regularised softmax layer.

    Its layers ("head_dropout", "classifier") are reused as is on top of the encoder
    for the full model, so what was trained on cached features is what gets saved.
    """
    features = keras.Input((feature_dim,), name="features")
    dropout = keras.layers.Dropout(config.dropout, name="head_dropout")
    classifier = keras.layers.Dense(
        num_classes, activation="softmax", kernel_regularizer=keras.regularizers.L2(config.l2), name="classifier"
    )
    return keras.Model(features, classifier(dropout(features)), name="head")


def fit_head(head, train: tuple, validation: tuple | None, config: TrainConfig, log_dir: Path | None = None) -> dict:
    """Train the head on in-memory features; early stopping on validation loss, best weights kept.

    A compiled whole-epoch loop instead of ``Model.fit``: on cached features an epoch is a
    few milliseconds of math, and fit's per-epoch dataset and callback overhead would be
    most of a warm re-run.
    """
    optimizer = make_optimizer(config.optimizer, config.learning_rate)
    optimizer.build(head.trainable_variables)
    cross_entropy = keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)
    x_train, y_train = (tf.constant(v) for v in train)
    batch_size = config.batch_size

    def total_loss(x_batch, y_batch, training):
        probabilities = head(x_batch, training=training)
        loss = cross_entropy(y_batch, probabilities)
        if head.losses:
            loss += tf.add_n(head.losses)
        hits = tf.cast(tf.equal(tf.argmax(probabilities, -1), tf.argmax(y_batch, -1)), tf.float32)
        return loss, tf.reduce_mean(hits)

    @tf.function
    def train_epoch(order):
        losses, accuracies = tf.TensorArray(tf.float32, 0, dynamic_size=True), tf.TensorArray(tf.float32, 0, dynamic_size=True)
        batches = (tf.size(order) + batch_size - 1) // batch_size
        for step in tf.range(batches):
            chosen = order[step * batch_size : (step + 1) * batch_size]
            with tf.GradientTape() as tape:
                loss, accuracy = total_loss(tf.gather(x_train, chosen), tf.gather(y_train, chosen), True)
            gradients = tape.gradient(loss, head.trainable_variables)
            optimizer.apply(gradients, head.trainable_variables)
            losses, accuracies = losses.write(step, loss), accuracies.write(step, accuracy)
        return tf.reduce_mean(losses.stack()), tf.reduce_mean(accuracies.stack())

    evaluate = tf.function(lambda x_eval, y_eval: total_loss(x_eval, y_eval, False))
    rng = np.random.default_rng(config.seed)
    history: dict[str, list[float]] = {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": []}
    writer = tf.summary.create_file_writer(str(log_dir)) if log_dir is not None else None
    best_loss, best_weights, waited = float("inf"), None, 0
    with console.progress_bar(config.epochs, "training head", unit="epoch") as bar:
        for epoch in range(config.epochs):
            loss, accuracy = train_epoch(tf.constant(rng.permutation(len(train[0])), tf.int32))
            logs = {"loss": float(loss), "accuracy": float(accuracy)}
            if validation is not None:
                val_loss, val_accuracy = evaluate(tf.constant(validation[0]), tf.constant(validation[1]))
                logs.update(val_loss=float(val_loss), val_accuracy=float(val_accuracy))
            for key, value in logs.items():
                history[key].append(value)
            if writer is not None:
                with writer.as_default(step=epoch):
                    for key, value in logs.items():
                        tf.summary.scalar(key, value)
            bar.set_postfix({k: f"{v:.3f}" for k, v in logs.items() if k != "accuracy"})
            bar.update(1)
            monitored = logs.get("val_loss", logs["loss"])
            if monitored < best_loss:
                best_loss, best_weights, waited = monitored, head.get_weights(), 0
            else:
                waited += 1
                if waited >= config.patience:
                    break
    if writer is not None:
        writer.close()
    if best_weights is not None:
        head.set_weights(best_weights)
    return {key: values for key, values in history.items() if values}


def _compile(model, config: TrainConfig, learning_rate: float) -> None:
    model.compile(
        optimizer=make_optimizer(config.optimizer, learning_rate),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
        metrics=["accuracy"],
    )


def _one_hot(labels: Sequence[int], num_classes: int) -> np.ndarray:
    return np.eye(num_classes, dtype=np.float32)[np.asarray(labels, dtype=np.int64)]


def _merge_history(*histories: dict) -> dict[str, list[float]]:
    merged: dict[str, list[float]] = {}
    for history in histories:
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            merged.setdefault(key, []).extend(round(float(v), 5) for v in history.get(key, []))
    return {k: v for k, v in merged.items() if v}


def _predict(model, modality, raw: np.ndarray) -> np.ndarray:
    """Probabilities of the full model on raw inputs, batched, inference mode."""
    outputs = [
        model(modality.model_inputs(tf.constant(raw[start : start + _PREDICT_BATCH])), training=False).numpy()
        for start in range(0, len(raw), _PREDICT_BATCH)
    ]
    return np.concatenate(outputs) if outputs else np.zeros((0, model.output_shape[-1]), np.float32)


def _raw_inputs(modality, examples: Sequence[Example], batch_size: int) -> tuple[np.ndarray, list[int]]:
    """All raw inputs of ``examples`` in memory (fine-tuning, representative samples)."""
    positions, batches = [], []
    for batch_positions, raw in modality.iter_inputs(examples, batch_size):
        positions.extend(batch_positions)
        batches.append(raw)
    return (np.concatenate(batches) if batches else np.zeros((0,))), positions


# -- the run directory ---------------------------------------------------------------


def default_output(name: str, runs_dir: str | os.PathLike = "runs") -> Path:
    """``runs/<name>``, or ``runs/<name>-2``... when taken: a default never overwrites a run."""
    base = Path(runs_dir) / (name or "run")
    candidate, number = base, 1
    while candidate.exists():
        number += 1
        candidate = base.with_name(f"{base.name}-{number}")
    return candidate


def check_output(output: str | os.PathLike, overwrite: bool) -> Path:
    output = Path(output)
    if output.exists() and not overwrite:
        raise UsageError(f"{output} already exists; choose another --output or pass --overwrite")
    if output.exists() and not (output / "run.json").is_file():
        raise UsageError(f"{output} exists and is not a hubcli run; refusing to replace it")
    return output


def out_of_space(err: BaseException) -> str | None:
    """Why a write failed for lack of space, else None.

    Python's writes raise OSError with an errno; shutil.copytree (an OSError without one)
    and TensorFlow's own file ops (tf.errors) fold the OS message into a long text.
    """
    if isinstance(err, OSError) and err.errno in DISK_FULL_ERRNOS:
        return err.strerror
    if isinstance(err, (OSError, tf.errors.OpError)):
        return next((os.strerror(code) for code in DISK_FULL_ERRNOS if os.strerror(code) in str(err)), None)
    return None


def _publish(staging: Path, output: Path) -> None:
    """Swap the finished staging directory into place; an old run is removed only afterwards."""
    retired = None
    if output.exists():
        retired = output.with_name(f".{output.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(output, retired)
    os.replace(staging, output)
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)


def _save_serving_model(model, modality, labels: Sequence[str], path: Path) -> None:
    holder = tf.Module()
    holder.model = model
    tf.saved_model.save(holder, str(path), signatures=modality.serving_signatures(model, labels))


def _save_representative(modality, raw: np.ndarray, path: Path) -> None:
    inputs = modality.model_inputs(tf.constant(raw))
    if inputs.dtype == tf.string:
        values = np.asarray([value.decode("utf-8") for value in inputs.numpy()], dtype=str)
    else:
        values = inputs.numpy()
    # Uncompressed: pixels barely compress, and zlib on 60 MB of floats costs seconds.
    np.savez(path, inputs=values)


def _evenly_spaced(count: int, limit: int) -> list[int]:
    if count <= limit:
        return list(range(count))
    return sorted({int(i) for i in np.linspace(0, count - 1, limit)})


# -- the one entry point -------------------------------------------------------------


def train(
    data: LabeledData,
    modality,
    module: ModuleRef,
    config: TrainConfig,
    output: str | os.PathLike,
    overwrite: bool = False,
    data_config: dict | None = None,
) -> dict:
    """Train a classifier on ``data`` and write the complete run directory ``output``.

    Returns the summary that ``--json`` prints (also the core of metrics.json).
    """
    output = check_output(output, overwrite)
    if config.fine_tune and module.info.format == "tf1_hub":
        raise UsageError("--fine-tune needs a TF2 module; TF1 Hub format modules can only be used frozen")
    if config.augment_copies and not modality.supports_augmentation:
        raise UsageError(f"{modality.task} data has no augmentation; drop --augment")
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = output.parent / f".{output.name}.partial-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        summary = _train_into(staging, data, modality, module, config, data_config or {})
        _publish(staging, output)
    except BaseException as err:
        shutil.rmtree(staging, ignore_errors=True)
        reason = out_of_space(err)
        if reason:
            raise HubcliError(f"cannot write the run directory {output}: {reason}; nothing was changed there") from None
        raise
    summary["output"] = str(output)
    return summary


def _train_into(staging: Path, data: LabeledData, modality, module: ModuleRef, config: TrainConfig, data_config: dict) -> dict:
    started = time.perf_counter()
    keras.utils.set_random_seed(config.seed)
    labels = data.labels
    num_classes = len(labels)
    encoder = modality.build_encoder(module, trainable=False)
    cache = FeatureCache(features_root(module.settings.cache_dir), module.sha256, modality.preprocessing)
    extractor = FeatureExtractor(modality, encoder, cache, config.extraction_batch_size)

    x, kept_examples = {}, {}
    for name in ("train", "validation", "test"):
        examples = getattr(data, name)
        matrix, kept = extractor.features(examples, description=f"features ({name})") if examples else (None, [])
        kept_examples[name] = [examples[i] for i in kept]
        if kept:
            x[name] = matrix
    if modality.failures:
        shown = ", ".join(f"{key} ({reason})" for key, reason in modality.failures[:10])
        more = f" and {len(modality.failures) - 10} more" if len(modality.failures) > 10 else ""
        console.warn(f"skipped {len(modality.failures)} unreadable example(s): {shown}{more}")
        data = LabeledData(labels, origin=data.origin, **kept_examples)
        data.check_classes()
    y = {name: np.asarray([e.label for e in getattr(data, name)]) for name in x}

    x_train, y_train = x["train"], y["train"]
    for copy in range(config.augment_copies):
        copies, kept = extractor.features(data.train, copy=copy, description=f"augmented features ({copy + 1}/{config.augment_copies})")
        x_train = np.concatenate([x_train, copies])
        y_train = np.concatenate([y_train, y["train"][kept]])

    head = build_head(x_train.shape[1], num_classes, config)
    dropout, classifier = head.get_layer("head_dropout"), head.get_layer("classifier")
    has_validation = "validation" in x
    fit_started = time.perf_counter()
    head_history = fit_head(
        head,
        (x_train, _one_hot(y_train, num_classes)),
        (x["validation"], _one_hot(y["validation"], num_classes)) if has_validation else None,
        config,
        staging / "logs" / "head" if config.tensorboard else None,
    )

    inputs = modality.keras_input()
    model = keras.Model(inputs, classifier(dropout(encoder(inputs))), name="classifier_model")
    histories = [head_history]
    raw = {}
    if config.fine_tune:
        for name in ("train", "validation", "test"):
            examples = getattr(data, name)
            if examples:
                raw[name] = _raw_inputs(modality, examples, config.extraction_batch_size)[0]
        encoder.trainable = True
        _compile(model, config, config.fine_tune_learning_rate or config.learning_rate / 10)
        histories.append(_fine_tune(model, modality, raw, y, config, num_classes, staging))
    training_seconds = time.perf_counter() - fit_started

    evaluated_on = "test" if "test" in x else "validation" if has_validation else "train"
    if evaluated_on == "train":
        console.warn("no validation or test examples; metrics are on the training data and say little")

    def final_probabilities(split: str) -> np.ndarray:
        # The head alone on cached features is the frozen model; a fine-tuned one must see inputs.
        if config.fine_tune:
            return _predict(model, modality, raw[split])
        return head.predict(x[split], batch_size=_PREDICT_BATCH, verbose=0)

    metrics = classification_metrics(y[evaluated_on], final_probabilities(evaluated_on), labels)
    validation_accuracy = None
    if has_validation:
        validation_accuracy = classification_metrics(y["validation"], final_probabilities("validation"), labels)["accuracy"]
    history = _merge_history(*histories)

    # Everything below writes the run directory (still the staging copy).
    (staging / "labels.txt").write_text("".join(f"{name}\n" for name in labels), encoding="utf-8")
    model.save(staging / "model.keras")
    _save_serving_model(model, modality, labels, staging / "model")
    picked = _evenly_spaced(len(data.train), modality.representative_limit)
    sample_raw = raw["train"][picked] if "train" in raw else _raw_inputs(modality, [data.train[i] for i in picked], config.extraction_batch_size)[0]
    _save_representative(modality, sample_raw, staging / "representative.npz")
    plots = staging / "plots"
    plots.mkdir()
    plot_training_curves(history, plots / "training_curves.png", phase_starts=[len(head_history.get("loss", []))] if config.fine_tune else [])
    plot_confusion_matrix(metrics["confusion_matrix"], labels, plots / "confusion_matrix.png")

    summary = {
        "task": modality.task,
        "labels": labels,
        "module": module.to_json(),
        "splits": data.sizes(),
        "evaluated_on": evaluated_on,
        **metrics,
        "validation_accuracy": validation_accuracy,
        "epochs_run": len(history.get("loss", [])),
        "fine_tuned": config.fine_tune,
        "training_time_s": round(training_seconds, 3),
        "extraction": extractor.stats.to_json(),
        "total_time_s": round(time.perf_counter() - started, 3),
        "skipped": [{"key": key, "reason": reason} for key, reason in modality.failures],
        "history": history,
    }
    run_meta = {
        "schema": RUN_SCHEMA,
        "task": modality.task,
        "module": module.to_json(),
        **modality.run_fields(),
        "labels": labels,
        "config": {**config.to_json(), **data_config, "data": data.origin},
        "representative": "representative.npz",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    (staging / "run.json").write_text(json.dumps(run_meta, indent=2) + "\n", encoding="utf-8")
    (staging / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def _fine_tune(model, modality, raw: dict, y: dict, config: TrainConfig, num_classes: int, staging: Path) -> dict:
    """Train the whole model (module included) on augmented raw inputs at the fine-tuning rate."""
    train_raw = raw["train"]
    augment = modality.supports_augmentation

    def prepare(batch_raw, batch_y):
        if augment:
            seeds = tf.random.uniform([tf.shape(batch_raw)[0], 2], maxval=2**31 - 1, dtype=tf.int32)
            batch_raw = modality.augment(batch_raw, seeds)
        return modality.model_inputs(batch_raw), batch_y

    dataset = (
        tf.data.Dataset.from_tensor_slices((train_raw, _one_hot(y["train"], num_classes)))
        .shuffle(len(train_raw), seed=config.seed, reshuffle_each_iteration=True)
        .batch(config.batch_size)
        .map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .prefetch(tf.data.AUTOTUNE)
    )
    validation = None
    if "validation" in raw:
        validation = (
            tf.data.Dataset.from_tensor_slices((raw["validation"], _one_hot(y["validation"], num_classes)))
            .batch(_PREDICT_BATCH)
            .map(lambda r, t: (modality.model_inputs(r), t))
        )
    return model.fit(
        dataset,
        epochs=config.fine_tune_epochs,
        validation_data=validation,
        shuffle=False,  # the dataset reshuffles itself each epoch
        callbacks=_callbacks(config, config.fine_tune_epochs, validation is not None, "fine-tuning", staging / "logs" / "fine_tune" if config.tensorboard else None),
        verbose=0,
    ).history


# -- using a finished run: evaluate and predict --------------------------------------


def modality_for_run(run):
    """The Modality that reads data for a run (``hubcli.export.artifacts.Run``), chosen by its task."""
    if run.task == "image":
        from hubcli.train.images import ImageModality

        return ImageModality.from_run(run)
    if run.task == "text":
        from hubcli.train.text import TextModality

        return TextModality.from_run(run)
    raise DataError(f"run {run.path} has unknown task {run.task!r}")


class ServingModel:
    """A run's ``model/`` SavedModel, called through ``serving_default`` in batches."""

    def __init__(self, run):
        import importlib

        meta = json.loads((run.path / "run.json").read_text(encoding="utf-8"))
        # A text run's BERT-style preprocessor (run.json "preprocessor") may need its own ops.
        for part in (meta.get("module"), meta.get("preprocessor")):
            for library in (part or {}).get("op_libraries", []):
                importlib.import_module(library)
        model_dir = run.serving_model
        if not (model_dir / "saved_model.pb").is_file():
            raise DataError(f"run {run.path} has no model/ SavedModel")
        self._loaded = tf.saved_model.load(str(model_dir))
        self._function = self._loaded.signatures["serving_default"]
        (self._input_name,) = self._function.structured_input_signature[1]

    def probabilities(self, inputs: np.ndarray) -> np.ndarray:
        outputs = [
            self._function(**{self._input_name: tf.constant(inputs[start : start + _PREDICT_BATCH])})["probabilities"].numpy()
            for start in range(0, len(inputs), _PREDICT_BATCH)
        ]
        return np.concatenate(outputs)


def evaluate(model_path: str | os.PathLike, data_path: str | os.PathLike, **load_options) -> dict:
    """Metrics of a run's model on a labelled dataset (same keys as training's metrics).

    Class names must be the model's; a class the model does not know is an error.
    """
    from hubcli.export.artifacts import open_run

    run = open_run(model_path)
    modality = modality_for_run(run)
    data_labels, examples = modality.load_evaluation_data(data_path, **load_options)
    unknown = [name for name in data_labels if name not in run.labels]
    if unknown:
        raise DataError(
            f"class(es) {', '.join(map(repr, unknown))} in {data_path} are not among the model's labels: {', '.join(run.labels)}"
        )
    if not examples:
        raise DataError(f"{data_path} has no examples to evaluate")
    to_run_index = [run.labels.index(name) for name in data_labels]
    serving = ServingModel(run)
    truth, probabilities = [], []
    with console.progress_bar(len(examples), "evaluating", unit="ex") as bar:
        for positions, raw in modality.iter_inputs(examples, _PREDICT_BATCH):
            probabilities.append(serving.probabilities(modality.model_inputs(tf.constant(raw)).numpy()))
            truth.extend(to_run_index[examples[p].label] for p in positions)
            bar.update(len(positions))
    if modality.failures:
        console.warn(f"skipped {len(modality.failures)} unreadable example(s): {', '.join(k for k, _ in modality.failures[:10])}")
    if not truth:
        raise DataError(f"none of the examples in {data_path} could be read")
    metrics = classification_metrics(truth, np.concatenate(probabilities), run.labels)
    return {
        "model": str(run.path),
        "data": str(data_path),
        "task": run.task,
        **metrics,
        "skipped": [{"key": key, "reason": reason} for key, reason in modality.failures],
    }


def predict(model_path: str | os.PathLike, items: Sequence[str], top_k: int = 1) -> dict:
    """Top-k classes for each item (image files, or sentences for a text run)."""
    from hubcli.export.artifacts import open_run

    if top_k < 1:
        raise UsageError("--top-k must be at least 1")
    if not items:
        raise UsageError("nothing to predict: give files (or --text for a text model)")
    run = open_run(model_path)
    modality = modality_for_run(run)
    probabilities = ServingModel(run).probabilities(modality.prediction_inputs(items))
    k = min(top_k, len(run.labels))
    predictions = []
    for item, row in zip(items, probabilities):
        best = np.argsort(-row)[:k]
        predictions.append(
            {"input": str(item), "top": [{"label": run.labels[i], "probability": round(float(row[i]), 6)} for i in best]}
        )
    return {"model": str(run.path), "task": run.task, "predictions": predictions}
