"""The parts of a ``.tflite`` file hubcli reads without TensorFlow: tensors, buffers, metadata entries, signatures.

A TFLite model is a FlatBuffer of TFLite's ``schema.fbs`` (file identifier
``TFL3``). :data:`MODEL_SCHEMA` lists the tables and fields needed to describe
the main subgraph's input and output tensors and to find the model's metadata
buffers, in the schema's declaration order; fields hubcli does not read keep
their slots as ``skip``. Read with :mod:`hubcli.savedmodel.flatbuf`, so large
weight buffers are never copied.

Example:
    >>> model = read_model(Path("model.tflite").read_bytes())  # doctest: +SKIP
    >>> [entry["name"] for entry in model["metadata"]]  # doctest: +SKIP
    ['min_runtime_version', 'TFLITE_METADATA']
"""

from __future__ import annotations

from pathlib import Path

from hubcli.savedmodel.flatbuf import Field, Schema, decode

MODEL_IDENTIFIER = b"TFL3"

#: TFLite's TensorType enum, in schema order.
TENSOR_TYPES = (
    "float32", "float16", "int32", "uint8", "int64", "string", "bool", "int16", "complex64", "int8",
    "float64", "complex128", "uint64", "resource", "variant", "uint32", "uint16", "int4",
)  # fmt: skip

MODEL_SCHEMA = Schema(
    tables={
        "Model": [
            Field("version", "uint"),
            Field("operator_codes", "skip"),
            Field("subgraphs", "[table]", "SubGraph"),
            Field("description", "string"),
            Field("buffers", "[table]", "Buffer"),
            Field("metadata_buffer", "skip"),
            Field("metadata", "[table]", "Metadata"),
            Field("signature_defs", "[table]", "SignatureDef"),
        ],
        "SignatureDef": [
            Field("inputs", "[table]", "TensorMap"),
            Field("outputs", "[table]", "TensorMap"),
            Field("signature_key", "string"),
            Field("method_name", "skip"),
            Field("subgraph_index", "uint"),
        ],
        "TensorMap": [Field("name", "string"), Field("tensor_index", "uint")],
        "SubGraph": [
            Field("tensors", "[table]", "Tensor"),
            Field("inputs", "[int]"),
            Field("outputs", "[int]"),
            Field("operators", "skip"),
            Field("name", "string"),
        ],
        "Tensor": [
            Field("shape", "[int]"),
            Field("type", "byte", enum="TensorType"),
            Field("buffer", "skip"),
            Field("name", "string"),
            Field("quantization", "table", "QuantizationParameters"),
            Field("is_variable", "skip"),
            Field("sparsity", "skip"),
            Field("shape_signature", "[int]"),
        ],
        "QuantizationParameters": [
            Field("min", "skip"),
            Field("max", "skip"),
            Field("scale", "[float]"),
            Field("zero_point", "[long]"),
        ],
        # Buffers past 2 GB live after the flatbuffer, at offset/size from the file's start.
        "Buffer": [Field("data", "[ubyte]"), Field("offset", "ulong"), Field("size", "ulong")],
        "Metadata": [Field("name", "string"), Field("buffer", "uint")],
    },
    enums={"TensorType": TENSOR_TYPES},
)


def read_model(data) -> dict:
    """The model flatbuffer's tables named in :data:`MODEL_SCHEMA`; FlatBufferError if it is not a TFLite model."""
    return decode(MODEL_SCHEMA, "Model", data, identifier=MODEL_IDENTIFIER)


def is_tflite_file(path: str | Path) -> bool:
    """Whether ``path`` is a file that starts like a TFLite model (identifier ``TFL3`` at byte 4).

    Example:
        >>> is_tflite_file("/nonexistent.tflite")
        False
    """
    path = Path(path)
    try:
        with path.open("rb") as stream:
            return stream.read(8)[4:8] == MODEL_IDENTIFIER
    except OSError:
        return False
