"""Keras model -> ONNX with tf2onnx, and an onnxruntime runner to check it.

The ONNX model has the interface of the run's ``serving_default``: one input
``images``, float32 ``[N, H, W, 3]`` RGB in [0, 1], and one output
``probabilities`` ``[N, classes]`` (class names go beside it in
``labels.txt``). The model is traced as a ``tf.function`` over the run's Keras
model and converted at :data:`OPSET`, which current onnxruntime releases run.

tf2onnx does not stop at an op it cannot map: it leaves a node of that TF
op's name in the graph, which no runtime can execute. :func:`convert_image_model`
looks for such nodes (op types that are not in the ONNX standard) and raises
one :class:`~hubcli.errors.ExportError` naming them.

tf2onnx and onnxruntime are optional: ``pip install 'hubcli[onnx]'``.

Example:
    >>> data = convert_image_model(model, (224, 224))  # doctest: +SKIP
    >>> run_onnx(data, images).shape  # doctest: +SKIP
    (8, 5)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hubcli.errors import ExportError
from hubcli.quiet_tensorflow import native_stderr_silenced

#: ONNX opset of the exported graph (onnxruntime 1.17+ runs it).
OPSET = 17
INPUT_NAME = "images"
OUTPUT_NAME = "probabilities"
_BATCH = 32
_INSTALL = "ONNX export needs tf2onnx and onnxruntime; install them with: pip install 'hubcli[onnx]'"


def require_onnx() -> None:
    """Raise one ExportError line when tf2onnx or onnxruntime is missing (before any slow work)."""
    for name in ("tf2onnx", "onnxruntime", "onnx"):
        _require(name)


def export_onnx(run, samples: np.ndarray, candidate: Path) -> tuple[np.ndarray, dict]:
    """Write an image run's ONNX model to ``candidate``; return its probabilities on ``samples`` and its details."""
    if not run.keras_model.is_file():
        raise ExportError(f"run {run.path} has no model.keras to convert")
    candidate.write_bytes(convert_image_model(run.load_keras_model(), run.image_size))
    probabilities = run_onnx(candidate.read_bytes(), samples)
    height, width = run.image_size
    return probabilities, {"onnx": {"opset": OPSET, "input": {INPUT_NAME: [None, height, width, 3]}, "output": OUTPUT_NAME}}


def _require(module_name: str):
    import importlib

    try:
        return importlib.import_module(module_name)
    except ImportError:
        raise ExportError(_INSTALL) from None


def convert_image_model(model, image_size: Sequence[int]) -> bytes:
    """Serialised ONNX of an image classifier: ``images`` float32 [N, H, W, 3] -> ``probabilities``."""
    import tensorflow as tf

    tf2onnx = _require("tf2onnx")
    height, width = (int(v) for v in image_size)
    spec = (tf.TensorSpec([None, height, width, 3], tf.float32, name=INPUT_NAME),)

    @tf.function(input_signature=spec, autograph=False)
    def serving(images):
        return {OUTPUT_NAME: model(images, training=False)}

    converter_log = logging.getLogger("tf2onnx")
    level = converter_log.level
    converter_log.setLevel(logging.CRITICAL)
    try:
        with native_stderr_silenced():
            proto, _ = tf2onnx.convert.from_function(serving, input_signature=spec, opset=OPSET)
    except Exception as err:  # noqa: BLE001 - tf2onnx raises many types; all mean "cannot convert"
        raise ExportError(f"ONNX conversion failed: {str(err).strip().splitlines()[-1][:300] if str(err).strip() else type(err).__name__}") from None
    finally:
        converter_log.setLevel(level)
    unmapped = unmapped_ops(proto)
    if unmapped:
        plural = "ops" if len(unmapped) > 1 else "op"
        raise ExportError(f"no ONNX mapping for {plural} {', '.join(unmapped)}; export this model with --format savedmodel or keras instead")
    return proto.SerializeToString()


def unmapped_ops(proto) -> list[str]:
    """Op types in an ONNX graph that no ONNX operator set defines (TF ops tf2onnx left as they were)."""
    from onnx import defs

    found: list[str] = []
    for node in proto.graph.node:
        if not defs.has(node.op_type, node.domain or "") and node.op_type not in found:
            found.append(node.op_type)
    return found


def run_onnx(model: bytes, inputs: np.ndarray) -> np.ndarray:
    """Probabilities of an exported ONNX model on ``inputs`` with onnxruntime's CPU provider."""
    ort = _require("onnxruntime")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: its start-up notes are not the user's concern
    try:
        session = ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as err:  # noqa: BLE001 - onnxruntime's own exception types are not importable by name
        raise ExportError(f"onnxruntime cannot load the exported model: {str(err).strip().splitlines()[-1][:300]}") from None
    outputs = [session.run([OUTPUT_NAME], {INPUT_NAME: inputs[start : start + _BATCH].astype(np.float32)})[0] for start in range(0, len(inputs), _BATCH)]
    return np.concatenate(outputs).astype(np.float32)
