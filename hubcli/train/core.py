"""The one training core behind ``retrain-images`` and ``classify-text``.

A run goes: labelled examples -> stable splits -> module inputs -> features
(frozen module: from the on-disk feature cache, computing only the misses) ->
linear softmax head -> optional fine-tuning of the whole model -> a complete
run directory (:mod:`hubcli.train.rundir`), written to a hidden sibling and
swapped into place.

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

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from hubcli import console
from hubcli.errors import UsageError
from hubcli.train import rundir
from hubcli.train.batches import PREDICT_BATCH, in_batches
from hubcli.train.config import TrainConfig
from hubcli.train.feature_cache import FeatureCache, features_root
from hubcli.train.features import FeatureExtractor, raw_inputs
from hubcli.train.fine_tune import fine_tune
from hubcli.train.head import CLASSIFIER_LAYER, DROPOUT_LAYER, build_head, fit_head, merge_history, one_hot
from hubcli.train.metrics import classification_metrics, plot_confusion_matrix, plot_training_curves
from hubcli.train.modality import Modality, warn_skipped
from hubcli.train.model_card import write_model_card
from hubcli.train.module_ref import ModuleRef
from hubcli.train.report import example_mistakes, write_report
from hubcli.train.serving import save_serving_model
from hubcli.train.splits import SPLITS, LabeledData


def train(
    data: LabeledData,
    modality: Modality,
    *,
    module: ModuleRef,
    config: TrainConfig,
    output: str | os.PathLike,
    overwrite: bool = False,
    data_config: dict | None = None,
) -> dict:
    """Train a classifier on ``data`` and write the complete run directory ``output``.

    ``data_config`` is recorded in run.json's ``config`` beside the training options.
    Returns the summary that ``--json`` prints (also the core of metrics.json).
    """
    output = rundir.check_output(output, overwrite)
    if config.fine_tune and module.info.format == "tf1_hub":
        raise UsageError("--fine-tune needs a TF2 module; TF1 Hub format modules can only be used frozen")
    if config.augment_copies and not modality.supports_augmentation:
        raise UsageError(f"{modality.task} data has no augmentation; drop --augment")
    with rundir.staged_run(output) as staging:
        summary = _Training(staging, modality, module, config, name=output.name).run(data, data_config or {})
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
    x: dict[str, np.ndarray] = field(default_factory=dict)
    y: dict[str, np.ndarray] = field(default_factory=dict)
    raw: dict[str, np.ndarray] = field(default_factory=dict)

    def run(self, data: LabeledData, data_config: dict) -> dict:
        started = time.perf_counter()
        keras.utils.set_random_seed(self.config.seed)
        encoder = self.modality.build_encoder(self.module, trainable=False)
        cache = FeatureCache(features_root(self.module.settings.cache_dir), self.module.sha256, self.modality.preprocessing)
        extractor = FeatureExtractor(self.modality, encoder, cache=cache, batch_size=self.config.extraction_batch_size)
        data = self._extract(extractor, data)
        x_train, y_train = self._training_set(extractor, data)

        head = build_head(x_train.shape[1], len(data.labels), self.config)
        fit_started = time.perf_counter()
        head_history = self._fit_head(head, x_train, y_train, len(data.labels))
        inputs = self.modality.keras_input()
        classifier, dropout = head.get_layer(CLASSIFIER_LAYER), head.get_layer(DROPOUT_LAYER)
        model = keras.Model(inputs, classifier(dropout(encoder(inputs))), name="classifier_model")
        histories = [head_history]
        if self.config.fine_tune:
            histories.append(self._fine_tune(model, encoder, data))
        training_seconds = time.perf_counter() - fit_started

        evaluated_on, metrics, validation_accuracy, probabilities = self._score(head, model, data.labels)
        history = merge_history(*histories)
        self._write_artifacts(model, data, metrics, history, phase_starts=[len(head_history.get("loss", []))] if self.config.fine_tune else [])
        summary = {
            "task": self.modality.task,
            "labels": data.labels,
            "module": self.module.to_json(),
            "splits": data.sizes(),
            "class_counts": {split: _class_counts(getattr(data, split), data.labels) for split in SPLITS if getattr(data, split)},
            "evaluated_on": evaluated_on,
            **metrics,
            "validation_accuracy": validation_accuracy,
            "epochs_run": len(history.get("loss", [])),
            "fine_tuned": self.config.fine_tune,
            "training_time_s": round(training_seconds, 3),
            "extraction": extractor.stats.to_json(),
            "total_time_s": round(time.perf_counter() - started, 3),
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
        )
        (self.staging / rundir.METRICS_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        self._write_documents(summary, getattr(data, evaluated_on), probabilities)
        return summary

    def _write_documents(self, summary: dict, examples: list, probabilities: np.ndarray) -> None:
        """MODEL_CARD.md and report.html (the evaluated split's mistakes, worst first) into the staging directory."""
        labels = summary["labels"]
        write_model_card(self.staging, self.staging / rundir.MODEL_CARD_FILE, name=self.name)
        mistakes = example_mistakes(examples, [example.label for example in examples], probabilities, labels, self.modality.task)
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

    def _extract(self, extractor: FeatureExtractor, data: LabeledData) -> LabeledData:
        """Features of every split into ``x`` and labels into ``y``; returns ``data`` less unreadable examples."""
        kept_examples = {}
        for name in SPLITS:
            examples = getattr(data, name)
            matrix, kept = extractor.features(examples, description=f"features ({name})") if examples else (None, [])
            kept_examples[name] = [examples[i] for i in kept]
            if kept:
                self.x[name] = matrix
        if self.modality.failures:
            warn_skipped(self.modality.failures)
            data = LabeledData(data.labels, origin=data.origin, **kept_examples)
            data.check_classes()
        self.y = {name: np.asarray([e.label for e in getattr(data, name)]) for name in self.x}
        return data

    def _training_set(self, extractor: FeatureExtractor, data: LabeledData) -> tuple[np.ndarray, np.ndarray]:
        """Training features and labels, with the cached augmented copies appended."""
        x_train, y_train = self.x["train"], self.y["train"]
        copies = self.config.augment_copies
        for copy in range(copies):
            features, kept = extractor.features(data.train, copy=copy, description=f"augmented features ({copy + 1}/{copies})")
            x_train = np.concatenate([x_train, features])
            y_train = np.concatenate([y_train, self.y["train"][kept]])
        return x_train, y_train

    def _fit_head(self, head: keras.Model, x_train: np.ndarray, y_train: np.ndarray, num_classes: int) -> dict:
        validation = None
        if "validation" in self.x:
            validation = (self.x["validation"], one_hot(self.y["validation"], num_classes))
        log_dir = self.staging / rundir.LOGS_DIR / "head" if self.config.tensorboard else None
        return fit_head(head, (x_train, one_hot(y_train, num_classes)), validation, config=self.config, log_dir=log_dir)

    def _fine_tune(self, model: keras.Model, encoder: keras.layers.Layer, data: LabeledData) -> dict:
        """Fine-tune the whole model on raw inputs, which are kept in ``raw`` for scoring."""
        for name in SPLITS:
            examples = getattr(data, name)
            if examples:
                self.raw[name] = raw_inputs(self.modality, examples, self.config.extraction_batch_size)
        encoder.trainable = True
        log_dir = self.staging / rundir.LOGS_DIR / "fine_tune" if self.config.tensorboard else None
        return fine_tune(model, self.modality, self.raw, self.y, config=self.config, num_classes=len(data.labels), log_dir=log_dir)

    def _score(self, head: keras.Model, model: keras.Model, labels: list[str]) -> tuple[str, dict, float | None, np.ndarray]:
        """The split metrics are on, its metrics, the validation accuracy (None without validation) and its probabilities."""
        has_validation = "validation" in self.x
        evaluated_on = "test" if "test" in self.x else "validation" if has_validation else "train"
        if evaluated_on == "train":
            console.warn("no validation or test examples; metrics are on the training data and say little")

        def final_probabilities(split: str) -> np.ndarray:
            # The head alone on cached features is the frozen model; a fine-tuned one must see inputs.
            if self.config.fine_tune:
                return in_batches(lambda batch: model(self.modality.model_inputs(tf.constant(batch)), training=False), self.raw[split])
            return head.predict(self.x[split], batch_size=PREDICT_BATCH, verbose=0)

        probabilities = final_probabilities(evaluated_on)
        metrics = classification_metrics(self.y[evaluated_on], probabilities, labels)
        validation_accuracy = None
        if has_validation:
            validation_accuracy = classification_metrics(self.y["validation"], final_probabilities("validation"), labels)["accuracy"]
        return evaluated_on, metrics, validation_accuracy, np.asarray(probabilities)

    def _write_artifacts(self, model: keras.Model, data: LabeledData, metrics: dict, history: dict, *, phase_starts: list[int]) -> None:
        """labels.txt, model.keras, model/, representative.npz and plots/ into the staging directory."""
        staging, labels = self.staging, data.labels
        (staging / rundir.LABELS_FILE).write_text("".join(f"{name}\n" for name in labels), encoding="utf-8")
        model.save(staging / rundir.KERAS_MODEL_FILE)
        save_serving_model(model, self.modality.serving_signatures(model, labels), staging / rundir.SERVING_MODEL_DIR)
        picked = _evenly_spaced(len(data.train), self.modality.representative_limit)
        if "train" in self.raw:
            sample_raw = self.raw["train"][picked]
        else:
            sample_raw = raw_inputs(self.modality, [data.train[i] for i in picked], self.config.extraction_batch_size)
        self._save_representative(sample_raw, staging / rundir.REPRESENTATIVE_FILE)
        plots = staging / rundir.PLOTS_DIR
        plots.mkdir()
        plot_training_curves(history, plots / "training_curves.png", phase_starts=phase_starts)
        plot_confusion_matrix(metrics["confusion_matrix"], labels, plots / "confusion_matrix.png")

    def _save_representative(self, raw: np.ndarray, path: Path) -> None:
        inputs = self.modality.model_inputs(tf.constant(raw))
        if inputs.dtype == tf.string:
            values = np.asarray([value.decode("utf-8") for value in inputs.numpy()], dtype=str)
        else:
            values = inputs.numpy()
        # Uncompressed: pixels barely compress, and zlib on 60 MB of floats costs seconds.
        np.savez(path, inputs=values)


def _class_counts(examples, labels: list[str]) -> dict[str, int]:
    """Examples per class name, every class listed (0 where a split has none)."""
    counts = np.bincount([example.label for example in examples], minlength=len(labels))
    return {label: int(count) for label, count in zip(labels, counts, strict=True)}


def _evenly_spaced(count: int, limit: int) -> list[int]:
    if count <= limit:
        return list(range(count))
    return sorted({int(i) for i in np.linspace(0, count - 1, limit)})
