"""``hubcli export``: a trained run leaves as a SavedModel, a TFLite model, a ``.keras`` file or ONNX.

Every export is checked before it is called good: the artifact, loaded back
from disk, runs on the run's sample inputs (``representative.npz``) next to the
run's own serving model (``<run>/model``, ``serving_default``), and hubcli
reports the top-1 agreement and the largest absolute difference between their
probabilities. Below ``min_agreement`` the export fails with
:class:`~hubcli.errors.ExportError`.

Nothing half-checked is ever at the requested path: the artifact is written
under a temporary name beside it and renamed into place only after it passes.
An artifact that fails the check is kept as ``<output>.rejected`` so it can be
examined, and the error names that path.

Formats:

- ``savedmodel``: a copy of the run's serving model with all its signatures
  (``serving_default`` on float images or strings, ``serve_bytes`` on encoded
  images). For images the check also feeds the samples as PNG bytes through
  ``serve_bytes``.
- ``tflite``: converted from the run's Keras model (text runs: its encoder on
  token ids); see :mod:`hubcli.export.tflite` for the quantisation modes and
  :mod:`hubcli.export.tflite_export` for the standard TFLite Model Metadata
  (labels, normalisation, tokenizer) that lets MediaPipe Tasks load the file.
- ``onnx`` (image runs): converted with tf2onnx, checked with onnxruntime;
  see :mod:`hubcli.export.onnx`.
- ``keras``: the run's ``model.keras``, which must reference no custom
  objects other than hubcli's own ``HubLayer``.

``labels.txt`` is written beside a ``.tflite`` or ``.onnx`` file, and every
export gets a ``MODEL_CARD.md`` beside it (:mod:`hubcli.train.model_card`).

Example:
    >>> result = export_run("runs/flowers", "tflite", quantize="int8")  # doctest: +SKIP
    >>> result.path.name, result.agreement.top1_agreement >= 0.99  # doctest: +SKIP
    ('model_int8.tflite', True)
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hubcli.errors import ExportError, UsageError
from hubcli.fsio import disk_full_reason, swap_into_place, write_text_atomic
from hubcli.train.batches import in_batches
from hubcli.train.model_card import write_model_card
from hubcli.train.rundir import EXPORT_DIR, LABELS_FILE, MODEL_CARD_FILE, THRESHOLDS_FILE, Run, open_run, thresholds_text

FORMATS = ("savedmodel", "tflite", "keras", "onnx")
#: File suffix each single-file format's --output must have.
_SUFFIXES = {"tflite": ".tflite", "keras": ".keras", "onnx": ".onnx"}
DEFAULT_MIN_AGREEMENT = 0.99


@dataclass(frozen=True)
class Agreement:
    """How closely an exported artifact reproduces the original model's probabilities."""

    samples: int
    top1_agreement: float
    max_abs_diff: float

    def to_json(self) -> dict:
        return {"samples": self.samples, "top1_agreement": round(self.top1_agreement, 6), "max_abs_diff": float(f"{self.max_abs_diff:.3g}")}


def compare_probabilities(reference: np.ndarray, candidate: np.ndarray, thresholds: Sequence[float] | None = None) -> Agreement:
    """Top-1 agreement and max |difference| of two [n, classes] probability arrays.

    With a multi-label run's ``thresholds``, a sample agrees when both predict the same set of
    labels (every probability on the same side of its threshold).

    Example:
        >>> compare_probabilities(np.array([[0.9, 0.1], [0.4, 0.6]]), np.array([[0.8, 0.2], [0.6, 0.4]]))
        Agreement(samples=2, top1_agreement=0.5, max_abs_diff=0.19999999999999996)
        >>> compare_probabilities(np.array([[0.9, 0.6]]), np.array([[0.8, 0.4]]), thresholds=[0.5, 0.5]).top1_agreement
        0.0
    """
    if reference.shape != candidate.shape:
        raise ExportError(f"exported model returns shape {candidate.shape[1:]}, the original {reference.shape[1:]}")
    if thresholds is None:
        same = np.argmax(reference, axis=1) == np.argmax(candidate, axis=1)
    else:
        limits = np.asarray(thresholds)[None, :]
        same = ((reference >= limits) == (candidate >= limits)).all(axis=1)
    return Agreement(len(reference), float(same.mean()), float(np.max(np.abs(reference - candidate))))


@dataclass
class ExportResult:
    """What was written and how well it agrees with the run's own model."""

    format: str
    path: Path
    size_bytes: int
    quantize: str | None
    min_agreement: float
    checks: dict[str, Agreement]
    labels_path: Path | None = None
    model_card_path: Path | None = None
    details: dict = field(default_factory=dict)

    @property
    def agreement(self) -> Agreement:
        """The worst of the checks (the figure the threshold applies to)."""
        return min(self.checks.values(), key=lambda a: (a.top1_agreement, -a.max_abs_diff))

    def to_json(self) -> dict:
        return {
            "format": self.format,
            "path": str(self.path),
            "size_bytes": self.size_bytes,
            "quantize": self.quantize,
            "labels_path": str(self.labels_path) if self.labels_path else None,
            "model_card": str(self.model_card_path) if self.model_card_path else None,
            "min_agreement": self.min_agreement,
            "agreement": self.agreement.to_json(),
            "checks": {name: check.to_json() for name, check in self.checks.items()},
            **self.details,
        }


def default_output(run: Run, format: str, quantize: str = "none") -> Path:
    """``<run>/export/saved_model``, ``.../model.tflite`` (``model_<quantize>.tflite``), ``.../model.keras`` or ``.../model.onnx``."""
    export_dir = run.path / EXPORT_DIR
    if format == "savedmodel":
        return export_dir / "saved_model"
    if format in ("keras", "onnx"):
        return export_dir / f"model.{format}"
    return export_dir / ("model.tflite" if quantize == "none" else f"model_{quantize}.tflite")


def check_export_options(format: str, quantize: str = "none", min_agreement: float = DEFAULT_MIN_AGREEMENT) -> None:
    """Refuse inconsistent options before any work (the CLI calls it before its status line)."""
    from hubcli.export.tflite import QUANTIZE_MODES

    if format not in FORMATS:
        raise UsageError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    if quantize not in QUANTIZE_MODES:
        raise UsageError(f"unknown quantisation {quantize!r}; choose one of {', '.join(QUANTIZE_MODES)}")
    if quantize != "none" and format != "tflite":
        raise UsageError("--quantize applies to --format tflite only")
    if not 0.0 <= min_agreement <= 1.0:
        raise UsageError("--min-agreement must be between 0 and 1")


def export_run(
    run_or_model: str | os.PathLike,
    format: str,
    *,
    output: str | os.PathLike | None = None,
    quantize: str = "none",
    min_agreement: float = DEFAULT_MIN_AGREEMENT,
    overwrite: bool = False,
) -> ExportResult:
    """Export a run as ``format`` and check it against the run's serving model.

    ``output`` defaults to :func:`default_output`; ``quantize`` applies to TFLite. An
    export below ``min_agreement`` is refused and kept as ``<output>.rejected``.
    """
    check_export_options(format, quantize, min_agreement)
    run = open_run(run_or_model)
    if format == "onnx":
        if run.task != "image":
            raise UsageError("--format onnx exports image runs; export a text run with --format tflite (token ids in) or savedmodel")
        from hubcli.export.onnx import require_onnx

        require_onnx()
    samples = run.samples()
    if samples is None:
        reason = "int8 quantisation needs its representative data" if quantize == "int8" else "hubcli needs sample inputs to check the export"
        raise ExportError(f"run {run.path} has no representative.npz: {reason}")
    target = _target(run, format, quantize, output, overwrite)

    from hubcli.train.serving import ServingModel

    # The reference is computed exactly as evaluate and predict compute a run's answers.
    reference = ServingModel(run).probabilities(samples)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        candidate = staging / target.name
        exporter = {"savedmodel": _export_savedmodel, "tflite": _export_tflite, "keras": _export_keras, "onnx": _export_onnx}[format]
        checks, details = exporter(run, samples, candidate, reference, quantize)
        result = ExportResult(format, target, _size(candidate), quantize if format == "tflite" else None, min_agreement, checks, details=details)
        _place(result, candidate, run)
        return result
    except BaseException as err:
        reason = disk_full_reason(err)
        if reason:
            raise ExportError(f"cannot write {target}: {reason}; nothing was written") from None
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _target(run: Run, format: str, quantize: str, output: str | os.PathLike | None, overwrite: bool) -> Path:
    """Where the export goes, its folder made; refuses to replace a file without ``overwrite``."""
    target = Path(output) if output else default_output(run, format, quantize)
    if target.exists() and not overwrite:
        raise UsageError(f"{target} already exists; remove it, choose another --output, or pass --overwrite")
    suffix = _SUFFIXES.get(format)
    if suffix and target.suffix != suffix:
        raise UsageError(f"--output for --format {format} must end in {suffix}")
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


def _place(result: ExportResult, candidate: Path, run: Run) -> None:
    """Move a checked ``candidate`` to ``result.path`` (labels and the model card beside it), or reject it."""
    target, worst = result.path, result.agreement
    if worst.top1_agreement < result.min_agreement:
        rejected = target.with_name(target.name + ".rejected")
        swap_into_place(candidate, rejected)
        raise ExportError(
            f"{result.format} export agrees with the original on only {worst.top1_agreement:.1%} of {worst.samples} samples "
            f"(max prob. diff {worst.max_abs_diff:.3g}; need {result.min_agreement:.1%}); kept as {rejected} for inspection"
        )
    if result.format in ("tflite", "onnx"):
        result.labels_path = target.parent / LABELS_FILE
        write_text_atomic(result.labels_path, "\n".join(run.labels) + "\n")
        if run.thresholds is not None:
            thresholds_path = target.parent / THRESHOLDS_FILE
            write_text_atomic(thresholds_path, thresholds_text(run.thresholds))
            result.details["thresholds_path"] = str(thresholds_path)
    result.model_card_path = target.parent / MODEL_CARD_FILE
    write_model_card(run.path, result.model_card_path, export=result.to_json())
    swap_into_place(candidate, target)


# -- formats -------------------------------------------------------------------------


def _export_savedmodel(run: Run, samples: np.ndarray, candidate: Path, reference: np.ndarray, quantize: str):
    import tensorflow as tf

    shutil.copytree(run.serving_model, candidate)
    loaded = tf.saved_model.load(str(candidate))
    checks = {"serving_default": compare_probabilities(reference, _signature_probabilities(loaded, "serving_default", samples), run.thresholds)}
    if run.task == "image":
        encoded = _png_bytes(samples)
        checks["serve_bytes"] = compare_probabilities(reference, _signature_probabilities(loaded, "serve_bytes", encoded), run.thresholds)
    return checks, {"signatures": sorted(loaded.signatures)}


def _export_keras(run: Run, samples: np.ndarray, candidate: Path, reference: np.ndarray, quantize: str):
    if not run.keras_model.is_file():
        raise ExportError(f"run {run.path} has no model.keras to export")
    shutil.copyfile(run.keras_model, candidate)
    foreign = _custom_objects(candidate)
    if foreign:
        raise ExportError(f"{run.keras_model} needs custom objects other than hubcli's HubLayer: {', '.join(foreign)}")
    model = run.load_keras_model(candidate)
    probabilities = _predict_keras(model, samples)
    return {"keras": compare_probabilities(reference, probabilities, run.thresholds)}, {}


def _export_tflite(run: Run, samples: np.ndarray, candidate: Path, reference: np.ndarray, quantize: str):
    from hubcli.export.tflite_export import export_tflite

    probabilities, details = export_tflite(run, samples, candidate, quantize)
    return {"tflite": compare_probabilities(reference, probabilities, run.thresholds)}, {"tflite": details}


def _export_onnx(run: Run, samples: np.ndarray, candidate: Path, reference: np.ndarray, quantize: str):
    from hubcli.export.onnx import export_onnx

    probabilities, details = export_onnx(run, samples, candidate)
    return {"onnxruntime": compare_probabilities(reference, probabilities, run.thresholds)}, details


# -- helpers -------------------------------------------------------------------------


def _signature_probabilities(loaded, signature: str, inputs: np.ndarray) -> np.ndarray:
    """Run one signature of an exported SavedModel over ``inputs``; returns its probabilities.

    (The run's own model goes through ``ServingModel``, which also loads the op libraries;
    by the time an export is checked they are loaded.)
    """
    from hubcli.train.serving import signature_probabilities

    if signature not in loaded.signatures:
        raise ExportError(f"the exported model has no {signature!r} signature (it has {', '.join(sorted(loaded.signatures)) or 'none'})")
    return signature_probabilities(loaded.signatures[signature], inputs)


def _predict_keras(model, inputs: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    return in_batches(lambda batch: model(tf.constant(batch), training=False), inputs)


def _png_bytes(images: np.ndarray) -> np.ndarray:
    """Encode float [0, 1] images as PNG, lossless up to the 8-bit rounding every photo has."""
    from PIL import Image

    encoded = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)).save(buffer, format="PNG")
        encoded.append(buffer.getvalue())
    return np.array(encoded, dtype=object)


def _custom_objects(keras_file: Path) -> list[str]:
    """Registered names in a .keras config that are neither Keras' own nor ``hubcli>...``."""
    with zipfile.ZipFile(keras_file) as archive:
        config = json.loads(archive.read("config.json"))
    found: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            if "class_name" in node:
                module, registered = str(node.get("module") or ""), str(node.get("registered_name") or "")
                ours = registered.startswith("hubcli>")
                # Keras' own objects live in keras.* modules; registered custom ones are "package>Name".
                if not ours and ((module and not module.startswith("keras")) or (not module and ">" in registered)):
                    found.add(registered or f"{module}.{node['class_name']}")
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    return sorted(found)


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
