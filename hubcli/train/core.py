"""The one training core behind ``retrain-images`` and ``classify-text``.

A run goes: labelled examples -> stable splits -> module inputs -> features
(frozen module: from the on-disk feature cache, computing only the misses) ->
linear head (chosen by cross-validation, or the fixed Keras head; softmax, or sigmoid
for multi-label runs) -> optional fine-tuning of the whole model -> a complete run
directory (:mod:`hubcli.train.rundir`), written to a hidden sibling and swapped into place.

The test split never takes part in choosing anything; it is what the run is scored on.
Without one, a ``--head auto`` run is scored on its out-of-fold predictions.

Everything that depends on the kind of data lives in a
:class:`~hubcli.train.modality.Modality` (``ImageModality``, ``TextModality``);
this module never looks at pixels or characters. ``data`` is a
:class:`~hubcli.train.splits.LabeledData` (an ``Example.split`` set by the dataset is
kept). Using a finished run is :mod:`hubcli.train.inference`'s.

Example (what ``retrain-images`` does):
    >>> module = ModuleRef.resolve("efficientnet_lite0", settings)  # doctest: +SKIP
    >>> modality = ImageModality(module.info.image_size)  # doctest: +SKIP
    >>> data = load_image_folder("flowers/", validation_split=0.1, test_split=0.1)  # doctest: +SKIP
    >>> summary = train(data, modality, module=module, config=TrainConfig(), output="runs/flowers")  # doctest: +SKIP
    >>> summary["accuracy"], summary["extraction"]["features_computed"]  # a warm re-run computes none  # doctest: +SKIP
    (0.88, 0)
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from hubcli import console
from hubcli.errors import UsageError
from hubcli.train import rundir
from hubcli.train.class_weights import warn_if_imbalanced
from hubcli.train.config import TrainConfig
from hubcli.train.distributed import cluster_role, fine_tune_distributed, make_strategy
from hubcli.train.feature_stream import FeatureSource, ShardedFeatures, chunk_bytes, memory_budget, should_stream
from hubcli.train.features import FeatureExtractor, frozen_extractor, raw_inputs
from hubcli.train.fine_tune import fine_tune, predict_examples
from hubcli.train.gate import QualityGate
from hubcli.train.head import CLASSIFIER_LAYER, DROPOUT_LAYER, build_head, merge_history, predict_features
from hubcli.train.head_fitting import FittedHead, cross_validated_score, fit_head_step
from hubcli.train.labeling import label_kind
from hubcli.train.metrics import plot_confusion_matrix, plot_selection_path, plot_training_curves
from hubcli.train.modality import Modality, warn_skipped
from hubcli.train.model_card import write_model_card
from hubcli.train.module_ref import ModuleRef
from hubcli.train.multilabel_metrics import choose_thresholds
from hubcli.train.prefetch import Prefetch
from hubcli.train.preflight import check_run
from hubcli.train.report import example_mistakes, write_report
from hubcli.train.resources import peak_rss_mb
from hubcli.train.selection import Augmented, selection_arrays
from hubcli.train.serving import can_rewrite_serving_weights, rewrite_serving_weights, save_serving_model
from hubcli.train.splits import SPLITS, Example, LabeledData


def train(
    data: LabeledData,
    modality: Modality,
    *,
    module: ModuleRef,
    config: TrainConfig,
    output: str | os.PathLike,
    overwrite: bool = False,
    data_config: dict | None = None,
    gate: QualityGate | None = None,
    prefetch: Prefetch | None = None,
) -> dict:
    """Train a classifier on ``data`` and write the complete run directory ``output``.

    ``data_config`` is recorded in run.json's ``config`` beside the training options. A
    ``gate`` is only checked for being applicable here; the caller applies it to the summary.
    A started ``prefetch`` (:mod:`hubcli.train.prefetch`) is waited for before extraction.
    Returns the summary that ``--json`` prints (also the core of metrics.json).
    """
    config.check()
    role = cluster_role() if config.distribute == "multi-worker" else None
    if role is None or role.chief:
        output = rundir.check_output(output, overwrite)
    check_run(data, modality, module=module, config=config, gate=gate)
    if not config.multi_label:
        warn_if_imbalanced(data.class_counts(("train", "validation")), config.class_weight)
    if role is not None and not role.chief:
        # Every worker trains (they all take part in each step); only the chief writes the run.
        with tempfile.TemporaryDirectory(prefix="hubcli-worker-") as scratch:
            summary = _Training(Path(scratch), modality, module, config, name=Path(output).name).run(data, data_config or {})
        console.info(f"worker {role.index} of {role.workers} done; the chief writes the run")
        return {**summary, "output": None}
    with rundir.staged_run(output) as staging:
        summary = _Training(staging, modality, module, config, name=output.name, prefetch=prefetch).run(data, data_config or {})
    summary["output"] = str(output)
    return summary


@dataclass
class _Training:
    """One training run into ``staging``; its steps share the modality, model and what they learned."""

    staging: Path
    modality: Modality
    module: ModuleRef
    config: TrainConfig
    #: The run's name (its directory's), for the model card and report titles.
    name: str
    prefetch: Prefetch | None = None
    #: Features of each split: in memory, or streamed from the feature cache past the memory budget.
    x: dict[str, np.ndarray | FeatureSource] = field(default_factory=dict)
    y: dict[str, np.ndarray] = field(default_factory=dict)
    #: The readable examples of each split that has any (rows of ``x`` and ``y``).
    examples: dict[str, list[Example]] = field(default_factory=dict)

    def __post_init__(self):
        self.kind = label_kind(multi_label=self.config.multi_label)

    def run(self, data: LabeledData, data_config: dict) -> dict:
        started = time.perf_counter()
        # First: a multi-worker strategy configures collective ops, which must precede any TensorFlow work.
        strategy = make_strategy(self.config.distribute, batch_size=self.config.batch_size) if self.config.distribute else None
        keras.utils.set_random_seed(self.config.seed)
        encoder = self.modality.build_encoder(self.module, trainable=False)
        extractor = frozen_extractor(
            modality=self.modality, encoder=encoder, module=self.module, batch_size=self.config.extraction_batch_size,
            examples=len(data.all_examples()) + self.config.augment_copies * len(data.train),
        )
        streamed = self._streams(data)
        serving_ahead = self._save_serving_ahead(encoder, data.labels) if self._saves_serving_ahead() else None
        prefetched = self.prefetch.result() if self.prefetch is not None else None
        data = self._extract(extractor, data, streamed=streamed)
        if prefetched is not None:
            extractor.stats = extractor.stats.after_prefetch(prefetched.stats)
        augmented = self._augmented(extractor, data) if not streamed else None
        head_x, head_y = {name: self.x[name] for name in ("train", "validation") if name in self.x}, self.y
        if streamed and self.config.augment_copies:
            head_x["train"], train_labels = self._with_copies(extractor, data)
            head_y = {**self.y, "train": train_labels}

        fit_started = time.perf_counter()
        choice = None
        if prefetched is not None and self.config.head == "auto" and augmented is None and not streamed:
            choice = prefetched.choice_for(*selection_arrays(head_x, head_y))
        fitted = fit_head_step(
            head_x, head_y, config=self.config, kind=self.kind, num_labels=len(data.labels), augmented=augmented,
            log_dir=self.staging / rundir.LOGS_DIR / "head" if self.config.tensorboard else None,
            choice=choice,
        )
        inputs = self.modality.keras_input()
        classifier, dropout = fitted.head.get_layer(CLASSIFIER_LAYER), fitted.head.get_layer(DROPOUT_LAYER)
        model = keras.Model(inputs, classifier(dropout(encoder(inputs))), name="classifier_model")
        histories = [fitted.history]
        if strategy is not None:
            histories.append(self._fine_tune_distributed(model, encoder, fitted, data, strategy))
        elif self.config.fine_tune:
            histories.append(self._fine_tune(model, encoder, data))
            self._rethreshold(fitted, model)
        # A head the helper chose was trained there, while this process loaded TensorFlow.
        training_seconds = time.perf_counter() - fit_started + (choice.seconds if choice is not None else 0.0)
        cv = self._cross_validate(len(data.labels)) if self.config.cv_folds else None

        helper_rss_mb = prefetched.peak_rss_mb if prefetched is not None else 0.0
        evaluated_on, metrics, validation_accuracy, probabilities = self._score(fitted, model, data.labels)
        history = merge_history(*histories)
        self._write_artifacts(
            model, data, fitted, metrics, history,
            phase_starts=[len(fitted.history.get("loss", []))] if self.config.fine_tune else [], serving_ahead=serving_ahead,
        )
        summary = {
            "task": self.modality.task,
            "multi_label": self.config.multi_label,
            "labels": data.labels,
            "module": self.module.to_json(),
            "splits": data.sizes(),
            **({} if self.kind.multi_label else {"class_counts": _class_counts(data, data.labels)}),
            "evaluated_on": evaluated_on,
            **metrics,
            "validation_accuracy": validation_accuracy,
            "head": self.config.head,
            "class_weight": self.config.class_weight,
            "selection": fitted.choice.to_json() if fitted.choice else None,
            "cv": cv,
            "epochs_run": len(history.get("loss", [])),
            "fine_tuned": self.config.fine_tune,
            "training_time_s": round(training_seconds, 3),
            "extraction": {**extractor.stats.to_json(), "streamed_from_cache": streamed},
            "total_time_s": round(time.perf_counter() - started, 3),
            # Both processes' peaks, the helper's counted even if it peaked while this one was small.
            "peak_rss_mb": round(peak_rss_mb() + helper_rss_mb, 1),
            "helper_peak_rss_mb": helper_rss_mb or None,
            "skipped": [{"key": key, "reason": reason} for key, reason in self.modality.failures],
            "history": history,
        }
        rundir.write_run_record(
            self.staging,
            task=self.modality.task,
            module=self.module.to_json(),
            modality_fields=self.modality.run_fields(),
            labels=data.labels,
            config={**self.config.to_json(), **data_config, "data": data.origin},
            thresholds=None if fitted.thresholds is None else [float(t) for t in fitted.thresholds],
        )
        (self.staging / rundir.METRICS_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        scored = data.train + data.validation if evaluated_on == "out_of_fold" else getattr(data, evaluated_on)
        self._write_documents(summary, scored, probabilities)
        return summary

    def _write_documents(self, summary: dict, examples: list, probabilities: np.ndarray) -> None:
        """MODEL_CARD.md and report.html (the evaluated examples' mistakes, worst first) into the staging directory."""
        labels = summary["labels"]
        write_model_card(self.staging, self.staging / rundir.MODEL_CARD_FILE, name=self.name)
        # A multi-label mistake is a set, not one wrong class: the gallery is for single-label runs.
        mistakes = [] if self.kind.multi_label else example_mistakes(
            examples, [example.label for example in examples], probabilities, labels, self.modality.task
        )
        write_report(
            self.staging / rundir.REPORT_FILE,
            title=self.name,
            subtitle=f"{self.modality.task} classifier on {self.module.handle}; figures on the {summary['evaluated_on']} split",
            task=self.modality.task,
            labels=labels,
            metrics=summary,
            history=summary["history"],
            mistakes=mistakes,
        )

    def _streams(self, data: LabeledData) -> bool:
        """Whether this run's features exceed the memory budget, so the head streams them from the cache."""
        dim = self.module.info.output_dim
        rows = sum(len(getattr(data, name)) for name in SPLITS) * (1 + self.config.augment_copies)
        if not (dim and should_stream(rows=rows, dim=dim, max_memory=self._budget)):
            return False
        if self.config.multi_label or self.config.cv_folds:
            raise UsageError(
                f"the {rows:,} features of this run exceed the memory budget, and --multi-label and --cv need them in memory; raise --max-memory"
            )
        if self.config.head == "auto":
            console.warn("the features exceed the memory budget: the fixed head trains from the feature cache's shards (--head auto needs them in memory)")
            self.config = dataclasses.replace(self.config, head="fixed")
        return True

    @property
    def _budget(self) -> int:
        return memory_budget(self.config.max_memory)

    def _extract(self, extractor: FeatureExtractor, data: LabeledData, *, streamed: bool) -> LabeledData:
        """Features of every split into ``x`` and labels into ``y``; returns ``data`` less unreadable examples.

        Streamed, the features stay in the cache and ``x`` reads them from its shards.
        """
        kept_examples, rows = {}, {}
        for name in SPLITS:
            examples = getattr(data, name)
            kept = []
            if examples and streamed:
                keys, kept = extractor.cached(examples, description=f"features ({name})")
                rows[name] = self._source(extractor, [keys[i] for i in kept])
            elif examples:
                rows[name], kept = extractor.features(examples, description=f"features ({name})")
            kept_examples[name] = [examples[i] for i in kept]
            if kept:
                self.x[name] = rows[name]
                self.examples[name] = kept_examples[name]
        if self.modality.failures:
            warn_skipped(self.modality.failures)
            data = LabeledData(data.labels, origin=data.origin, **kept_examples)
            data.check_classes()
        self.y = {name: self.kind.label_array(getattr(data, name), len(data.labels)) for name in self.x}
        return data

    def _with_copies(self, extractor: FeatureExtractor, data: LabeledData) -> tuple[ShardedFeatures, np.ndarray]:
        """The streamed training features and labels with those of the cached augmented copies appended."""
        keys, labels = [extractor.key(example) for example in data.train], [self.y["train"]]
        copies = self.config.augment_copies
        for copy in range(copies):
            copy_keys, kept = extractor.cached(data.train, copy=copy, description=f"augmented features ({copy + 1}/{copies})")
            keys.extend(copy_keys[i] for i in kept)
            labels.append(self.y["train"][kept])
        return self._source(extractor, keys), np.concatenate(labels)

    def _source(self, extractor: FeatureExtractor, keys: list[str]) -> ShardedFeatures:
        """Features by cache key, streamed from the cache's shards."""
        locations = extractor.cache.locate(keys)
        return ShardedFeatures(extractor.cache.directory, locations, dim=self.module.info.output_dim, chunk_bytes=chunk_bytes(self._budget))

    def _augmented(self, extractor: FeatureExtractor, data: LabeledData) -> Augmented | None:
        """The cached augmented copies of the training examples, each tied to its original."""
        copies = self.config.augment_copies
        if not copies:
            return None
        parts = [extractor.features(data.train, copy=copy, description=f"augmented features ({copy + 1}/{copies})") for copy in range(copies)]
        source = np.concatenate([np.asarray(kept, dtype=np.int64) for _, kept in parts])
        return Augmented(x=np.concatenate([features for features, _ in parts]), y=self.y["train"][source], source=source)

    def _fine_tune(self, model: keras.Model, encoder: keras.layers.Layer, data: LabeledData) -> dict:
        """Fine-tune the model, reading the splits' inputs batch by batch in every epoch."""
        log_dir = self.staging / rundir.LOGS_DIR / "fine_tune" if self.config.tensorboard else None
        return fine_tune(
            model, encoder, self.modality, self.examples, self.y, config=self.config, kind=self.kind, num_classes=len(data.labels), log_dir=log_dir
        )

    def _fine_tune_distributed(self, model: keras.Model, encoder: keras.layers.Layer, fitted: FittedHead, data: LabeledData, strategy) -> dict:
        """Fine-tune a copy of ``model`` built in the strategy's scope, then keep its best weights in ``model``."""
        head_weights = fitted.head.get_weights()

        def build_model() -> keras.Model:
            replica_head = keras.models.clone_model(fitted.head)
            replica_head.set_weights(head_weights)
            replica_encoder = self.modality.build_encoder(self.module, trainable=True)
            if self.config.unfreeze_layers is not None:
                replica_encoder.train_top_layers(self.config.unfreeze_layers)
            inputs = self.modality.keras_input()
            classifier, dropout = replica_head.get_layer(CLASSIFIER_LAYER), replica_head.get_layer(DROPOUT_LAYER)
            return keras.Model(inputs, classifier(dropout(replica_encoder(inputs))), name="classifier_model")

        weights, history = fine_tune_distributed(
            build_model, self.modality, self.examples, self.y, config=self.config, num_classes=len(data.labels), strategy=strategy
        )
        # As after local fine-tuning, and so the weights line up with the copy's.
        encoder.trainable = True
        if self.config.unfreeze_layers is not None:
            encoder.train_top_layers(self.config.unfreeze_layers)
        model.set_weights(weights)
        return history

    def _saves_serving_ahead(self) -> bool:
        """Whether to write the serving model while the prefetching helper still works (the run would only wait).

        Only where the serving graph cannot depend on what the helper finds: a single-label
        head fitted by the solver, whose values replace the stand-in's whole.
        """
        return (
            self.prefetch is not None
            and self.prefetch.running()
            and self.config.head == "auto"
            and not self.kind.multi_label
            and bool(self.module.info.output_dim)
            and can_rewrite_serving_weights()
        )

    def _save_serving_ahead(self, encoder: keras.layers.Layer, labels: list[str]) -> _ServingAhead:
        """``model/`` saved around a stand-in head of the final head's shape; the final values are written at the end."""
        # Keras seeds default initialisers from Python's generator: the stand-in, made only when the
        # helper is slow, must leave it as it found it, or later draws would depend on timing.
        state = random.getstate()
        head = build_head(self.module.info.output_dim, len(labels), self.config, activation=self.kind.activation)
        random.setstate(state)
        inputs = self.modality.keras_input()
        stand_in = keras.Model(inputs, head.get_layer(CLASSIFIER_LAYER)(head.get_layer(DROPOUT_LAYER)(encoder(inputs))), name="classifier_model")
        signatures = self.modality.serving_signatures(stand_in, self.kind.serving_outputs(labels, None))
        return _ServingAhead(head, save_serving_model(stand_in, signatures, self.staging / rundir.SERVING_MODEL_DIR))

    def _probabilities(self, fitted: FittedHead, model: keras.Model, split: str) -> np.ndarray:
        # The head alone on cached features is the frozen model; a fine-tuned one must see inputs.
        if self.config.fine_tune:
            return predict_examples(model, self.modality, self.examples[split])
        return predict_features(fitted.head, self.x[split])

    def _rethreshold(self, fitted: FittedHead, model: keras.Model) -> None:
        """Fine-tuning moved the probabilities: a multi-label head's thresholds follow, on validation."""
        if fitted.thresholds is not None and "validation" in self.examples:
            fitted.thresholds = choose_thresholds(self.y["validation"], self._probabilities(fitted, model, "validation"))

    def _cross_validate(self, num_labels: int) -> dict:
        present = [name for name in SPLITS if name in self.x]
        x_all = np.concatenate([self.x[name] for name in present])
        y_all = np.concatenate([self.y[name] for name in present])
        return cross_validated_score(x_all, y_all, config=self.config, kind=self.kind, num_labels=num_labels)

    def _score(self, fitted: FittedHead, model: keras.Model, labels: list[str]) -> tuple[str, dict, float | None, np.ndarray]:
        """The split metrics are on, its metrics, the validation accuracy (None when validation trained the head), its probabilities."""
        has_validation = "validation" in self.x
        out_of_fold = fitted.choice is not None and not self.config.fine_tune
        if "test" in self.x:
            evaluated_on = "test"
        elif out_of_fold:
            evaluated_on = "out_of_fold"
        else:
            evaluated_on = "validation" if has_validation else "train"
        if evaluated_on == "train":
            console.warn("no validation or test examples; metrics are on the training data and say little")
        if evaluated_on == "out_of_fold":
            y = np.concatenate([self.y[name] for name in ("train", "validation") if name in self.y])
            probabilities = fitted.choice.out_of_fold
        else:
            y, probabilities = self.y[evaluated_on], self._probabilities(fitted, model, evaluated_on)
        metrics = self.kind.metrics(y, probabilities, labels, fitted.thresholds)
        validation_accuracy = None
        if has_validation and not out_of_fold and not self.kind.multi_label:
            validation_accuracy = self.kind.metrics(self.y["validation"], self._probabilities(fitted, model, "validation"), labels)["accuracy"]
        return evaluated_on, metrics, validation_accuracy, np.asarray(probabilities)

    def _write_artifacts(
        self, model: keras.Model, data: LabeledData, fitted: FittedHead, metrics: dict, history: dict, *, phase_starts: list[int],
        serving_ahead: _ServingAhead | None = None,
    ) -> None:
        """labels.txt, model.keras, model/, representative.npz and plots/ into the staging directory."""
        staging, labels = self.staging, data.labels
        (staging / rundir.LABELS_FILE).write_text("".join(f"{name}\n" for name in labels), encoding="utf-8")
        sample = [data.train[i] for i in _evenly_spaced(len(data.train), self.modality.representative_limit)]
        # Decoding and writing the sample is mostly outside the GIL, while saving the models is
        # Python tracing: on a second thread the sample costs the run next to nothing.
        with ThreadPoolExecutor(1, thread_name_prefix="hubcli-representative") as background:
            representative = background.submit(self._save_representative, sample, staging / rundir.REPRESENTATIVE_FILE)
            model.save(staging / rundir.KERAS_MODEL_FILE)
            if serving_ahead is None:
                outputs = self.kind.serving_outputs(labels, fitted.thresholds)
                save_serving_model(model, self.modality.serving_signatures(model, outputs), staging / rundir.SERVING_MODEL_DIR)
            else:
                serving_ahead.finish(fitted.head, staging / rundir.SERVING_MODEL_DIR)
            plots = staging / rundir.PLOTS_DIR
            plots.mkdir()
            if history:
                plot_training_curves(history, plots / "training_curves.png", phase_starts=phase_starts)
            if fitted.choice is not None:
                plot_selection_path(fitted.choice.curve, fitted.choice.l2, fitted.choice.extra["path_metric"], plots / "selection.png")
            if "confusion_matrix" in metrics:
                plot_confusion_matrix(metrics["confusion_matrix"], labels, plots / "confusion_matrix.png")
            representative.result()

    def _save_representative(self, examples: list[Example], path: Path) -> None:
        raw = raw_inputs(self.modality, examples, self.config.extraction_batch_size)
        inputs = self.modality.model_inputs(tf.constant(raw))
        if inputs.dtype == tf.string:
            values = np.asarray([value.decode("utf-8") for value in inputs.numpy()], dtype=str)
        else:
            values = inputs.numpy()
        # Uncompressed: pixels barely compress, and zlib on 60 MB of floats costs seconds.
        np.savez(path, inputs=values)


@dataclass
class _ServingAhead:
    """A serving model saved before the head was fitted: its stand-in head, and what the SavedModel tracks."""

    head: keras.Model
    holder: tf.Module

    def finish(self, fitted_head: keras.Model, path: Path) -> None:
        """Give the stand-in the fitted head's values and store them in the SavedModel at ``path``."""
        self.head.get_layer(CLASSIFIER_LAYER).set_weights(fitted_head.get_layer(CLASSIFIER_LAYER).get_weights())
        rewrite_serving_weights(self.holder, path)


def _class_counts(data: LabeledData, labels: list[str]) -> dict[str, dict[str, int]]:
    """Examples per class name in each split, every class listed (0 where a split has none)."""
    counts = {}
    for split in SPLITS:
        examples = getattr(data, split)
        if examples:
            per_class = np.bincount([example.label for example in examples], minlength=len(labels))
            counts[split] = {label: int(count) for label, count in zip(labels, per_class, strict=True)}
    return counts


def _evenly_spaced(count: int, limit: int) -> list[int]:
    if count <= limit:
        return list(range(count))
    return sorted({int(i) for i in np.linspace(0, count - 1, limit)})
