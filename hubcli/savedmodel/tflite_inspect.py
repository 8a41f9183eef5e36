"""``hubcli inspect FILE.tflite``: the tensors, the standard metadata and the packed files clients will see.

Example:
    >>> summary = inspect_tflite("runs/flowers/export/model.tflite")  # doctest: +SKIP
    >>> summary["inputs"][0]["shape"], summary["labels"][:2]  # doctest: +SKIP
    ([None, 224, 224, 3], ['daisy', 'dandelion'])
"""

from __future__ import annotations

from pathlib import Path

from hubcli.errors import InvalidModuleError, NotFoundError
from hubcli.savedmodel.flatbuf import FlatBufferError, decode
from hubcli.savedmodel.tflite_metadata import METADATA_IDENTIFIER, METADATA_SCHEMA, associated_files, metadata_buffer, recorded_files
from hubcli.savedmodel.tflite_model import read_model


def inspect_tflite(path: str | Path) -> dict:
    """:func:`describe_tflite` of the file at ``path``, plus its path and size; one error line if it is damaged."""
    path = Path(path).expanduser()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise NotFoundError(f"no such file: {path}") from None
    except OSError as err:
        raise InvalidModuleError(f"cannot read {path}: {err.strerror or err}") from None
    try:
        summary = describe_tflite(data)
    except FlatBufferError as err:
        raise InvalidModuleError(f"{path} is damaged: cannot parse it as a TFLite model ({err})") from None
    return {"path": str(path.absolute()), "size_bytes": len(data), **summary}


def describe_tflite(data) -> dict:
    """What a client sees in a ``.tflite`` file: tensors, its standard metadata, packed files and labels.

    ``metadata`` is None for a model without TFLite Model Metadata; ``missing_files``
    lists files the metadata names that are not packed in the file (clients fail on those).
    """
    model = read_model(data)
    subgraph = (model.get("subgraphs") or [{}])[0]
    tensors = subgraph.get("tensors", [])
    # The serving signature's names ("image", "ids") are what client code uses; tensor names are the converter's.
    signature = (model.get("signature_defs") or [{}])[0]
    names = {entry.get("tensor_index", 0): entry.get("name") for entry in signature.get("inputs", []) + signature.get("outputs", [])}

    def tensor(index: int) -> dict:
        item = tensors[index] if 0 <= index < len(tensors) else {}
        shape = item.get("shape_signature") or item.get("shape") or []
        quantization = item.get("quantization") or {}
        described = {
            "name": names.get(index) or item.get("name"),
            "tensor": item.get("name"),
            "dtype": item.get("type", "float32"),
            "shape": [None if d < 0 else d for d in shape],
        }
        if quantization.get("scale"):
            described["quantization"] = {"scale": quantization["scale"][0], "zero_point": (quantization.get("zero_point") or [0])[0]}
        return described

    raw = metadata_buffer(model, data)
    metadata = decode(METADATA_SCHEMA, "ModelMetadata", raw, identifier=METADATA_IDENTIFIER) if raw is not None else None
    files = associated_files(data)
    recorded = recorded_files(metadata) if metadata else []
    labels = None
    for item in recorded:
        if item.get("type") == "TENSOR_AXIS_LABELS" and item.get("name") in files:
            labels = files[item["name"]].decode("utf-8", errors="replace").splitlines()
            break
    return {
        "format": "tflite",
        "inputs": [tensor(i) for i in subgraph.get("inputs", [])],
        "outputs": [tensor(i) for i in subgraph.get("outputs", [])],
        "metadata": _plain(metadata),
        "associated_files": [{"name": name, "size_bytes": len(content)} for name, content in files.items()],
        "missing_files": sorted({f["name"] for f in recorded if f.get("name") not in files}),
        "labels": labels,
    }


def _plain(node):
    """JSON-ready: byte vectors become their length."""
    if isinstance(node, dict):
        return {key: _plain(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_plain(value) for value in node]
    if isinstance(node, memoryview):
        return {"size_bytes": len(node)}
    return node
