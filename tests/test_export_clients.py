"""Exports that real clients load: MediaPipe Tasks and LiteRT run the .tflite files, onnxruntime the ONNX.

The clients read only the exported file, as an app would; their answers are compared with
``hubcli predict`` on the same photos and sentences.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from hubcli.errors import ExportError, UsageError
from tests.helpers import text_corpus, tflite_clients
from tests.helpers.cli_run import error_line, run_hubcli

pytestmark = pytest.mark.slow

#: Lowest top-1 agreement with `hubcli predict` a client may show (int8 moves activations to 8 bits).
CLIENT_AGREEMENT = {"none": 0.97, "dynamic": 0.97, "float16": 0.97, "int8": 0.95}


@pytest.fixture(scope="module")
def wordpiece_run(tmp_path_factory):
    """A classify-text run on the tiny WordPiece module (in-graph tokenizer, encoder on token ids)."""
    from hubcli.config import Settings
    from hubcli.train.config import TrainConfig
    from hubcli.train.text import classify_text
    from tests.helpers.wordpiece_module import build_wordpiece_module

    root = tmp_path_factory.mktemp("wordpiece_run")
    module = build_wordpiece_module(root / "module")
    data = text_corpus.write_tab_lines(root / "data.txt", text_corpus.corpus(per_class=60))
    settings = Settings.load(cache_dir=root / "cache", offline=True)
    summary = classify_text(data, str(module), settings=settings, config=TrainConfig(epochs=30, learning_rate=0.05), output=root / "run")
    assert summary["accuracy"] >= 0.9
    return root / "run"


def _photos(image_run):
    return sorted(p for p in (image_run.parent / "data").rglob("*") if p.suffix in (".jpg", ".png"))


def _predicted(run, items) -> np.ndarray:
    from hubcli.train.inference import predict

    labels = (run / "labels.txt").read_text().split("\n")[:-1]
    rows = np.zeros((len(items), len(labels)), np.float32)
    for row, prediction in zip(rows, predict(run, items, top_k=len(labels))["predictions"], strict=True):
        for choice in prediction["top"]:
            row[labels.index(choice["label"])] = choice["probability"]
    return rows


@pytest.mark.parametrize("quantize", list(CLIENT_AGREEMENT))
def test_mediapipe_and_litert_load_every_image_variant(image_run, tmp_path, quantize):
    from hubcli.export.artifacts import export_run

    result = export_run(image_run, "tflite", output=tmp_path / "model.tflite", quantize=quantize)
    labels = (image_run / "labels.txt").read_text().split()
    photos = _photos(image_run)

    names, scores = tflite_clients.mediapipe_images(result.path, photos, len(labels))

    assert names == labels, "MediaPipe names the classes from the metadata's labels file"
    agreement = tflite_clients.top1_agreement(scores, _predicted(image_run, photos))
    assert agreement >= CLIENT_AGREEMENT[quantize], f"MediaPipe agrees with hubcli predict on {agreement:.1%}"
    samples = np.load(image_run / "representative.npz")["inputs"]
    litert = tflite_clients.litert_outputs(result.path, samples)
    assert tflite_clients.top1_agreement(litert, _predicted_samples(image_run, samples)) >= 0.99


def _predicted_samples(run, samples):
    from hubcli.train.rundir import open_run
    from hubcli.train.serving import ServingModel

    return ServingModel(open_run(run)).probabilities(samples)


@pytest.mark.parametrize("quantize", list(CLIENT_AGREEMENT))
def test_mediapipe_text_classifier_tokenizes_raw_sentences(wordpiece_run, tmp_path, quantize):
    from hubcli.export.artifacts import export_run
    from hubcli.savedmodel.tflite_metadata import associated_files

    result = export_run(wordpiece_run, "tflite", output=tmp_path / "text.tflite", quantize=quantize)
    assert sorted(associated_files(result.path.read_bytes())) == ["labels.txt", "vocab.txt"]
    assert sorted(result.details["tflite"]["inputs"]) == ["ids", "mask", "segment_ids"]
    # Sentences the run never saw, with punctuation and capitals the device tokenizer must handle.
    sentences = [f"{text.capitalize()}!" for text, _ in text_corpus.corpus(per_class=40, seed=7)]
    labels = (wordpiece_run / "labels.txt").read_text().split()

    names, scores = tflite_clients.mediapipe_texts(result.path, sentences, len(labels))

    assert names == labels
    agreement = tflite_clients.top1_agreement(scores, _predicted(wordpiece_run, sentences))
    assert agreement >= CLIENT_AGREEMENT[quantize], f"MediaPipe agrees with hubcli predict --text on {agreement:.1%}"


def test_run_with_a_bert_style_preprocessor_goes_on_device(tmp_path):
    """TF Hub's two-module BERT layout: the encoder already takes ids; the preprocessor's vocab.txt goes to the client."""
    from hubcli.config import Settings
    from hubcli.export.artifacts import export_run
    from hubcli.train.config import TrainConfig
    from hubcli.train.text import classify_text
    from tests.helpers.text_modules import build_text_encoder
    from tests.helpers.wordpiece_module import SEQ_LENGTH, build_wordpiece_preprocessor

    data = text_corpus.write_tab_lines(tmp_path / "data.txt", text_corpus.corpus(per_class=40))
    run = tmp_path / "run"
    classify_text(
        data,
        str(build_text_encoder(tmp_path / "encoder", seq_length=SEQ_LENGTH)),
        settings=Settings.load(cache_dir=tmp_path / "cache", offline=True),
        config=TrainConfig(epochs=30, learning_rate=0.05),
        output=run,
        preprocessor_handle=str(build_wordpiece_preprocessor(tmp_path / "preprocessor")),
    )
    result = export_run(run, "tflite", output=tmp_path / "out" / "text.tflite")
    assert result.details["tflite"]["seq_length"] == SEQ_LENGTH and result.agreement.top1_agreement == 1.0
    sentences = [text for text, _ in text_corpus.corpus(per_class=20, seed=11)]
    labels = (run / "labels.txt").read_text().split()

    names, scores = tflite_clients.mediapipe_texts(result.path, sentences, len(labels))

    assert names == labels and tflite_clients.top1_agreement(scores, _predicted(run, sentences)) >= 0.97


def test_onnx_export_runs_in_onnxruntime_like_the_run(image_run, tmp_path):
    import onnxruntime

    from hubcli.export.artifacts import export_run

    result = export_run(image_run, "onnx", output=tmp_path / "model.onnx")
    assert result.checks["onnxruntime"].top1_agreement == 1.0 and result.checks["onnxruntime"].max_abs_diff < 1e-4
    assert (tmp_path / "labels.txt").read_text().split() == (image_run / "labels.txt").read_text().split()
    assert "## This export" in (tmp_path / "MODEL_CARD.md").read_text()

    session = onnxruntime.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    (source,) = session.get_inputs()
    assert source.name == "images" and source.type == "tensor(float)" and source.shape[1:] == [32, 32, 3]
    samples = np.load(image_run / "representative.npz")["inputs"][:8]
    (probabilities,) = session.run(["probabilities"], {"images": samples})
    np.testing.assert_allclose(probabilities, _predicted_samples(image_run, samples), atol=1e-4)


def test_onnx_of_a_text_run_is_refused_before_any_work(text_run, tmp_path):
    from hubcli.export.artifacts import export_run

    with pytest.raises(UsageError, match="--format onnx exports image runs"):
        export_run(text_run, "onnx", output=tmp_path / "model.onnx")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def hsv_run(tmp_path_factory):
    """A run on a module whose graph converts RGB to HSV, an op neither TFLite's builtins nor ONNX map."""
    from hubcli.config import Settings
    from hubcli.train.config import TrainConfig
    from hubcli.train.images import retrain_images
    from tests.helpers import synthetic_images
    from tests.helpers.unmappable_module import build_hsv_image_module

    root = tmp_path_factory.mktemp("hsv_run")
    data = synthetic_images.make_image_dataset(root / "data", per_class=6)
    settings = Settings.load(cache_dir=root / "cache", offline=True)
    retrain_images(data, str(build_hsv_image_module(root / "module")), settings=settings, config=TrainConfig(epochs=3), output=root / "run")
    return root / "run"


@pytest.mark.parametrize("format", ["tflite", "onnx"])
def test_an_op_the_converter_cannot_map_is_named_and_nothing_is_written(hsv_run, tmp_path, format):
    target = tmp_path / "out" / f"model.{format}"
    failed = run_hubcli("export", hsv_run, "--format", format, "-o", target)
    assert "RGBToHSV" in error_line(failed, 9)
    assert list((tmp_path / "out").iterdir()) == [], "no model, labels or card at the target"


def test_text_module_that_tokenizes_only_in_its_graph_is_refused_in_one_line(text_run, tmp_path):
    target = tmp_path / "text.tflite"
    failed = run_hubcli("export", text_run, "--format", "tflite", "-o", target)
    line = error_line(failed, 9)
    assert "tokenizes inside its graph" in line and "encoder function on token ids" in line and "WordPiece vocabulary" in line
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_preprocessor_without_a_vocabulary_is_refused(tmp_path):
    from hubcli.config import Settings
    from hubcli.export.artifacts import export_run
    from hubcli.train.config import TrainConfig
    from hubcli.train.text import classify_text
    from tests.helpers.text_modules import build_text_encoder, build_text_preprocessor

    data = text_corpus.write_tab_lines(tmp_path / "data.txt", text_corpus.corpus(per_class=12))
    settings = Settings.load(cache_dir=tmp_path / "cache", offline=True)
    run = tmp_path / "run"
    classify_text(
        data,
        str(build_text_encoder(tmp_path / "encoder")),
        settings=settings,
        config=TrainConfig(epochs=3),
        output=run,
        preprocessor_handle=str(build_text_preprocessor(tmp_path / "preprocessor")),
    )
    with pytest.raises(ExportError, match=r"preprocessor .* has no WordPiece vocabulary \(assets/vocab.txt\)"):
        export_run(run, "tflite", output=tmp_path / "out" / "model.tflite")
    assert list((tmp_path / "out").iterdir()) == []


def test_inspect_shows_the_metadata_back_without_tensorflow(wordpiece_run, tmp_path):
    from hubcli.export.artifacts import export_run

    model = export_run(wordpiece_run, "tflite", output=tmp_path / "text.tflite").path
    probe = (
        "import json, sys\n"
        "from hubcli.cli.app import main\n"
        f"sys.argv = ['hubcli', 'inspect', {str(model)!r}, '--json']\n"
        "try:\n    main()\nexcept SystemExit as done:\n    assert not done.code\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "HEAVY []"
    document = json.loads(done.stdout)
    assert document["schema"] == "hubcli.inspect/1" and document["format"] == "tflite"
    subgraph = document["model_metadata"]["subgraph_metadata"][0]
    by_tensor = {tensor: name for name, tensor in document["signatures"][0]["inputs"].items()}
    metadata_inputs = [tensor["name"] for tensor in subgraph["input_tensor_metadata"]]
    assert [by_tensor[tensor["name"]] for tensor in document["inputs"]] == metadata_inputs, "tensor metadata pairs with inputs by position"
    units = subgraph["input_process_units"]
    assert units[0]["options_type"] == "BertTokenizerOptions" and document["labels"] == (wordpiece_run / "labels.txt").read_text().split()
    assert {item["name"] for item in document["associated_files"]} == {"labels.txt", "vocab.txt"} and document["missing_files"] == []

    shown = run_hubcli("inspect", model)
    assert shown.returncode == 0 and "BertTokenizerOptions" in shown.stderr + shown.stdout


def test_inspect_of_a_damaged_tflite_file_is_one_line(image_run, tmp_path):
    from hubcli.export.artifacts import export_run

    model = export_run(image_run, "tflite", output=tmp_path / "model.tflite").path
    damaged = tmp_path / "damaged.tflite"
    damaged.write_bytes(model.read_bytes()[:64])
    failed = run_hubcli("inspect", damaged)
    assert "damaged" in error_line(failed, 7, alone=True)


def test_every_export_names_its_model_card(image_run, tmp_path):
    done = run_hubcli("export", image_run, "--format", "tflite", "-o", tmp_path / "m.tflite", "--json")
    document = json.loads(done.stdout)
    card = (tmp_path / "MODEL_CARD.md").read_text()
    assert document["model_card"] == str(tmp_path / "MODEL_CARD.md")
    assert "## This export" in card and "`m.tflite`" in card and "The module is code from its publisher" in card


def test_tflite_metadata_files_are_stored_for_in_place_reading(image_run, tmp_path):
    from hubcli.export.artifacts import export_run

    model = export_run(image_run, "tflite", output=tmp_path / "model.tflite", quantize="int8").path
    with zipfile.ZipFile(io.BytesIO(model.read_bytes())) as archive:
        assert [(info.filename, info.compress_type) for info in archive.infolist()] == [("labels.txt", zipfile.ZIP_STORED)]
