"""TFLite Model Metadata, the schema MediaPipe Tasks, ML Kit and the TFLite Task Library read, without TensorFlow.

The metadata is a FlatBuffer of ``metadata_schema.fbs`` (file identifier
``M001``) stored in one of the model's buffers and named ``TFLITE_METADATA``
in the model's ``metadata`` list. Files it mentions (``labels.txt``,
``vocab.txt``) are packed as an uncompressed zip archive appended to the
model flatbuffer; TFLite ignores the trailing bytes and zip readers find the
archive from its end.

:data:`METADATA_SCHEMA` lists the schema's tables in declaration order (schema
version 1.5.0), read and written with :mod:`hubcli.savedmodel.flatbuf`; the
model's own tables are read by :mod:`hubcli.savedmodel.tflite_file`.
:func:`describe_metadata` is what ``hubcli inspect FILE.tflite`` adds to the
tensors: the metadata, the packed files, the labels.

Example:
    >>> data = Path("flowers.tflite").read_bytes()  # doctest: +SKIP
    >>> read_metadata(data)["name"], sorted(associated_files(data))  # doctest: +SKIP
    ('flowers', ['labels.txt'])
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from hubcli.errors import InvalidModuleError
from hubcli.savedmodel.flatbuf import Field, FlatBufferError, Schema, decode
from hubcli.savedmodel.tflite_file import metadata_buffer

METADATA_NAME = "TFLITE_METADATA"
METADATA_IDENTIFIER = b"M001"

_ASSOCIATED_FILE = [
    Field("name", "string"),
    Field("description", "string"),
    Field("type", "byte", enum="AssociatedFileType"),
    Field("locale", "string"),
    Field("version", "string"),
]

METADATA_SCHEMA = Schema(
    tables={
        "AssociatedFile": _ASSOCIATED_FILE,
        "FeatureProperties": [],
        "ImageSize": [Field("width", "uint"), Field("height", "uint")],
        "ImageProperties": [Field("color_space", "byte", enum="ColorSpaceType"), Field("default_size", "table", "ImageSize")],
        "BoundingBoxProperties": [
            Field("index", "[uint]"),
            Field("type", "byte", enum="BoundingBoxType"),
            Field("coordinate_type", "byte", enum="CoordinateType"),
        ],
        "AudioProperties": [Field("sample_rate", "uint"), Field("channels", "uint")],
        "ValueRange": [Field("min", "int"), Field("max", "int")],
        "Content": [Field("content_properties", "union", "ContentProperties"), Field("range", "table", "ValueRange")],
        "NormalizationOptions": [Field("mean", "[float]"), Field("std", "[float]")],
        "ScoreCalibrationOptions": [
            Field("score_transformation", "byte", enum="ScoreTransformationType"),
            Field("default_score", "float"),
        ],
        "ScoreThresholdingOptions": [Field("global_score_threshold", "float")],
        "BertTokenizerOptions": [Field("vocab_file", "[table]", "AssociatedFile")],
        "SentencePieceTokenizerOptions": [
            Field("sentencePiece_model", "[table]", "AssociatedFile"),
            Field("vocab_file", "[table]", "AssociatedFile"),
        ],
        "RegexTokenizerOptions": [Field("delim_regex_pattern", "string"), Field("vocab_file", "[table]", "AssociatedFile")],
        "ProcessUnit": [Field("options", "union", "ProcessUnitOptions")],
        "Stats": [Field("max", "[float]"), Field("min", "[float]")],
        "TensorGroup": [Field("name", "string"), Field("tensor_names", "[string]")],
        "TensorMetadata": [
            Field("name", "string"),
            Field("description", "string"),
            Field("dimension_names", "[string]"),
            Field("content", "table", "Content"),
            Field("process_units", "[table]", "ProcessUnit"),
            Field("stats", "table", "Stats"),
            Field("associated_files", "[table]", "AssociatedFile"),
        ],
        "CustomMetadata": [Field("name", "string"), Field("data", "[ubyte]")],
        "SubGraphMetadata": [
            Field("name", "string"),
            Field("description", "string"),
            Field("input_tensor_metadata", "[table]", "TensorMetadata"),
            Field("output_tensor_metadata", "[table]", "TensorMetadata"),
            Field("associated_files", "[table]", "AssociatedFile"),
            Field("input_process_units", "[table]", "ProcessUnit"),
            Field("output_process_units", "[table]", "ProcessUnit"),
            Field("input_tensor_groups", "[table]", "TensorGroup"),
            Field("output_tensor_groups", "[table]", "TensorGroup"),
            Field("custom_metadata", "[table]", "CustomMetadata"),
        ],
        "ModelMetadata": [
            Field("name", "string"),
            Field("description", "string"),
            Field("version", "string"),
            Field("subgraph_metadata", "[table]", "SubGraphMetadata"),
            Field("author", "string"),
            Field("license", "string"),
            Field("associated_files", "[table]", "AssociatedFile"),
            Field("min_parser_version", "string"),
        ],
    },
    unions={
        "ContentProperties": ("FeatureProperties", "ImageProperties", "BoundingBoxProperties", "AudioProperties"),
        "ProcessUnitOptions": (
            "NormalizationOptions",
            "ScoreCalibrationOptions",
            "ScoreThresholdingOptions",
            "BertTokenizerOptions",
            "SentencePieceTokenizerOptions",
            "RegexTokenizerOptions",
        ),
    },
    enums={
        "AssociatedFileType": (
            "UNKNOWN",
            "DESCRIPTIONS",
            "TENSOR_AXIS_LABELS",
            "TENSOR_VALUE_LABELS",
            "TENSOR_AXIS_SCORE_CALIBRATION",
            "VOCABULARY",
            "SCANN_INDEX_FILE",
        ),
        "ColorSpaceType": ("UNKNOWN", "RGB", "GRAYSCALE"),
        "BoundingBoxType": ("UNKNOWN", "BOUNDARIES", "UPPER_LEFT", "CENTER"),
        "CoordinateType": ("RATIO", "PIXEL"),
        "ScoreTransformationType": ("IDENTITY", "LOG", "INVERSE_LOGISTIC"),
    },
)

def read_metadata(data) -> dict | None:
    """The model's ModelMetadata as a dict (``flatc --json`` form), or None when it has none.

    Raises InvalidModuleError when the model or its metadata is damaged.

    Example:
        >>> read_metadata(Path("model.tflite").read_bytes())["subgraph_metadata"][0]["output_tensor_metadata"][0]["name"]  # doctest: +SKIP
        'probability'
    """
    raw = metadata_buffer(data, METADATA_NAME)
    if raw is None:
        return None
    try:
        return decode(METADATA_SCHEMA, "ModelMetadata", raw, identifier=METADATA_IDENTIFIER)
    except FlatBufferError as err:
        raise InvalidModuleError(f"its {METADATA_NAME} entry is not readable TFLite Model Metadata: {err}") from None


def associated_files(data) -> dict[str, bytes]:
    """Name -> content of the files zipped onto the end of a model in memory (empty when there are none)."""
    stream = io.BytesIO(bytes(data))
    return _packed_files(stream) if zipfile.is_zipfile(stream) else {}


def recorded_files(metadata: dict) -> list[dict]:
    """Every AssociatedFile the metadata names, wherever it is attached (model, subgraph, tensor, process unit)."""
    found: list[dict] = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("associated_files", "vocab_file", "sentencePiece_model"):
                    found.extend(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(metadata)
    return found


def describe_metadata(path: str | Path) -> dict:
    """The metadata of the ``.tflite`` file at ``path`` as ``inspect --json`` shows it.

    ``model_metadata`` is None for a model without TFLite Model Metadata;
    ``missing_files`` lists files the metadata names that are not packed in the
    file (clients fail on those); ``labels`` are those of the first
    ``TENSOR_AXIS_LABELS`` file, or None.
    """
    import mmap

    path = Path(path)
    with path.open("rb") as source, mmap.mmap(source.fileno(), 0, access=mmap.ACCESS_READ) as data:
        metadata = read_metadata(data)
    files: dict[str, bytes] = {}
    if zipfile.is_zipfile(path):
        files = _packed_files(path)
    recorded = recorded_files(metadata) if metadata else []
    label_files = [item["name"] for item in recorded if item.get("type") == "TENSOR_AXIS_LABELS" and item.get("name") in files]
    labels = files[label_files[0]].decode("utf-8", errors="replace").splitlines() if label_files else None
    return {
        "model_metadata": _plain(metadata),
        "associated_files": [{"name": name, "size_bytes": len(content)} for name, content in files.items()],
        "missing_files": sorted({item["name"] for item in recorded if item.get("name") not in files}),
        "labels": labels,
    }


def _packed_files(source) -> dict[str, bytes]:
    try:
        with zipfile.ZipFile(source) as archive:
            return {info.filename: archive.read(info) for info in archive.infolist() if not info.is_dir()}
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise InvalidModuleError(f"the files packed after the model are not a readable zip archive: {err}") from None


def _plain(node):
    """JSON-ready: byte vectors become their length."""
    if isinstance(node, dict):
        return {key: _plain(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_plain(value) for value in node]
    if isinstance(node, memoryview):
        return {"size_bytes": len(node)}
    return node
