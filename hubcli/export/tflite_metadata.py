"""Write standard TFLite Model Metadata, so MediaPipe Tasks, ML Kit and the TFLite Task Library load the model.

Clients read ``metadata_schema.fbs`` metadata (see
:mod:`hubcli.savedmodel.tflite_metadata`, which also reads it back) to know how
to feed and read a model:

- image classifiers: the input is an RGB image, and ``NormalizationOptions``
  map the client's 0-255 pixel values to the model's input, ``(x - mean) /
  std``; hubcli's models take [0, 1], so mean 0 and std 255. Without them
  MediaPipe refuses a float32 input outright.
- text classifiers on a BERT-style encoder: three int32 inputs named ``ids``,
  ``mask`` and ``segment_ids`` and a ``BertTokenizerOptions`` input process
  unit whose ``vocab.txt`` lets the client do the WordPiece tokenization.
- both: the output's ``TENSOR_AXIS_LABELS`` file ``labels.txt`` names each
  probability.

:func:`populate` stores the metadata under ``TFLITE_METADATA`` and appends the
files it names as an uncompressed zip archive (fixed timestamps, so the same
model and metadata always give the same bytes).

Example:
    >>> about = ModelDescription("flowers", "Five kinds of flowers.", "1", "hubcli", "Apache-2.0")
    >>> metadata = image_classifier_metadata(about, labels=["daisy", "rose"], image_size=(224, 224))
    >>> model = populate(flatbuffer, metadata, {"labels.txt": b"daisy\\nrose\\n"})  # doctest: +SKIP
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hubcli.errors import ExportError
from hubcli.savedmodel.flatbuf import encode
from hubcli.savedmodel.tflite_file import read_tflite_bytes
from hubcli.savedmodel.tflite_metadata import METADATA_IDENTIFIER, METADATA_NAME, METADATA_SCHEMA, recorded_files

LABELS_FILE = "labels.txt"
VOCAB_FILE = "vocab.txt"
#: Input names MediaPipe's BERT preprocessor looks up in the metadata.
BERT_INPUTS = ("ids", "mask", "segment_ids")
#: The oldest parser that knows every field used: 1.1.0 added BertTokenizerOptions and input_process_units.
_IMAGE_PARSER_VERSION = "1.0.0"
_TEXT_PARSER_VERSION = "1.1.0"
#: Zip entries carry this timestamp (zip's epoch), not the export time.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def _labels_output(num_classes: int) -> dict:
    return {
        "name": "probability",
        "description": f"Probabilities of the {num_classes} classes named in {LABELS_FILE}, in that order.",
        "content": {"content_properties_type": "FeatureProperties", "content_properties": {}},
        "stats": {"max": [1.0], "min": [0.0]},
        "associated_files": [
            {"name": LABELS_FILE, "description": "Class names, one per line, in output order.", "type": "TENSOR_AXIS_LABELS"}
        ],
    }


@dataclass(frozen=True)
class ModelDescription:
    """The human-readable part of the metadata: what the model is, who made it, under what licence."""

    name: str
    description: str
    version: str
    author: str
    licence: str

    def fields(self) -> dict:
        missing = [label for label, value in (("name", self.name), ("version", self.version), ("licence", self.licence)) if not value]
        if missing:
            raise ExportError(f"cannot write TFLite metadata without the model's {' and '.join(missing)}")
        return {"name": self.name, "description": self.description, "version": self.version, "author": self.author, "license": self.licence}


def image_classifier_metadata(model: ModelDescription, *, labels: Sequence[str], image_size: Sequence[int]) -> dict:
    """ModelMetadata for a classifier of float RGB images in [0, 1] returning one probability per label.

    Example:
        >>> about = ModelDescription("pets", "Cats and dogs.", "1", "hubcli", "MIT")
        >>> meta = image_classifier_metadata(about, labels=["cat", "dog"], image_size=(224, 224))
        >>> meta["subgraph_metadata"][0]["input_tensor_metadata"][0]["process_units"][0]["options"]
        {'mean': [0.0], 'std': [255.0]}
    """
    if not labels:
        raise ExportError("cannot write TFLite metadata: the run lists no labels")
    if not image_size or len(image_size) != 2:
        raise ExportError("cannot write TFLite metadata: the run does not record its image size")
    height, width = (int(v) for v in image_size)
    image = {
        "name": "image",
        "description": f"RGB image, {width}x{height} pixels; 0-255 pixel values are scaled to [0, 1] by the normalisation below.",
        "content": {
            "content_properties_type": "ImageProperties",
            "content_properties": {"color_space": "RGB", "default_size": {"width": width, "height": height}},
        },
        "process_units": [{"options_type": "NormalizationOptions", "options": {"mean": [0.0], "std": [255.0]}}],
        "stats": {"max": [1.0], "min": [0.0]},
    }
    subgraph = {
        "name": "image_classifier",
        "description": "Classifies one RGB image.",
        "input_tensor_metadata": [image],
        "output_tensor_metadata": [_labels_output(len(labels))],
    }
    return {**model.fields(), "subgraph_metadata": [subgraph], "min_parser_version": _IMAGE_PARSER_VERSION}


def text_classifier_metadata(model: ModelDescription, *, labels: Sequence[str], input_order: Sequence[str] = BERT_INPUTS) -> dict:
    """ModelMetadata for a BERT-style classifier: ids, mask and segment ids in, probabilities out.

    ``input_order`` lists :data:`BERT_INPUTS` in the order of the model's input tensors.

    Example:
        >>> about = ModelDescription("reviews", "Review sentiment.", "1", "hubcli", "MIT")
        >>> meta = text_classifier_metadata(about, labels=["neg", "pos"])
        >>> [t["name"] for t in meta["subgraph_metadata"][0]["input_tensor_metadata"]]
        ['ids', 'mask', 'segment_ids']
    """
    if not labels:
        raise ExportError("cannot write TFLite metadata: the run lists no labels")
    if sorted(input_order) != sorted(BERT_INPUTS):
        raise ExportError(f"a BERT-style model takes inputs {', '.join(BERT_INPUTS)}; this one takes {', '.join(input_order)}")
    described = {
        "ids": "WordPiece ids of [CLS] sentence [SEP], padded with 0.",
        "mask": "1 for each real token, 0 for padding.",
        "segment_ids": "0 for every token (one sentence).",
    }
    inputs = [
        {"name": key, "description": described[key], "content": {"content_properties_type": "FeatureProperties", "content_properties": {}}}
        for key in input_order
    ]
    tokenizer = {
        "options_type": "BertTokenizerOptions",
        "options": {"vocab_file": [{"name": VOCAB_FILE, "description": "WordPiece vocabulary of the encoder.", "type": "VOCABULARY"}]},
    }
    subgraph = {
        "name": "text_classifier",
        "description": "Classifies one sentence, tokenized by the client with the BERT tokenizer and vocab.txt.",
        "input_tensor_metadata": inputs,
        "output_tensor_metadata": [_labels_output(len(labels))],
        "input_process_units": [tokenizer],
    }
    return {**model.fields(), "subgraph_metadata": [subgraph], "min_parser_version": _TEXT_PARSER_VERSION}


def signature_input_order(flatbuffer: bytes) -> list[str]:
    """The serving signature's input names in the order of the model's input tensors.

    The converter orders inputs its own way (often alphabetically), and clients
    pair tensor metadata with inputs by position.
    """
    info = read_tflite_bytes(flatbuffer)
    if not info.signatures:
        raise ExportError("the TFLite model has no signature naming its inputs")
    by_tensor = {tensor: name for name, tensor in info.signatures[0].inputs.items()}
    return [by_tensor.get(tensor.name, tensor.name) for tensor in info.inputs]


def populate(flatbuffer: bytes, metadata: dict, files: Mapping[str, bytes]) -> bytes:
    """``flatbuffer`` with ``metadata`` as its TFLITE_METADATA entry and ``files`` zipped onto its end.

    The files must be exactly those the metadata names; a model's earlier
    metadata and packed files are replaced. Raises ExportError otherwise.
    """
    named = {item["name"] for item in recorded_files(metadata)}
    if named != set(files):
        missing, extra = sorted(named - set(files)), sorted(set(files) - named)
        detail = "; ".join(part for part in (f"missing {', '.join(missing)}" if missing else "", f"not named {', '.join(extra)}" if extra else "") if part)
        raise ExportError(f"TFLite metadata and its packed files disagree: {detail}")
    model = _with_metadata_buffer(flatbuffer, encode(METADATA_SCHEMA, "ModelMetadata", metadata, identifier=METADATA_IDENTIFIER))
    stream = io.BytesIO(model)
    stream.seek(0, io.SEEK_END)
    # Append mode on a non-zip stream writes a new archive after its bytes; MediaPipe maps
    # the files in place, which only works for stored (uncompressed) entries.
    with zipfile.ZipFile(stream, "a", compression=zipfile.ZIP_STORED) as archive:
        for name in sorted(files):
            archive.writestr(zipfile.ZipInfo(name, date_time=_ZIP_TIME), files[name])
    return stream.getvalue()


def _with_metadata_buffer(flatbuffer: bytes, metadata_bytes: bytes) -> bytes:
    """The model re-serialised with ``metadata_bytes`` in a buffer named TFLITE_METADATA (trailing files dropped)."""
    import numpy as np
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(metadata_bytes, dtype=np.uint8)
    entries = model.metadata or []
    existing = next((entry for entry in entries if entry.name in (METADATA_NAME, METADATA_NAME.encode())), None)
    if existing is not None:
        model.buffers[existing.buffer] = buffer
    else:
        model.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name = METADATA_NAME
        entry.buffer = len(model.buffers) - 1
        model.metadata = [*entries, entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))
