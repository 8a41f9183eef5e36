"""Keras model -> TFLite flatbuffer, with quantisation, labels, and a runner to check it.

The conversion goes through the Keras 3 route that TF 2.16+ supports:
``model.export()`` writes a SavedModel whose ``serving_default`` returns the
probabilities, and ``tf.lite.TFLiteConverter.from_saved_model`` converts it.
(Converting a ``tf.function`` that closes over a Keras 3 model leaves its
weights as resource variables, which the quantisers skip and the interpreter
cannot read.)

Quantisation modes:

- ``none``: float32 weights and activations.
- ``dynamic``: int8 weights, float activations (``Optimize.DEFAULT``).
- ``float16``: float16 weights, dequantised at load time.
- ``int8``: int8 weights *and* activations, calibrated on the run's
  representative inputs. The model keeps a float32 interface: the converter
  adds one quantize op at the input and one dequantize op at the output, so the
  model takes the same [0, 1] images and returns the same probabilities as
  every other variant (same client code, same agreement check). Full-integer
  is tried first (every op int8); if an op has no int8 kernel the converter
  lets that op run in float and the result says ``full_integer: false``.

Only TFLite builtin ops are emitted. A graph that needs other ops fails with an
error that names them: Select TF ops would need the Flex delegate, which the
TF 2.21 Python interpreter lacks, so hubcli could not check such a model's
agreement. (Text runs convert their encoder on token ids instead of strings;
see :mod:`hubcli.export.text_tflite`.)

A model with several inputs (ids, mask, segment ids) takes its representative
inputs as a dict of arrays keyed by input name.

Labels and everything else clients need go into the file as standard TFLite
Model Metadata (:mod:`hubcli.export.tflite_metadata`), written by
:mod:`hubcli.export.tflite_export`.

Example:
    >>> tflite_bytes, details = convert_keras_model(model, "int8", representative=images)  # doctest: +SKIP
    >>> run_tflite(tflite_bytes, images[:4]).shape  # doctest: +SKIP
    (4, 2)
"""

from __future__ import annotations

import re
import tempfile
import warnings
from pathlib import Path

import numpy as np

from hubcli.errors import ExportError
from hubcli.quiet_tensorflow import native_stderr_silenced
from hubcli.train.batches import in_batches

QUANTIZE_MODES = ("none", "dynamic", "float16", "int8")

#: Calibration needs a few hundred examples at most; more only costs time.
_CALIBRATION_LIMIT = 200


def convert_keras_model(model, quantize: str = "none", representative: np.ndarray | dict[str, np.ndarray] | None = None) -> tuple[bytes, dict]:
    """Convert a Keras model to a TFLite flatbuffer of builtin ops.

    Returns ``(flatbuffer, details)``; details has ``quantize``, ``io_dtype``
    and, for int8, ``full_integer``. Raises :class:`ExportError` naming the ops
    the converter could not lower.
    """
    if quantize not in QUANTIZE_MODES:
        raise ExportError(f"unknown quantisation {quantize!r}; choose one of {', '.join(QUANTIZE_MODES)}")
    if quantize == "int8" and representative is None:
        raise ExportError("int8 quantisation needs representative inputs; export from a run directory that has representative.npz")
    with tempfile.TemporaryDirectory(prefix="hubcli-tflite-") as tmp:
        saved = Path(tmp) / "saved_model"
        model.export(str(saved), format="tf_saved_model", verbose=False)
        if quantize != "int8":
            return _convert(saved, quantize, None, int8_only=False), {"quantize": quantize, "io_dtype": "float32"}
        try:
            flatbuffer, full_integer = _convert(saved, quantize, representative, int8_only=True), True
        except ExportError:
            # Some op has no int8 kernel: let it run in float rather than fail the export.
            flatbuffer, full_integer = _convert(saved, quantize, representative, int8_only=False), False
    return flatbuffer, {"quantize": "int8", "io_dtype": "float32", "full_integer": full_integer}


def _convert(saved_model: Path, quantize: str, representative, int8_only: bool) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model), signature_keys=["serving_default"])
    ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8] if int8_only else [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize == "int8" and not int8_only:
        ops.insert(0, tf.lite.OpsSet.TFLITE_BUILTINS_INT8)
    converter.target_spec.supported_ops = ops
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantize == "int8":
        converter.representative_dataset = lambda: _calibration_samples(representative)
    try:
        with native_stderr_silenced():
            return converter.convert()
    except Exception as err:  # noqa: BLE001 - the converter raises several types; all mean "cannot convert"
        raise ExportError(f"TFLite conversion failed: {describe_converter_error(err)}") from None


def _calibration_samples(representative):
    """One-example batches for calibration: a list for a one-input model, a dict of input name -> array otherwise."""
    if isinstance(representative, dict):
        count = min(len(values) for values in representative.values())
        for i in range(min(count, _CALIBRATION_LIMIT)):
            yield {name: values[i : i + 1] for name, values in representative.items()}
        return
    for i in range(min(len(representative), _CALIBRATION_LIMIT)):
        yield [representative[i : i + 1]]


# The converter's MLIR diagnostics name failing ops in these forms.
_OP_PATTERNS = (
    re.compile(r"'tf\.(\w+)' op is neither a custom op nor a flex op"),
    re.compile(r"'tf\.(\w+)' op is not supported"),
    re.compile(r"(?:TF Select ops|Custom ops|Flex ops): ([\w, ]+)"),
    re.compile(r"op '(\w+)' .*?(?:not supported|unsupported)", re.IGNORECASE),
)


def describe_converter_error(err: BaseException) -> str:
    """One line for a converter failure: the ops it could not lower, and what to try.

    Example:
        >>> describe_converter_error(RuntimeError("error: 'tf.ResizeArea' op is neither a custom op nor a flex op"))
        'no TFLite kernel for op ResizeArea; export this model with --format savedmodel or keras instead'
    """
    text = str(err)
    ops: list[str] = []
    for pattern in _OP_PATTERNS:
        for match in pattern.finditer(text):
            for name in match.group(1).split(","):
                name = name.strip()
                if name and name not in ops:
                    ops.append(name)
    if ops:
        plural = "ops" if len(ops) > 1 else "op"
        message = f"no TFLite kernel for {plural} {', '.join(ops)}"
        if "TF Select ops" in text:
            # Select TF (Flex) ops would convert, but the Python interpreter of TF 2.21 has no
            # Flex delegate, so hubcli could not run the agreement check on such a model.
            message += " (they are TF Select ops, which hubcli does not emit because it cannot verify a model that needs the Flex delegate)"
        return message + "; export this model with --format savedmodel or keras instead"
    # No op named: keep the converter's last meaningful line rather than its whole MLIR dump.
    lines = [line.strip() for line in text.splitlines() if "error" in line.lower() and line.strip()]
    return (lines[-1] if lines else text.strip().splitlines()[-1] if text.strip() else type(err).__name__)[:300]


def run_tflite(flatbuffer: bytes, inputs: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Run a one-input, one-output TFLite model on ``inputs``; returns float32 outputs.

    Quantised (int8/uint8) inputs and outputs are converted with the tensors'
    scale and zero point, so callers always deal in floats.
    """
    import tensorflow as tf

    with warnings.catch_warnings(), native_stderr_silenced():
        # tf.lite.Interpreter warns that it moves to ai_edge_litert; it still works in TF 2.21.
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(model_content=flatbuffer)
        input_index = interpreter.get_input_details()[0]["index"]

        def run(batch: np.ndarray) -> np.ndarray:
            interpreter.resize_tensor_input(input_index, list(batch.shape), strict=False)
            try:
                interpreter.allocate_tensors()
            except RuntimeError as err:
                raise ExportError(f"the TFLite model does not run here: {str(err).splitlines()[-1]}") from None
            source = interpreter.get_input_details()[0]
            interpreter.set_tensor(source["index"], _to_tensor_dtype(batch, source))
            interpreter.invoke()
            target = interpreter.get_output_details()[0]
            return _from_tensor_dtype(interpreter.get_tensor(target["index"]), target)

        return in_batches(run, inputs, batch_size=batch_size)


def _to_tensor_dtype(values: np.ndarray, detail: dict) -> np.ndarray:
    dtype = detail["dtype"]
    if dtype in (np.int8, np.uint8):
        scale, zero_point = detail["quantization"]
        info = np.iinfo(dtype)
        return np.clip(np.round(values / scale + zero_point), info.min, info.max).astype(dtype)
    return values.astype(dtype) if dtype != np.bytes_ and dtype != np.object_ else values


def _from_tensor_dtype(values: np.ndarray, detail: dict) -> np.ndarray:
    if detail["dtype"] in (np.int8, np.uint8):
        scale, zero_point = detail["quantization"]
        return (values.astype(np.float32) - zero_point) * scale
    return values.astype(np.float32)
