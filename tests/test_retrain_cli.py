"""`hubcli retrain-images`, `evaluate` and `predict` from the command line."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("tensorflow")

from hubcli.cli import train as train_commands  # noqa: E402
from tests.helpers.cli_run import error_line, run_hubcli  # noqa: E402
from tests.helpers.synthetic_images import make_image_dataset  # noqa: E402


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_image_dataset(tmp_path_factory.mktemp("shapes"), per_class=14, seed=11)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HUBCLI_CACHE_DIR", str(tmp_path / "cache"))


def test_retrain_evaluate_predict_json(shapes, tiny_image_module, tmp_path, cache):
    run = tmp_path / "run"
    done = run_hubcli(
        "retrain-images", shapes, "--module", tiny_image_module, "--output", run,
        "--learning-rate", "0.05", "--batch-size", "16", "--validation-split", "0.2", "--test-split", "0.2", "--json",
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["schema"] == "hubcli.retrain-images/1" and summary["output"] == str(run)
    assert summary["accuracy"] >= 0.8 and summary["extraction"]["features_computed"] == 42

    done = run_hubcli("evaluate", run, shapes, "--json")
    assert done.returncode == 0, done.stderr
    evaluation = json.loads(done.stdout)
    assert evaluation["examples"] == 42 and evaluation["accuracy"] >= 0.8
    assert set(evaluation["per_class"]) == {"blue_bars", "green_discs", "red_squares"}

    picture = shapes / "green_discs" / "green_discs_001.png"
    done = run_hubcli("predict", run / "model", picture, "--top-k", "2", "--json")
    assert done.returncode == 0, done.stderr
    (prediction,) = json.loads(done.stdout)["predictions"]
    assert prediction["input"] == str(picture) and len(prediction["top"]) == 2
    assert prediction["top"][0]["label"] == "green_discs" and prediction["top"][0]["probability"] > 0.5

    done = run_hubcli("predict", run, picture)
    assert done.returncode == 0 and "green_discs" in done.stdout


def test_evaluate_with_an_unknown_class_is_one_clear_error(shapes, tiny_image_module, tmp_path, cache):
    run = tmp_path / "run"
    done = run_hubcli("retrain-images", shapes, "-m", tiny_image_module, "-o", run, "--epochs", "3", "--json")
    assert done.returncode == 0, done.stderr
    other = make_image_dataset(tmp_path / "other", per_class=2, classes=["red_squares"])
    (other / "purple_stars").mkdir()
    done = run_hubcli("evaluate", run, other)
    assert "'purple_stars'" in error_line(done, 8, alone=True)
    done = run_hubcli("predict", run, tmp_path / "missing.jpg")
    assert "missing.jpg" in error_line(done, 3, alone=True)
    (tmp_path / "fake.jpg").write_bytes(b"not a jpeg")
    done = run_hubcli("predict", run, tmp_path / "fake.jpg")
    assert "not a readable image" in error_line(done, 8, alone=True)
    done = run_hubcli("predict", run, other / "red_squares")
    assert "is a folder; give image files" in error_line(done, 2, alone=True)


def test_bad_inputs_give_one_line_and_write_nothing(tiny_image_module, tmp_path, cache):
    single = make_image_dataset(tmp_path / "single", per_class=6, classes=["red_squares"])
    done = run_hubcli("retrain-images", single, "-m", tiny_image_module, "-o", tmp_path / "out")
    assert "at least 2 classes" in error_line(done, 8, alone=True)
    done = run_hubcli("retrain-images", tmp_path / "nowhere", "-m", tiny_image_module, "-o", tmp_path / "out")
    assert "does not exist" in error_line(done, 3, alone=True)
    two = make_image_dataset(tmp_path / "two", per_class=6, classes=["red_squares", "blue_bars"])
    done = run_hubcli("retrain-images", two, "-m", tiny_image_module, "-o", tmp_path / "out", "--image-size", "64")
    assert "takes 32x32 images" in error_line(done, 2, alone=True)
    done = run_hubcli("retrain-images", two, "-m", tiny_image_module, "-o", tmp_path / "out", "--validation-split", "0.9")
    assert "--validation-split" in error_line(done, 2, alone=True)
    assert not (tmp_path / "out").exists()


def test_cli_defaults_are_the_library_defaults():
    """Both training commands default to TrainConfig's values (a literal default would drift)."""
    import inspect
    from dataclasses import fields

    from hubcli.train.config import TrainConfig

    option_for = {
        "epochs": "epochs", "batch_size": "batch_size", "learning_rate": "learning_rate", "optimizer": "optimizer",
        "dropout": "dropout", "l2": "l2", "label_smoothing": "label_smoothing", "patience": "patience",
        "fine_tune_epochs": "fine_tune_epochs", "fine_tune_learning_rate": "fine_tune_learning_rate",
        "augment_copies": "augment", "seed": "seed",
    }
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    for command in (train_commands.retrain_images_command, train_commands.classify_text_command):
        parameters = inspect.signature(command).parameters
        for field_name, option in option_for.items():
            if option in parameters:
                assert parameters[option].default == defaults[field_name], (command.__name__, field_name)
