"""`hubcli export`: every format and quantisation mode on a real run, checked against the run's model."""

from __future__ import annotations

import json
import shutil
import zipfile

import numpy as np
import pytest

from hubcli.errors import ExportError, NotFoundError, UsageError
from tests.helpers.cli_run import error_line, run_hubcli

pytestmark = pytest.mark.slow


def _copy_run(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("export"))
    return copy


def test_savedmodel_export_keeps_signatures_and_agrees(image_run, tmp_path):
    import tensorflow as tf

    from hubcli.export.artifacts import export_run

    target = tmp_path / "served"
    result = export_run(image_run, "savedmodel", output=target)
    assert result.path == target and (target / "saved_model.pb").is_file()
    assert set(tf.saved_model.load(str(target)).signatures) >= {"serving_default", "serve_bytes"}
    float_check, bytes_check = result.checks["serving_default"], result.checks["serve_bytes"]
    assert float_check.samples >= 20 and float_check.top1_agreement == 1.0 and float_check.max_abs_diff < 1e-6
    # PNG bytes carry the samples rounded to 8 bits: tiny differences, the same answers.
    assert bytes_check.top1_agreement >= 0.99 and bytes_check.max_abs_diff < 0.05
    document = result.to_json()
    assert document["agreement"]["top1_agreement"] >= 0.99 and set(document["checks"]) == {"serving_default", "serve_bytes"}
    assert not list(tmp_path.glob(".served*")), "no staging directory may be left behind"


def test_keras_export_loads_with_only_hubcli_layer(image_run, tmp_path):
    import keras

    import hubcli.train.layer  # noqa: F401 - the one registration load_model may rely on
    from hubcli.export.artifacts import export_run

    result = export_run(image_run, "keras", output=tmp_path / "model.keras")
    with zipfile.ZipFile(result.path) as archive:
        config = archive.read("config.json").decode()
    assert '"hubcli>HubLayer"' in config
    model = keras.models.load_model(result.path)  # no custom_objects
    samples = np.load(image_run / "representative.npz")["inputs"][:8]
    assert model(samples).shape == (8, 3)
    assert result.checks["keras"].top1_agreement == 1.0 and result.checks["keras"].max_abs_diff < 1e-5


def test_keras_export_refuses_foreign_custom_objects(image_run, tmp_path):
    import keras

    from hubcli.export.artifacts import export_run

    @keras.saving.register_keras_serializable(package="acme")
    class Doubling(keras.layers.Layer):
        def call(self, inputs):
            return inputs * 2.0

    run = _copy_run(image_run, tmp_path)
    inputs = keras.Input((32, 32, 3))
    outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(Doubling()(inputs)))
    keras.Model(inputs, outputs).save(run / "model.keras")
    with pytest.raises(ExportError, match="acme>Doubling"):
        export_run(run, "keras", output=tmp_path / "out.keras")
    assert not (tmp_path / "out.keras").exists()


# Thresholds: float conversions must match almost exactly; int8 (8-bit activations) may move
# probabilities by a few hundredths but must keep the answers.
TFLITE_LIMITS = {"none": 1e-5, "dynamic": 1e-2, "float16": 1e-2, "int8": 0.08}


@pytest.mark.parametrize("quantize", list(TFLITE_LIMITS))
def test_tflite_export_every_quantisation(image_run, tmp_path, quantize):
    import tensorflow as tf

    from hubcli.export.artifacts import export_run
    from hubcli.savedmodel.tflite_metadata import describe_metadata

    labels = (image_run / "labels.txt").read_text().split()
    result = export_run(image_run, "tflite", output=tmp_path / f"m_{quantize}.tflite", quantize=quantize)
    check = result.checks["tflite"]
    assert check.top1_agreement >= 0.99 and check.max_abs_diff < TFLITE_LIMITS[quantize]
    flatbuffer = result.path.read_bytes()
    described = describe_metadata(result.path)
    assert described["labels"] == labels and described["model_metadata"]["subgraph_metadata"][0]["input_tensor_metadata"][0]["name"] == "image"
    assert (tmp_path / "labels.txt").read_text().split() == labels
    interpreter = tf.lite.Interpreter(model_content=flatbuffer)
    assert interpreter.get_input_details()[0]["dtype"] == np.float32  # same interface for every mode
    tensor_types = {detail["dtype"] for detail in interpreter.get_tensor_details()}
    if quantize == "int8":
        assert result.details["tflite"]["full_integer"] is True
        assert np.int8 in tensor_types
    if quantize == "float16":
        assert np.float16 in tensor_types
    if quantize == "none":
        assert np.int8 not in tensor_types and np.float16 not in tensor_types


def test_disagreeing_export_is_rejected_not_left_as_good(image_run, tmp_path):
    """A model.keras that no longer matches the run's serving model must fail the check."""
    import keras

    import hubcli.train.layer  # noqa: F401
    from hubcli.export.artifacts import export_run

    run = _copy_run(image_run, tmp_path)
    model = keras.models.load_model(run / "model.keras")
    head = model.layers[-1]
    kernel, bias = head.get_weights()
    head.set_weights([np.roll(kernel, 1, axis=1), np.roll(bias, 1)])  # every class answer moves
    model.save(run / "model.keras")

    target = tmp_path / "out" / "model.tflite"
    with pytest.raises(ExportError, match="agrees with the original on only"):
        export_run(run, "tflite", output=target)
    assert not target.exists()
    assert (tmp_path / "out" / "model.tflite.rejected").is_file()
    assert not (tmp_path / "out" / "labels.txt").exists()


def test_library_errors(image_run, tmp_path):
    from hubcli.export.artifacts import export_run

    with pytest.raises(NotFoundError):
        export_run(tmp_path / "missing", "savedmodel")
    with pytest.raises(UsageError, match="tflite only"):
        export_run(image_run, "keras", quantize="int8")
    with pytest.raises(UsageError, match="already exists"):
        (tmp_path / "taken.keras").write_text("x")
        export_run(image_run, "keras", output=tmp_path / "taken.keras")
    assert (tmp_path / "taken.keras").read_text() == "x"


@pytest.mark.parametrize("format", ["savedmodel", "keras"])
def test_a_full_disk_is_one_clear_error_and_leaves_nothing(image_run, tmp_path, format):
    from hubcli.export.artifacts import export_run
    from tests.helpers.disk_full import file_size_limit

    target = tmp_path / "out" / f"model.{format}"
    with file_size_limit(1024), pytest.raises(ExportError, match=f"cannot write {target}: File too large"):
        export_run(image_run, format, output=target)
    assert list((tmp_path / "out").iterdir()) == []


def test_cli_bad_inputs(image_run, tmp_path):
    missing = run_hubcli("export", tmp_path / "nope", "--format", "tflite")
    assert missing.returncode == 3 and "no run or model" in error_line(missing)

    run = _copy_run(image_run, tmp_path)
    meta = json.loads((run / "run.json").read_text())
    meta["representative"] = None
    (run / "run.json").write_text(json.dumps(meta))
    (run / "representative.npz").unlink()
    no_data = run_hubcli("export", run, "--format", "tflite", "--quantize", "int8")
    assert no_data.returncode == 9 and "representative" in error_line(no_data)
    assert not (run / "export").exists()

    wrong = run_hubcli("export", image_run, "--format", "keras", "--quantize", "dynamic")
    assert wrong.returncode == 2 and "tflite only" in error_line(wrong)
    # Bad options are the only line: no "exporting ..." status before the error.
    assert len(wrong.stderr.splitlines()) == 1, wrong.stderr


def test_cli_json_document(image_run, tmp_path):
    done = run_hubcli("export", image_run, "--format", "tflite", "--quantize", "dynamic", "-o", tmp_path / "m.tflite", "--json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["schema"] == "hubcli.export/1" and document["format"] == "tflite" and document["quantize"] == "dynamic"
    assert document["agreement"]["top1_agreement"] >= 0.99 and document["agreement"]["samples"] >= 20
    assert document["labels_path"].endswith("labels.txt") and document["size_bytes"] == (tmp_path / "m.tflite").stat().st_size
    assert document["model_card"] == str(tmp_path / "MODEL_CARD.md") and (tmp_path / "MODEL_CARD.md").is_file()


def test_text_run_exports_savedmodel_and_keras(text_run, tmp_path):
    from hubcli.export.artifacts import export_run

    served = export_run(text_run, "savedmodel", output=tmp_path / "served")
    assert set(served.checks) == {"serving_default"} and served.agreement.top1_agreement == 1.0
    kept = export_run(text_run, "keras", output=tmp_path / "model.keras")
    assert kept.agreement.top1_agreement == 1.0 and kept.agreement.max_abs_diff < 1e-5
