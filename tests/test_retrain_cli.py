"""`hubcli retrain-images`, `evaluate` and `predict` from the command line (in-process main())."""

from __future__ import annotations

import json
import sys

import pytest

pytest.importorskip("tensorflow")

from hubcli.cli import app as cli  # noqa: E402
from tests.helpers.synthetic_images import make_image_dataset  # noqa: E402


def run_cli(capsys, monkeypatch, *args):
    """Run `hubcli ARGS`; returns (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["hubcli", *map(str, args)])
    code = 0
    try:
        cli.main()
    except SystemExit as done:
        code = done.code or 0
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_image_dataset(tmp_path_factory.mktemp("shapes"), per_class=14, seed=11)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HUBCLI_CACHE_DIR", str(tmp_path / "cache"))


def test_retrain_evaluate_predict_json(shapes, tiny_image_module, tmp_path, capsys, monkeypatch, cache):
    run = tmp_path / "run"
    code, out, err = run_cli(
        capsys, monkeypatch, "retrain-images", shapes, "--module", tiny_image_module, "--output", run,
        "--learning-rate", "0.05", "--batch-size", "16", "--validation-split", "0.2", "--test-split", "0.2", "--json",
    )
    assert code == 0, err
    summary = json.loads(out)
    assert summary["schema"] == "hubcli.retrain-images/1" and summary["output"] == str(run)
    assert summary["accuracy"] >= 0.8 and summary["extraction"]["features_computed"] == 42

    code, out, err = run_cli(capsys, monkeypatch, "evaluate", run, shapes, "--json")
    assert code == 0, err
    evaluation = json.loads(out)
    assert evaluation["examples"] == 42 and evaluation["accuracy"] >= 0.8
    assert set(evaluation["per_class"]) == {"blue_bars", "green_discs", "red_squares"}

    picture = shapes / "green_discs" / "green_discs_001.png"
    code, out, err = run_cli(capsys, monkeypatch, "predict", run / "model", picture, "--top-k", "2", "--json")
    assert code == 0, err
    (prediction,) = json.loads(out)["predictions"]
    assert prediction["input"] == str(picture) and len(prediction["top"]) == 2
    assert prediction["top"][0]["label"] == "green_discs" and prediction["top"][0]["probability"] > 0.5

    code, out, err = run_cli(capsys, monkeypatch, "predict", run, picture)
    assert code == 0 and "green_discs" in out


def _one_error_line(code, err, expected_code, fragment):
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == expected_code, err
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], err


def test_evaluate_with_an_unknown_class_is_one_clear_error(shapes, tiny_image_module, tmp_path, capsys, monkeypatch, cache):
    run = tmp_path / "run"
    code, _, err = run_cli(capsys, monkeypatch, "retrain-images", shapes, "-m", tiny_image_module, "-o", run, "--epochs", "3", "--json")
    assert code == 0, err
    other = make_image_dataset(tmp_path / "other", per_class=2, classes=["red_squares"])
    (other / "purple_stars").mkdir()
    code, out, err = run_cli(capsys, monkeypatch, "evaluate", run, other)
    _one_error_line(code, err, 8, "'purple_stars'")
    code, out, err = run_cli(capsys, monkeypatch, "predict", run, tmp_path / "missing.jpg")
    _one_error_line(code, err, 3, "missing.jpg")
    (tmp_path / "fake.jpg").write_bytes(b"not a jpeg")
    code, out, err = run_cli(capsys, monkeypatch, "predict", run, tmp_path / "fake.jpg")
    _one_error_line(code, err, 8, "not a readable image")
    code, out, err = run_cli(capsys, monkeypatch, "predict", run, other / "red_squares")
    _one_error_line(code, err, 2, "is a folder; give image files")


def test_bad_inputs_give_one_line_and_write_nothing(tiny_image_module, tmp_path, capsys, monkeypatch, cache):
    single = make_image_dataset(tmp_path / "single", per_class=6, classes=["red_squares"])
    code, _, err = run_cli(capsys, monkeypatch, "retrain-images", single, "-m", tiny_image_module, "-o", tmp_path / "out")
    _one_error_line(code, err, 8, "at least 2 classes")
    code, _, err = run_cli(capsys, monkeypatch, "retrain-images", tmp_path / "nowhere", "-m", tiny_image_module, "-o", tmp_path / "out")
    _one_error_line(code, err, 3, "does not exist")
    two = make_image_dataset(tmp_path / "two", per_class=6, classes=["red_squares", "blue_bars"])
    code, _, err = run_cli(capsys, monkeypatch, "retrain-images", two, "-m", tiny_image_module, "-o", tmp_path / "out", "--image-size", "64")
    _one_error_line(code, err, 2, "takes 32x32 images")
    code, _, err = run_cli(capsys, monkeypatch, "retrain-images", two, "-m", tiny_image_module, "-o", tmp_path / "out", "--validation-split", "0.9")
    _one_error_line(code, err, 2, "--validation-split")
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
    for command in (cli.retrain_images_command, cli.classify_text_command):
        parameters = inspect.signature(command).parameters
        for field_name, option in option_for.items():
            if option in parameters:
                assert parameters[option].default == defaults[field_name], (command.__name__, field_name)
