"""Using a finished run: ``evaluate`` (metrics on labelled data) and ``predict`` (top-k classes).

Both read the run through :func:`~hubcli.train.rundir.open_run`, pick its modality by the
run's task, and compute answers with the run's own serving model
(:class:`~hubcli.train.serving.ServingModel`), as every export check does.

Example:
    >>> evaluate("runs/flowers", "more_flowers/")["accuracy"]  # doctest: +SKIP
    0.91
    >>> predict("runs/flowers", ["rose.jpg"], top_k=2)["predictions"][0]["top"][0]["label"]  # doctest: +SKIP
    'roses'
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import tensorflow as tf

from hubcli import console
from hubcli.errors import DataError, UsageError
from hubcli.train.batches import PREDICT_BATCH
from hubcli.train.images import ImageModality
from hubcli.train.labeling import label_kind
from hubcli.train.manifest import read_manifest
from hubcli.train.modality import Modality, warn_skipped
from hubcli.train.report import example_mistakes, write_report
from hubcli.train.rundir import REPORT_FILE, Run, open_run
from hubcli.train.serving import ServingModel
from hubcli.train.splits import Example
from hubcli.train.text import TextModality, read_sentences

_MODALITIES: dict[str, type[Modality]] = {"image": ImageModality, "text": TextModality}


def modality_for_run(run: Run) -> Modality:
    """The Modality that reads data for a run, chosen by its task."""
    modality = _MODALITIES.get(run.task)
    if modality is None:
        raise DataError(f"run {run.path} has unknown task {run.task!r}")
    return modality.from_run(run)


def evaluate(model_path: str | os.PathLike, data_path: str | os.PathLike, *, report: str | os.PathLike | None = None, **load_options) -> dict:
    """Metrics of a run's model on a labelled dataset (same keys as training's metrics).

    Class names must be the model's; a class the model does not know is an error.
    ``load_options`` go to the modality's reader (text: ``text_column``, ``label_column``,
    ``encoding``). A multi-label run reads a manifest and scores with the run's thresholds.
    With ``report`` (a directory), also writes ``report.html`` there: the metrics and the
    examples the model got wrong, worst first; the summary's ``report`` names the file.
    """
    if report is not None and Path(report).exists() and not Path(report).is_dir():
        raise UsageError(f"--report takes a directory; {report} is a file")
    run = open_run(model_path)
    modality = modality_for_run(run)
    kind = label_kind(multi_label=run.multi_label)
    data_labels, examples = _evaluation_data(run, modality, data_path, load_options)
    unknown = [name for name in data_labels if name not in run.labels]
    if unknown:
        noun = "label(s)" if run.multi_label else "class(es)"
        raise DataError(f"{noun} {', '.join(map(repr, unknown))} in {data_path} are not among the model's labels: {', '.join(run.labels)}")
    if not examples:
        raise DataError(f"{data_path} has no examples to evaluate")
    examples = _relabelled(examples, [run.labels.index(name) for name in data_labels])
    serving = ServingModel(run)
    kept, probabilities = [], []
    # Metrics do not depend on the order, so batch as extraction does (text by length: little padding).
    examples = [examples[i] for i in modality.batching_order(examples)]
    with console.progress_bar(len(examples), "evaluating", unit="ex") as bar:
        for positions, raw in modality.iter_inputs(examples, PREDICT_BATCH):
            probabilities.append(serving.probabilities(modality.model_inputs(tf.constant(raw)).numpy()))
            kept.extend(examples[p] for p in positions)
            bar.update(len(positions))
    warn_skipped(modality.failures)
    if not kept:
        raise DataError(f"none of the examples in {data_path} could be read")
    truth = kind.label_array(kept, len(run.labels))
    probabilities = np.concatenate(probabilities)
    metrics = kind.metrics(truth, probabilities, run.labels, None if run.thresholds is None else np.asarray(run.thresholds))
    summary = {
        "model": str(run.path),
        "data": str(data_path),
        "task": run.task,
        "multi_label": run.multi_label,
        **metrics,
        "skipped": [{"key": key, "reason": reason} for key, reason in modality.failures],
    }
    if report is not None:
        page = Path(report) / REPORT_FILE
        page.parent.mkdir(parents=True, exist_ok=True)
        # A multi-label mistake is a set, not one wrong class: the gallery is for single-label runs.
        mistakes = [] if run.multi_label else example_mistakes(kept, list(truth), probabilities, run.labels, run.task)
        write_report(
            page,
            title=f"{run.path.name} on {Path(data_path).name}",
            subtitle=f"{run.task} classifier {run.path} evaluated on {data_path}",
            task=run.task,
            labels=run.labels,
            metrics=summary,
            mistakes=mistakes,
        )
        summary["report"] = str(page)
    return summary


def _evaluation_data(run: Run, modality: Modality, data_path, load_options: dict) -> tuple[list[str], list[Example]]:
    """Label names and examples to evaluate ``run`` on: its modality's data, or a manifest for a multi-label run."""
    if not run.multi_label:
        return modality.load_evaluation_data(data_path, **load_options)
    if load_options.get("text_column") or load_options.get("label_column"):
        raise UsageError("a multi-label run is evaluated on a manifest, whose columns are fixed; drop --text-column/--label-column")
    manifest = read_manifest(data_path, task=run.task, encoding=load_options.get("encoding") or "utf-8")
    return manifest.labels, manifest.examples


def _relabelled(examples: Sequence[Example], to_run_index: Sequence[int]) -> list[Example]:
    """The examples with label indices of the data replaced by the run's."""
    def relabel(label):
        return tuple(sorted(to_run_index[i] for i in label)) if isinstance(label, tuple) else to_run_index[label]

    return [replace(example, label=relabel(example.label)) for example in examples]


def predict(model_path: str | os.PathLike, items: Sequence[str], top_k: int = 1) -> dict:
    """Top-k classes for each item (image files, or sentences for a text run).

    A multi-label run also lists, under ``labels``, every label whose probability reaches
    its threshold (most probable first), with the threshold.
    """
    if top_k < 1:
        raise UsageError("--top-k must be at least 1")
    if not items:
        raise UsageError("nothing to predict: give files (or --text for a text model)")
    run = open_run(model_path)
    modality = modality_for_run(run)
    probabilities = ServingModel(run).probabilities(modality.prediction_inputs(items))
    k = min(top_k, len(run.labels))
    predictions = []
    for item, row in zip(items, probabilities, strict=True):
        order = np.argsort(-row)
        prediction = {"input": str(item), "top": [{"label": run.labels[i], "probability": round(float(row[i]), 6)} for i in order[:k]]}
        if run.thresholds is not None:
            prediction["labels"] = [
                {"label": run.labels[i], "probability": round(float(row[i]), 6), "threshold": run.thresholds[i]}
                for i in order
                if row[i] >= run.thresholds[i]
            ]
        predictions.append(prediction)
    return {"model": str(run.path), "task": run.task, "multi_label": run.multi_label, "predictions": predictions}


def prediction_items(model_path: str | os.PathLike, *, files: Sequence[str] = (), texts: Sequence[str] | None = None, stdin=None) -> list[str]:
    """What :func:`predict` classifies for this run: image files as given, or sentences for a text run.

    A text run takes ``texts``, else each line of ``files``, else stdin's lines
    (see :func:`hubcli.train.text.read_sentences`).

    Raises:
        UsageError: ``texts`` given to an image run.

    Example:
        >>> prediction_items("runs/reviews", texts=["Loved it"])  # doctest: +SKIP
        ['Loved it']
    """
    if open_run(model_path).task == "text":
        return read_sentences(texts, files, stdin=stdin)
    if texts:
        raise UsageError("--text is for text runs; this run classifies images: give image FILES")
    return list(files)
