"""A run as a ``.tflite`` file that clients load: converted, described with standard metadata, checked.

Image runs convert their Keras model as is (float ``[1, H, W, 3]`` in [0, 1]).
Text runs convert their encoder on token ids (:mod:`hubcli.export.text_tflite`)
and the check feeds it the ids the run's own tokenizer makes. Either way the
file carries TFLite Model Metadata (:mod:`hubcli.export.tflite_metadata`):
name, description, version (the run's creation time), author, licence (the
module's), how to feed the input, and ``labels.txt`` (plus ``vocab.txt`` for
text) packed inside, so MediaPipe Tasks' classifiers load it with no other file.

Example:
    >>> probabilities, details = export_tflite(open_run("runs/flowers"), samples, Path("model.tflite"), "int8")  # doctest: +SKIP
    >>> details["metadata"]["associated_files"]  # doctest: +SKIP
    ['labels.txt']
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hubcli.errors import ExportError
from hubcli.export.tflite import convert_keras_model, run_tflite
from hubcli.export.tflite_metadata import (
    LABELS_FILE,
    VOCAB_FILE,
    ModelDescription,
    image_classifier_metadata,
    populate,
    signature_input_order,
    text_classifier_metadata,
)
from hubcli.train.model_card import module_licence, module_metadata
from hubcli.train.rundir import THRESHOLDS_FILE, Run, thresholds_text


def describe_run(run: Run) -> ModelDescription:
    """The metadata's human-readable part for a run: its name, what it does, when, by what, under what licence."""
    handle = (run.module or {}).get("handle", "an unknown module")
    kind = "Sentence" if run.task == "text" else "Image"
    licence = module_licence(module_metadata({"module": run.module})) or f"unknown: the module {handle} states no licence"
    return ModelDescription(
        name=run.path.name,
        description=f"{kind} classifier for {len(run.labels)} classes, a linear head trained by hubcli on {handle}. See MODEL_CARD.md.",
        version=run.created or "1",
        author="hubcli",
        licence=licence,
    )


def export_tflite(run: Run, samples: np.ndarray, candidate: Path, quantize: str) -> tuple[np.ndarray, dict]:
    """Write the run's TFLite model to ``candidate``; return its probabilities on ``samples`` and its details."""
    if not run.keras_model.is_file():
        raise ExportError(f"run {run.path} has no model.keras to convert")
    model = run.load_keras_model()
    labels = ("\n".join(run.labels) + "\n").encode("utf-8")
    if run.task == "text":
        return _export_text(run, model, samples, candidate, quantize, labels)
    if not run.image_size:
        raise ExportError(f"run {run.path} cannot carry TFLite metadata: its run.json records no image size")
    metadata = image_classifier_metadata(describe_run(run), labels=run.labels, image_size=run.image_size)
    flatbuffer, details = convert_keras_model(model, quantize, representative=samples)
    files = {LABELS_FILE: labels}
    if run.thresholds is not None:
        files[THRESHOLDS_FILE] = thresholds_text(run.thresholds).encode("utf-8")
        # Every packed file is named in the metadata; the thresholds describe the whole model's outputs.
        described = {"name": THRESHOLDS_FILE, "description": "Per-label decision thresholds, in labels.txt's order.", "type": "DESCRIPTIONS"}
        metadata = {**metadata, "associated_files": [*metadata.get("associated_files", []), described]}
    candidate.write_bytes(populate(flatbuffer, metadata, files))
    probabilities = run_tflite(candidate.read_bytes(), samples)
    return probabilities, {**details, "metadata": _summary(metadata, files)}


def _export_text(run: Run, model, samples: np.ndarray, candidate: Path, quantize: str, labels: bytes) -> tuple[np.ndarray, dict]:
    from hubcli.export.text_tflite import run_token_id_tflite, token_id_model, token_id_route

    route = token_id_route(model)
    tokens = route.tokenize([str(sentence) for sentence in samples])
    flatbuffer, details = convert_keras_model(token_id_model(model, route), quantize, representative=tokens)
    metadata = text_classifier_metadata(describe_run(run), labels=run.labels, input_order=signature_input_order(flatbuffer))
    files = {LABELS_FILE: labels, VOCAB_FILE: route.vocab}
    candidate.write_bytes(populate(flatbuffer, metadata, files))
    probabilities = run_token_id_tflite(candidate.read_bytes(), tokens)
    inputs = {"inputs": signature_input_order(flatbuffer), "seq_length": route.seq_length, "io_dtype": "int32 in, float32 out"}
    return probabilities, {**details, **inputs, "metadata": _summary(metadata, files)}


def _summary(metadata: dict, files: dict) -> dict:
    return {"schema": "TFLite Model Metadata", "min_parser_version": metadata["min_parser_version"], "associated_files": sorted(files)}
