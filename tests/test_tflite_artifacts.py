"""TFLite artifacts: read without TensorFlow, pulled and cached like modules, inspected."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from hubcli.errors import InvalidModuleError
from hubcli.savedmodel.tflite_file import read_tflite
from tests.helpers.cli_run import error_line, run_hubcli
from tests.helpers.tiny_tflite import DATA

# The local hub server and module-archive fixtures.
pytest_plugins = ["tests.helpers.hubserver"]

TINY, TINY_INT8 = DATA / "tiny.tflite", DATA / "tiny_int8.tflite"
LITE = "https://tfhub.dev/google/lite-model/tiny/1"


def _sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --- reading the flatbuffer --------------------------------------------------------------------------------------


def test_reads_inputs_outputs_signatures_and_metadata_of_a_float_model():
    info = read_tflite(TINY)
    assert [(t.name, t.dtype, t.shape, t.shape_signature) for t in info.inputs] == [("serving_default_image:0", "float32", [1, 4, 4, 3], [-1, 4, 4, 3])]
    assert [(t.name, t.dtype, t.shape_signature) for t in info.outputs] == [("StatefulPartitionedCall:0", "float32", [-1, 5])]
    assert [(s.key, s.inputs, s.outputs) for s in info.signatures] == [
        ("serving_default", {"image": "serving_default_image:0"}, {"scores": "StatefulPartitionedCall:0"})
    ]
    assert "min_runtime_version" in info.metadata and info.subgraphs == 1 and info.version == 3


def test_reads_quantisation_of_an_int8_model():
    info = read_tflite(TINY_INT8)
    (image,), (scores,) = info.inputs, info.outputs
    assert (image.dtype, image.zero_point, scores.dtype, scores.scale) == ("int8", [-128], "int8", [0.00390625])
    assert image.scale == [pytest.approx(0.0039183376)]


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[: len(data) // 3],
        lambda data: b"\xff\xff\xff\x7f" + data[4:],  # the root table points past the end
        lambda data: data[:8] + bytes(len(data) - 8),
        lambda data: b"\x00\x00\x00\x00TFL3",
    ],
    ids=["truncated", "root-out-of-range", "zeroed", "header-only"],
)
def test_a_damaged_flatbuffer_is_one_clear_error(tmp_path, damage):
    damaged = tmp_path / "damaged.tflite"
    damaged.write_bytes(damage(TINY.read_bytes()))
    with pytest.raises(InvalidModuleError, match="damaged.tflite is not a .*TFLite model"):
        read_tflite(damaged)


@pytest.mark.slow
@pytest.mark.parametrize("quantized", [False, True], ids=["float", "int8"])
def test_the_reader_agrees_with_the_tflite_interpreter(tmp_path, quantized):
    import numpy as np
    import tensorflow as tf

    from tests.helpers.tiny_tflite import convert

    model = tmp_path / "fresh.tflite"
    model.write_bytes(convert(quantized))
    interpreter = tf.lite.Interpreter(model_path=str(model))
    info = read_tflite(model)
    for ours, theirs in ((info.inputs, interpreter.get_input_details()), (info.outputs, interpreter.get_output_details())):
        assert [t.name for t in ours] == [d["name"] for d in theirs]
        assert [t.dtype for t in ours] == [np.dtype(d["dtype"]).name for d in theirs]
        assert [t.shape_signature for t in ours] == [d["shape_signature"].tolist() for d in theirs]
        assert [t.scale for t in ours] == [pytest.approx(d["quantization_parameters"]["scales"].tolist()) for d in theirs]
        assert [t.zero_point for t in ours] == [d["quantization_parameters"]["zero_points"].tolist() for d in theirs]
    assert {s.key: sorted(s.inputs) for s in info.signatures} == {k: sorted(v["inputs"]) for k, v in interpreter.get_signature_list().items()}


# --- pulling and caching ------------------------------------------------------------------------------------------


def test_pull_tflite_caches_and_verifies_the_file_like_a_module(hub):
    hub.add_tfhub_tflite("google/lite-model/tiny/1", TINY)
    done = run_hubcli("pull", LITE, "--tflite", "--json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    path = Path(document["path"])
    assert path.name == "google_lite-model_tiny_1.tflite" and path.read_bytes() == TINY.read_bytes()
    assert document["sha256"] == _sha(TINY) and document["from_cache"] is False
    first = hub.requests_to("/tfhub/")[0]
    assert first.query == {"lite-format": "tflite"}  # not tf-hub-format=compressed
    # Its own cache entry, apart from the SavedModel's, named by the handle with its query.
    assert path.parent.name == hashlib.sha1(f"{LITE}?lite-format=tflite".encode()).hexdigest()
    assert run_hubcli("cache", "verify").returncode == 0
    again = json.loads(run_hubcli("pull", f"{LITE}?lite-format=tflite", "--json", "--offline").stdout)
    assert again["path"] == str(path) and again["from_cache"] is True


def test_pull_tflite_when_the_server_sends_a_savedmodel_is_refused(hub, fake_archive):
    url = hub.put_page("/models/enc/1", 200, fake_archive.read_bytes(), {"Content-Type": "application/gzip"})
    done = run_hubcli("pull", url, "--tflite")
    assert done.returncode == 7 and "a TFLite model was asked for" in error_line(done)


def test_pull_tflite_refuses_handles_that_have_no_tflite_form(hub):
    done = run_hubcli("pull", "google/mobilenet-v2/tensorflow2/100-224-feature-vector/2", "--tflite")
    assert done.returncode == 2 and "--tflite needs a tfhub.dev or http(s) handle" in error_line(done)


def test_kaggle_tflite_archive_is_a_tflite_entry(hub):
    archive = hub.cache_dir.parent / "lite.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("1.tflite")
        info.size = TINY.stat().st_size
        tar.addfile(info, io.BytesIO(TINY.read_bytes()))
    hub.add_kaggle_module("acme/tiny/tflite/default", 1, archive)
    done = run_hubcli("pull", "acme/tiny/tfLite/default/1", "--json")
    assert done.returncode == 0, done.stderr
    assert Path(json.loads(done.stdout)["path"]).name == "1.tflite"


def test_a_local_tflite_file_is_pulled_into_the_cache_and_inspected_in_place(hub, tmp_path):
    model = tmp_path / "mine.tflite"
    shutil.copy(TINY_INT8, model)
    pulled = json.loads(run_hubcli("pull", model, "--json").stdout)
    assert Path(pulled["path"]).name == "mine.tflite" and pulled["sha256"] == _sha(model)
    shown = run_hubcli("inspect", model, "--json")
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert document["schema"] == "hubcli.inspect/1" and document["format"] == "tflite" and document["path"] == str(model)
    assert document["inputs"][0]["dtype"] == "int8" and document["signatures"][0]["key"] == "serving_default"


def test_inspect_a_pulled_tflite_handle_as_a_table(hub):
    hub.add_tfhub_tflite("google/lite-model/tiny/1", TINY)
    done = run_hubcli("inspect", LITE, "--tflite")
    assert done.returncode == 0, done.stderr
    for text in ("TFLite", "serving_default_image:0", "[None, 4, 4, 3]", "scores", "min_runtime_version"):
        assert text in done.stdout


def test_a_damaged_tflite_file_is_exit_7_for_pull_and_inspect(hub, tmp_path):
    damaged = tmp_path / "damaged.tflite"
    damaged.write_bytes(TINY.read_bytes()[:900])
    for args in (["pull", damaged], ["inspect", damaged]):
        done = run_hubcli(*args)
        assert done.returncode == 7 and error_line(done).startswith(f"error: {damaged} is not a readable TFLite model")
    assert not any(hub.cache_dir.glob("*/*.tflite"))
