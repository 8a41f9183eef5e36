"""--head auto in the training core and the CLI: the gate, --cv, class weights, out-of-fold scores, --unfreeze."""

from __future__ import annotations

import json

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from hubcli.config import Settings  # noqa: E402
from hubcli.train.config import TrainConfig  # noqa: E402
from hubcli.train.images import retrain_images  # noqa: E402
from hubcli.train.inference import predict  # noqa: E402
from hubcli.train.layer import HubLayer  # noqa: E402
from tests.helpers.cli_run import error_line, run_hubcli  # noqa: E402
from tests.helpers.synthetic_images import CLASS_STYLES, draw_example, make_image_dataset  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_image_dataset(tmp_path_factory.mktemp("shapes"), per_class=14, seed=21)


@pytest.fixture(scope="module")
def noise(tmp_path_factory):
    """Three classes drawn from one style: nothing tells them apart."""
    root = tmp_path_factory.mktemp("noise")
    rng = np.random.default_rng(0)
    for name in ("a", "b", "c"):
        (root / name).mkdir()
        for index in range(14):
            draw_example(CLASS_STYLES["red_squares"], rng).save(root / name / f"{index}.png")
    return root


def _train(data, module, tmp_path, name, **options):
    split = {"validation_split": options.pop("validation_split", 0.2), "test_split": options.pop("test_split", 0.2)}
    settings = Settings.load(cache_dir=tmp_path / "cache", offline=True)
    return retrain_images(data, str(module), settings=settings, config=TrainConfig(**options), output=tmp_path / name, **split)


def test_the_gate_exits_10_keeps_the_run_and_still_prints_it(noise, shapes, tiny_image_module, tmp_path):
    common = ["--module", tiny_image_module, "--cache-dir", tmp_path / "cache"]
    result = run_hubcli("retrain-images", noise, *common, "--output", tmp_path / "noise", "--min-accuracy", "0.9", "--json")
    summary = json.loads(result.stdout)
    assert error_line(result, 10, alone=True) == f"error: accuracy {summary['accuracy']} < --min-accuracy 0.9 (run kept at {tmp_path / 'noise'})"
    assert summary["accuracy"] < 0.9 and (tmp_path / "noise" / "model" / "saved_model.pb").is_file()
    result = run_hubcli("retrain-images", shapes, *common, "--output", tmp_path / "shapes", "--min-accuracy", "0.6")
    assert result.returncode == 0, result.stderr
    assert "head auto: l2" in result.stdout and "balanced accuracy" in result.stdout


@pytest.mark.parametrize(
    "options, message",
    [
        (["--head", "best"], "--head 'best': choose auto or fixed"),
        (["--cv", "1"], "--cv 1: give K >= 2 folds"),
        (["--class-weight", "balanced"], "--class-weight 'balanced': choose auto or none"),
        (["--unfreeze", "2"], "--unfreeze applies to --fine-tune"),
        (["--fine-tune", "--unfreeze", "top"], "--unfreeze 'top': give all, or a number of top layers"),
        (["--min-micro-f1", "0.5"], "--min-micro-f1 is for --multi-label runs"),
        (["--min-accuracy", "1.5"], "--min-accuracy must be between 0 and 1"),
        (["--head", "fixed", "--validation-split", "0", "--test-split", "0", "--min-accuracy", "0.5"], "a quality gate needs held-out data"),
    ],
)
def test_options_that_cannot_work_are_one_usage_error(shapes, tiny_image_module, tmp_path, options, message):
    result = run_hubcli("retrain-images", shapes, "--module", tiny_image_module, "--cache-dir", tmp_path / "cache", *options)
    assert message in error_line(result, 2, alone=True)
    assert not (tmp_path / "cache" / "features").exists()  # refused before any module ran


def test_cv_reports_every_fold_of_all_labelled_data_for_both_heads(shapes, tiny_image_module, tmp_path):
    auto = _train(shapes, tiny_image_module, tmp_path, "auto", cv_folds=3)
    assert auto["cv"]["folds"] == 3 and len(auto["cv"]["per_fold"]) == 3 and auto["cv"]["examples"] == 42
    assert auto["cv"]["mean"] >= 0.8 and auto["cv"]["head"] == "auto"
    fixed = _train(shapes, tiny_image_module, tmp_path, "fixed", cv_folds=3, head="fixed", epochs=20, learning_rate=0.05)
    assert fixed["cv"]["folds"] == 3 and fixed["cv"]["head"] == "fixed" and fixed["cv"]["mean"] >= 0.6
    metrics = json.loads((tmp_path / "auto" / "metrics.json").read_text())
    assert metrics["cv"] == auto["cv"]


def test_without_a_test_split_auto_scores_out_of_fold(shapes, tiny_image_module, tmp_path):
    summary = _train(shapes, tiny_image_module, tmp_path, "oof", test_split=0.0)
    assert summary["evaluated_on"] == "out_of_fold" and summary["examples"] == 42 and summary["validation_accuracy"] is None
    assert summary["accuracy"] >= 0.8


def test_class_weights_move_the_decision_towards_a_rare_class(tmp_path, tiny_image_module, capsys):
    data = make_image_dataset(tmp_path / "data", per_class=40, classes=["red_squares", "green_discs"], seed=4)
    for index, path in enumerate(sorted((data / "green_discs").iterdir())):
        if index >= 8:
            path.unlink()  # 40 red squares, 8 green discs
    plain = _train(data, tiny_image_module, tmp_path, "plain", validation_split=0.0, test_split=0.0)
    assert "classes are imbalanced" in capsys.readouterr().err
    weighted = _train(data, tiny_image_module, tmp_path, "weighted", validation_split=0.0, test_split=0.0, class_weight="auto")
    assert weighted["class_weight"] == "auto" and weighted["selection"]["cv"]["metric"] == "balanced_accuracy"
    assert "balanced_accuracy" in plain and weighted["balanced_accuracy"] >= plain["balanced_accuracy"]

    def rare_probability(run) -> float:
        files = [str(path) for path in sorted((data / "green_discs").iterdir())]
        tops = [p["top"] for p in predict(tmp_path / run, files, top_k=2)["predictions"]]
        return float(np.mean([next(c["probability"] for c in top if c["label"] == "green_discs") for top in tops]))

    assert rare_probability("weighted") > rare_probability("plain")


def test_unfreeze_trains_only_the_top_layer_and_keeps_batch_norm_statistics(shapes, tiny_image_module, tmp_path):
    import keras

    summary = _train(shapes, tiny_image_module, tmp_path, "top", fine_tune=True, fine_tune_epochs=2, unfreeze="1")
    assert summary["fine_tuned"] and summary["accuracy"] >= 0.7
    model = keras.models.load_model(tmp_path / "top" / "model.keras")
    tuned = next(layer for layer in model.layers if isinstance(layer, HubLayer))
    original = HubLayer(str(tiny_image_module))
    weight = lambda layer, name: next(w for w in layer.weights if w.name == name).numpy()  # noqa: E731
    for frozen in ("dense_kernel", "dense_bias", "bn_moving_mean", "bn_moving_variance"):
        np.testing.assert_array_equal(weight(tuned, frozen), weight(original, frozen))
    assert not np.allclose(weight(tuned, "bn_gamma"), weight(original, "bn_gamma"))
