"""Multi-label runs end to end on learnable synthetic data: train, evaluate, predict, export, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from hubcli.config import Settings  # noqa: E402
from hubcli.errors import DataError  # noqa: E402
from hubcli.export.artifacts import export_run  # noqa: E402
from hubcli.savedmodel.tflite_metadata import associated_files  # noqa: E402
from hubcli.train.config import TrainConfig  # noqa: E402
from hubcli.train.images import ImageModality, retrain_images  # noqa: E402
from hubcli.train.inference import evaluate, predict  # noqa: E402
from hubcli.train.labeling import MultiLabel  # noqa: E402
from hubcli.train.manifest import load_manifest  # noqa: E402
from hubcli.train.multilabel_metrics import choose_thresholds  # noqa: E402
from hubcli.train.rundir import open_run  # noqa: E402
from hubcli.train.serving import ServingModel  # noqa: E402
from hubcli.train.text import classify_text  # noqa: E402
from tests.helpers import text_corpus, tiny_modules  # noqa: E402
from tests.helpers.cli_run import error_line, run_hubcli  # noqa: E402
from tests.helpers.synthetic_images import make_multilabel_dataset  # noqa: E402

pytestmark = pytest.mark.slow
SPLITS = dict(validation_split=0.15, test_split=0.25)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    return make_multilabel_dataset(tmp_path_factory.mktemp("shapes"), count=72, seed=3)


@pytest.fixture(scope="module")
def image_run(manifest, tiny_image_module, tmp_path_factory):
    root = tmp_path_factory.mktemp("multilabel")
    settings = Settings.load(cache_dir=root / "cache", offline=True)
    summary = retrain_images(
        manifest, str(tiny_image_module), settings=settings, config=TrainConfig(multi_label=True), output=root / "run", **SPLITS
    )
    return root / "run", summary


def test_a_learnable_multilabel_set_reaches_a_high_micro_f1(image_run):
    run, summary = image_run
    assert summary["multi_label"] and summary["evaluated_on"] == "test" and summary["labels"] == ["blue", "green", "red"]
    assert summary["micro_f1"] >= 0.9 and summary["macro_f1"] >= 0.85 and summary["mean_average_precision"] >= 0.9
    assert set(summary["per_label"]["red"]) == {"precision", "recall", "f1", "support", "average_precision", "threshold"}
    assert summary["selection"]["cv"]["metric"] == "micro_f1" and summary["selection"]["cv"]["mean"] >= 0.85
    meta = json.loads((run / "run.json").read_text())
    assert meta["multi_label"] is True and len(meta["thresholds"]) == 3 and all(0 < t < 1 for t in meta["thresholds"])
    assert meta["thresholds"] == pytest.approx([summary["per_label"][name]["threshold"] for name in meta["labels"]], abs=1e-4)
    assert (run / "plots" / "selection.png").is_file() and not (run / "plots" / "confusion_matrix.png").exists()


def test_serving_model_returns_probabilities_thresholds_and_decisions(image_run):
    run, _ = image_run
    thresholds = json.loads((run / "run.json").read_text())["thresholds"]
    samples = np.load(run / "representative.npz")["inputs"][:6]
    outputs = tf.saved_model.load(str(run / "model")).signatures["serving_default"](images=tf.constant(samples))
    probabilities = outputs["probabilities"].numpy()
    np.testing.assert_allclose(outputs["thresholds"].numpy(), np.tile(np.float32(thresholds), (6, 1)))
    np.testing.assert_array_equal(outputs["predicted"].numpy(), probabilities >= np.float32(thresholds))


def test_evaluate_on_the_test_manifest_reproduces_the_runs_metrics(image_run, manifest, tmp_path):
    run, summary = image_run
    test = load_manifest(manifest, task="image", **SPLITS).test
    names = ["blue", "green", "red"]
    rows = [f"{e.source},{';'.join(names[i] for i in e.label)}\n" for e in test]
    test_manifest = tmp_path / "test.csv"
    test_manifest.write_text("path,labels\n" + "".join(rows), encoding="utf-8")
    evaluation = evaluate(run, test_manifest)
    assert evaluation["multi_label"] and evaluation["examples"] == summary["splits"]["test"]
    for key in ("micro_f1", "macro_f1", "subset_accuracy", "mean_average_precision"):
        assert evaluation[key] == pytest.approx(summary[key], abs=1e-3), key
    with pytest.raises(DataError, match="is a folder, but multi-label data is a manifest"):
        evaluate(run, manifest.parent / "images")
    test_manifest.write_text(f"path,labels\n{test[0].source},red;zebra\n", encoding="utf-8")
    with pytest.raises(DataError, match="label\\(s\\) 'zebra' in .* are not among the model's labels: blue, green, red"):
        evaluate(run, test_manifest)


def test_predict_lists_every_label_above_its_threshold(image_run, manifest):
    run, _ = image_run
    truth = {}
    for line in manifest.read_text().splitlines()[1:]:
        path, labels = line.split(",")
        truth[path.rsplit("/", 1)[1]] = set(filter(None, labels.split(";")))
    files = sorted((manifest.parent / "images").glob("*.png"))[:8]
    result = predict(run, [str(f) for f in files], top_k=3)
    assert result["multi_label"]
    right = 0
    for prediction in result["predictions"]:
        chosen = prediction["labels"]
        assert all(c["probability"] >= c["threshold"] for c in chosen) and len(prediction["top"]) == 3
        assert [c["probability"] for c in chosen] == sorted((c["probability"] for c in chosen), reverse=True)
        right += {c["label"] for c in chosen} == truth[prediction["input"].rsplit("/", 1)[1]]
    assert right >= 6


@pytest.mark.parametrize("format", ["savedmodel", "tflite", "keras"])
def test_every_export_format_agrees_on_the_label_sets(image_run, format, tmp_path):
    run, _ = image_run
    suffix = {"savedmodel": "saved_model", "tflite": "model.tflite", "keras": "model.keras"}[format]
    result = export_run(run, format, output=tmp_path / suffix)
    assert result.agreement.top1_agreement == 1.0
    if format == "tflite":
        flatbuffer = result.path.read_bytes()
        thresholds = json.loads((run / "run.json").read_text())["thresholds"]
        packed = associated_files(flatbuffer)
        assert packed["labels.txt"].decode().split() == ["blue", "green", "red"]
        assert [float(line) for line in packed["thresholds.txt"].decode().split()] == thresholds
        assert [float(line) for line in (tmp_path / "thresholds.txt").read_text().split()] == thresholds


def test_fine_tuning_a_multilabel_run_rechooses_thresholds_on_validation(manifest, tiny_image_module, tmp_path):
    settings = Settings.load(cache_dir=tmp_path / "cache", offline=True)
    config = TrainConfig(multi_label=True, fine_tune=True, fine_tune_epochs=2)
    summary = retrain_images(manifest, str(tiny_image_module), settings=settings, config=config, output=tmp_path / "tuned", **SPLITS)
    assert summary["fine_tuned"] and summary["evaluated_on"] == "test" and summary["micro_f1"] >= 0.8
    assert set(summary["history"]) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    thresholds = json.loads((tmp_path / "tuned" / "run.json").read_text())["thresholds"]
    # They are where F1 peaks on the fine-tuned model's validation probabilities.
    validation = load_manifest(manifest, task="image", **SPLITS).validation
    run = open_run(tmp_path / "tuned")
    probabilities = ServingModel(run).probabilities(ImageModality.from_run(run).prediction_inputs([e.source for e in validation]))
    expected = choose_thresholds(MultiLabel().label_array(validation, 3), probabilities)
    np.testing.assert_allclose(thresholds, expected, atol=1e-4)


def test_text_manifest_trains_a_multilabel_classifier(tmp_path):
    # 64 dimensions: enough for a linear head to tell which topics' words a sentence sums.
    module = tiny_modules.build_text_module(tmp_path / "text_module", output_dim=64)
    data = text_corpus.write_jsonl_manifest(tmp_path / "topics.jsonl", text_corpus.multilabel_corpus(120, seed=1))
    settings = Settings.load(cache_dir=tmp_path / "cache", offline=True)
    summary = classify_text(data, str(module), settings=settings, config=TrainConfig(multi_label=True), output=tmp_path / "run", **SPLITS)
    assert summary["labels"] == ["mixed", "neg", "pos"] and summary["micro_f1"] >= 0.85
    result = predict(tmp_path / "run", ["great superb fun film and actors", "the plot was a story"])
    assert {c["label"] for c in result["predictions"][0]["labels"]} == {"pos"}
    assert result["predictions"][1]["labels"] == []


def test_cli_multilabel_run_gate_and_bad_manifests(manifest, tiny_image_module, tmp_path):
    cache = ["--cache-dir", tmp_path / "cache"]
    result = run_hubcli(
        "retrain-images", manifest, "--multi-label", "--module", tiny_image_module, "--output", tmp_path / "run", *cache, "--min-micro-f1", "0.9"
    )
    assert result.returncode == 0, result.stderr
    assert "micro F1" in result.stdout and "head auto: l2" in result.stdout and result.stdout.strip().splitlines()[-1] == str(tmp_path / "run")
    result = run_hubcli("predict", tmp_path / "run", manifest.parent / "images" / "000.png")
    assert result.returncode == 0 and "Threshold" in result.stdout

    # The same images with their label sets shuffled among them: nothing to learn, and the gate says so.
    lines = manifest.read_text().splitlines()
    labels = [line.split(",")[1] for line in lines[1:]]
    np.random.default_rng(0).shuffle(labels)
    shuffled = manifest.parent / "shuffled.csv"
    shuffled.write_text(lines[0] + "\n" + "".join(f"{line.split(',')[0]},{label}\n" for line, label in zip(lines[1:], labels, strict=True)))
    result = run_hubcli(
        "retrain-images", shuffled, "--multi-label", "--module", tiny_image_module, "--output", tmp_path / "noise", *cache, "--min-micro-f1", "0.9", "--json",
    )
    summary = json.loads(result.stdout)
    assert error_line(result, 10) == f"error: micro F1 {summary['micro_f1']} < --min-micro-f1 0.9 (run kept at {tmp_path / 'noise'})"
    assert summary["micro_f1"] < 0.9 and (tmp_path / "noise" / "run.json").is_file()

    cases = [
        ("path,labels,weight\n", 8, "unknown column(s) 'weight'"),
        ("path,labels\nimages/000.png,red\nnope.png,red\n", 3, "1 image(s) listed in"),
        ("path,labels\n" + "".join(f"images/{i:03d}.png,red\n" for i in range(8)) + "images/009.png,red;zebra\n", 8, "'zebra' (1)"),
    ]
    bad = manifest.parent / "bad.csv"
    for text, code, message in cases:
        bad.write_text(text, encoding="utf-8")
        result = run_hubcli("retrain-images", bad, "--multi-label", "--module", tiny_image_module, *cache)
        assert message in error_line(result, code, alone=True)
    result = run_hubcli("retrain-images", manifest.parent, "--multi-label", "--module", tiny_image_module, *cache)
    assert "is a folder, but multi-label data is a manifest" in error_line(result, 8, alone=True)
    result = run_hubcli("retrain-images", manifest, "--module", tiny_image_module, *cache)
    assert "a manifest is for multi-label runs (--multi-label)" in error_line(result, 8, alone=True)
    result = run_hubcli("retrain-images", manifest, "--multi-label", "--min-accuracy", "0.9", "--module", tiny_image_module, *cache)
    assert "gate a --multi-label run with --min-micro-f1" in error_line(result, 2, alone=True)
