"""Standard TFLite Model Metadata: the FlatBuffer codec, the TF-free reader and the writer on a real model."""

from __future__ import annotations

import dataclasses
import io
import subprocess
import sys
import zipfile

import pytest

from hubcli.errors import ExportError
from hubcli.export.tflite_metadata import (
    BERT_INPUTS,
    ModelDescription,
    image_classifier_metadata,
    populate,
    signature_input_order,
    text_classifier_metadata,
)
from hubcli.savedmodel.flatbuf import FlatBufferError, decode, encode
from hubcli.savedmodel.tflite_file import read_tflite_bytes
from hubcli.savedmodel.tflite_metadata import METADATA_IDENTIFIER, METADATA_SCHEMA, associated_files, describe_metadata, read_metadata

LABELS = ["blue_bars", "green_discs", "red_squares"]


ABOUT = ModelDescription("flowers", "A test classifier.", "7", "hubcli", "Apache-2.0")


def _image_metadata(labels=LABELS, image_size=(32, 24), **about):
    return image_classifier_metadata(dataclasses.replace(ABOUT, **about), labels=labels, image_size=image_size)


def test_metadata_round_trips_through_the_schema():
    for metadata in (_image_metadata(), text_classifier_metadata(ABOUT, labels=LABELS)):
        data = encode(METADATA_SCHEMA, "ModelMetadata", metadata, identifier=METADATA_IDENTIFIER)
        assert data[4:8] == b"M001"
        assert decode(METADATA_SCHEMA, "ModelMetadata", data, identifier=METADATA_IDENTIFIER) == metadata


def test_image_metadata_says_how_to_feed_the_model():
    subgraph = _image_metadata()["subgraph_metadata"][0]
    (image,) = subgraph["input_tensor_metadata"]
    assert image["content"]["content_properties"] == {"color_space": "RGB", "default_size": {"width": 24, "height": 32}}
    # The model takes [0, 1]; clients hold 0-255 pixels: (x - 0) / 255.
    assert image["process_units"] == [{"options_type": "NormalizationOptions", "options": {"mean": [0.0], "std": [255.0]}}]
    (output,) = subgraph["output_tensor_metadata"]
    assert output["associated_files"][0]["type"] == "TENSOR_AXIS_LABELS" and output["associated_files"][0]["name"] == "labels.txt"


def test_text_metadata_carries_the_tokenizer_in_model_input_order():
    order = ["ids", "segment_ids", "mask"]
    metadata = text_classifier_metadata(ABOUT, labels=LABELS, input_order=order)
    subgraph = metadata["subgraph_metadata"][0]
    assert [t["name"] for t in subgraph["input_tensor_metadata"]] == order
    (tokenizer,) = subgraph["input_process_units"]
    assert tokenizer["options_type"] == "BertTokenizerOptions"
    assert tokenizer["options"]["vocab_file"] == [{"name": "vocab.txt", "description": "WordPiece vocabulary of the encoder.", "type": "VOCABULARY"}]


@pytest.mark.parametrize(
    "overrides, words",
    [({"labels": []}, "no labels"), ({"image_size": None}, "image size"), ({"licence": ""}, "licence"), ({"version": ""}, "version")],
)
def test_a_run_that_cannot_carry_metadata_says_what_is_missing(overrides, words):
    with pytest.raises(ExportError, match=words):
        _image_metadata(**overrides)


def test_text_metadata_refuses_inputs_that_are_not_bert_style():
    with pytest.raises(ExportError, match="ids, mask, segment_ids"):
        text_classifier_metadata(ABOUT, labels=LABELS, input_order=["text"])


def test_unknown_fields_are_refused_when_writing():
    with pytest.raises(ValueError, match="no field colour"):
        encode(METADATA_SCHEMA, "ModelMetadata", {"name": "x", "colour": "red"})


@pytest.mark.slow
def test_a_missing_packed_file_is_reported(tiny_tflite, tmp_path):
    model = populate(tiny_tflite, _image_metadata(), _labels_file())
    with zipfile.ZipFile(io.BytesIO(model)) as archive:
        packed_from = archive.infolist()[0].header_offset
    # The same model and metadata, without the files packed after it.
    (tmp_path / "bare.tflite").write_bytes(model[:packed_from])
    summary = describe_metadata(tmp_path / "bare.tflite")
    assert summary["missing_files"] == ["labels.txt"] and summary["labels"] is None


def test_damaged_metadata_is_one_error_never_a_crash():
    data = encode(METADATA_SCHEMA, "ModelMetadata", _image_metadata(), identifier=METADATA_IDENTIFIER)
    with pytest.raises(FlatBufferError, match="identifier"):
        decode(METADATA_SCHEMA, "ModelMetadata", data, identifier=b"TFL3")
    outcomes = set()
    for cut in range(0, len(data), 7):
        damaged = bytearray(data[:cut]) + bytes(len(data) - cut)  # truncated, zero-filled
        flipped = bytearray(data)
        flipped[cut] ^= 0xFF
        for candidate in (bytes(damaged), bytes(flipped)):
            try:
                decode(METADATA_SCHEMA, "ModelMetadata", candidate)
                outcomes.add("decoded")
            except FlatBufferError:
                outcomes.add("refused")
    assert "refused" in outcomes, "corruption must be detected, not decoded into garbage every time"


def test_reader_does_not_import_tensorflow():
    code = (
        "import sys; import hubcli.savedmodel.tflite_metadata, hubcli.savedmodel.flatbuf; "
        "sys.exit('tensorflow' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# -- the writer on a real converted model ----------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_tflite():
    """A real three-class TFLite image model (float [N, 32, 24, 3] -> softmax), converted as exports are."""
    import keras

    from hubcli.export.tflite import convert_keras_model

    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 24, 3), name="images")
    outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(inputs))
    flatbuffer, _ = convert_keras_model(keras.Model(inputs, outputs))
    return flatbuffer


def _labels_file():
    return {"labels.txt": ("\n".join(LABELS) + "\n").encode()}


@pytest.mark.slow
def test_populated_model_reads_back_with_packed_labels(tiny_tflite, tmp_path):
    metadata = _image_metadata()
    model = populate(tiny_tflite, metadata, _labels_file())

    assert read_metadata(model) == metadata
    (tmp_path / "model.tflite").write_bytes(model)
    summary = describe_metadata(tmp_path / "model.tflite")
    assert summary["model_metadata"] == metadata and summary["labels"] == LABELS and summary["missing_files"] == []
    assert summary["associated_files"] == [{"name": "labels.txt", "size_bytes": len(_labels_file()["labels.txt"])}]
    (source,) = read_tflite_bytes(model).inputs
    assert source.shape_signature == [-1, 32, 24, 3] and source.dtype == "float32", "the model itself is unchanged"
    with zipfile.ZipFile(io.BytesIO(model)) as archive:
        (info,) = archive.infolist()
        # Clients map associated files in place: they must be stored, not deflated.
        assert info.compress_type == zipfile.ZIP_STORED and info.date_time == (1980, 1, 1, 0, 0, 0)
    assert read_metadata(tiny_tflite) is None and associated_files(tiny_tflite) == {}


@pytest.mark.slow
def test_populating_is_deterministic_and_replaces_earlier_metadata(tiny_tflite):
    first = populate(tiny_tflite, _image_metadata(version="1"), _labels_file())
    assert populate(tiny_tflite, _image_metadata(version="1"), _labels_file()) == first

    again = populate(first, _image_metadata(version="2"), _labels_file())

    assert read_metadata(again)["version"] == "2"
    assert list(associated_files(again)) == ["labels.txt"]
    assert len(again) == len(first), "re-populating must replace the metadata and files, not stack them"


@pytest.mark.slow
def test_populated_model_still_runs_in_the_interpreter(tiny_tflite):
    import numpy as np

    from hubcli.export.tflite import run_tflite

    images = np.random.default_rng(0).uniform(0, 1, (4, 32, 24, 3)).astype(np.float32)
    populated = populate(tiny_tflite, _image_metadata(), _labels_file())

    np.testing.assert_allclose(run_tflite(populated, images), run_tflite(tiny_tflite, images), atol=1e-6)


@pytest.mark.slow
def test_files_must_match_what_the_metadata_names(tiny_tflite):
    with pytest.raises(ExportError, match="missing labels.txt"):
        populate(tiny_tflite, _image_metadata(), {})
    with pytest.raises(ExportError, match="not named vocab.txt"):
        populate(tiny_tflite, _image_metadata(), {**_labels_file(), "vocab.txt": b"[PAD]\n"})


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated")
def test_signature_input_order_follows_the_model_tensors(tmp_path):
    import keras
    import tensorflow as tf

    inputs = {name: keras.Input((8,), batch_size=1, dtype="int32", name=name) for name in BERT_INPUTS}
    total = keras.layers.Add()([keras.ops.cast(tensor, "float32") for tensor in inputs.values()])
    model = keras.Model(list(inputs.values()), keras.layers.Dense(2, activation="softmax")(total))
    model.export(str(tmp_path / "saved"), format="tf_saved_model", verbose=False)
    flatbuffer = tf.lite.TFLiteConverter.from_saved_model(str(tmp_path / "saved")).convert()

    order = signature_input_order(flatbuffer)
    assert sorted(order) == sorted(BERT_INPUTS)
    details = tf.lite.Interpreter(model_content=flatbuffer).get_input_details()
    assert [detail["name"] for detail in details] == [f"serving_default_{name}:0" for name in order]
