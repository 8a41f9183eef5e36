"""The training core on a real tiny module and learnable synthetic images."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from hubcli.config import Settings  # noqa: E402
from hubcli.errors import HubcliError, UsageError  # noqa: E402
from hubcli.train import images as image_data  # noqa: E402
from hubcli.train.config import TrainConfig  # noqa: E402
from hubcli.train.inference import evaluate  # noqa: E402
from hubcli.train.layer import HubLayer  # noqa: E402
from hubcli.train.rundir import default_output  # noqa: E402
from tests.helpers.disk_full import file_size_limit  # noqa: E402
from tests.helpers.synthetic_images import make_image_dataset  # noqa: E402

FAST = dict(epochs=40, learning_rate=0.05, batch_size=16, seed=3)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_image_dataset(tmp_path_factory.mktemp("shapes"), per_class=14)


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    return Settings.load(cache_dir=tmp_path_factory.mktemp("cache"))


def _retrain(dataset, module_path, settings, output, overwrite=False, **options):
    config = TrainConfig(**{**FAST, **options})
    return image_data.retrain_images(
        dataset, str(module_path), settings=settings, config=config, output=output, overwrite=overwrite, validation_split=0.2, test_split=0.2
    )


@pytest.fixture(scope="module")
def frozen_run(dataset, tiny_image_module, settings, tmp_path_factory):
    output = tmp_path_factory.mktemp("runs") / "frozen"
    return output, _retrain(dataset, tiny_image_module, settings, output)


def test_frozen_run_learns_and_writes_the_whole_run_directory(frozen_run, tiny_image_module):
    output, summary = frozen_run
    assert summary["accuracy"] >= 0.85  # chance is 1/3
    assert summary["extraction"]["features_computed"] == 42 and summary["extraction"]["forward_batches"] >= 1
    meta = json.loads((output / "run.json").read_text())
    assert meta["schema"] == "hubcli.run/1" and meta["task"] == "image" and meta["image_size"] == [32, 32]
    assert meta["labels"] == ["blue_bars", "green_discs", "red_squares"]
    assert meta["module"]["path"] == str(tiny_image_module) and len(meta["module"]["sha256"]) == 64
    assert (output / "labels.txt").read_text().split() == meta["labels"]
    metrics = json.loads((output / "metrics.json").read_text())
    assert set(metrics["per_class"]) == set(meta["labels"]) and len(metrics["confusion_matrix"]) == 3
    assert sum(metrics["splits"].values()) == 42 and metrics["training_time_s"] > 0
    # --head auto (the default): the cross-validation curve instead of training curves.
    assert metrics["head"] == "auto" and metrics["selection"]["cv"]["folds"] == 5 and metrics["selection"]["refit_examples"] == 42 - metrics["splits"]["test"]
    for plot in ("selection.png", "confusion_matrix.png"):
        assert (output / "plots" / plot).read_bytes()[:4] == b"\x89PNG"
    assert not (output / "plots" / "training_curves.png").exists()
    samples = np.load(output / "representative.npz")["inputs"]
    assert samples.dtype == np.float32 and samples.shape[1:] == (32, 32, 3) and samples.min() >= 0 and samples.max() <= 1
    assert not [p for p in output.parent.iterdir() if p.name.startswith(".")]  # no staging left


def test_exported_models_reproduce_in_process_predictions(frozen_run):
    output, _ = frozen_run
    samples = np.load(output / "representative.npz")["inputs"]
    keras_model = keras.models.load_model(output / "model.keras")
    expected = keras_model.predict(samples, verbose=0)
    served = tf.saved_model.load(str(output / "model"))
    outputs = served.signatures["serving_default"](images=tf.constant(samples))
    np.testing.assert_allclose(outputs["probabilities"].numpy(), expected, atol=1e-5)
    labels = (output / "labels.txt").read_text().split()
    assert [c.decode() for c in outputs["classes"].numpy()] == [labels[i] for i in expected.argmax(1)]
    # serve_bytes: PNG bytes of the same pixels give the same answer.
    from PIL import Image

    encoded = []
    for pixels in np.round(samples[:5] * 255).astype(np.uint8):
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "PNG")
        encoded.append(buffer.getvalue())
    from_bytes = served.signatures["serve_bytes"](image_bytes=tf.constant(encoded))["probabilities"].numpy()
    np.testing.assert_allclose(from_bytes, expected[:5], atol=1e-4)


def test_serving_model_stores_each_weight_once_with_its_trained_value(image_run):
    # image_run fine-tuned its module: the SavedModel must carry the moved weights, once each.
    keras_model = keras.models.load_model(image_run / "model.keras")
    checkpoint = tf.train.load_checkpoint(str(image_run / "model" / "variables" / "variables"))
    stored = [name for name in checkpoint.get_variable_to_shape_map() if name != "_CHECKPOINTABLE_OBJECT_GRAPH"]
    assert len(stored) == len(keras_model.weights)

    def fingerprint(values):
        return sorted((tuple(np.shape(value)), round(float(np.sum(value)), 4)) for value in values)

    assert fingerprint(checkpoint.get_tensor(name) for name in stored) == fingerprint(w.numpy() for w in keras_model.weights)


def test_second_run_makes_no_forward_passes_and_is_reproducible(frozen_run, dataset, tiny_image_module, settings, tmp_path):
    _, first = frozen_run
    again = _retrain(dataset, tiny_image_module, settings, tmp_path / "again")
    assert again["extraction"]["features_computed"] == 0 and again["extraction"]["forward_batches"] == 0
    assert again["extraction"]["features_cached"] == 42
    assert again["confusion_matrix"] == first["confusion_matrix"] and again["selection"]["path"] == first["selection"]["path"]
    assert again["loss"] == first["loss"]


def test_fine_tune_changes_module_weights_and_saves_them(dataset, tiny_image_module, settings, tmp_path):
    summary = _retrain(dataset, tiny_image_module, settings, tmp_path / "tuned", epochs=10, fine_tune=True, fine_tune_epochs=2)
    assert summary["fine_tuned"] and summary["accuracy"] >= 0.7
    on_disk = HubLayer(str(tiny_image_module))
    model = keras.models.load_model(tmp_path / "tuned" / "model.keras")
    tuned = next(layer for layer in model.layers if isinstance(layer, HubLayer))
    kernel = lambda layer: next(w for w in layer.weights if w.name == "dense_kernel").numpy()  # noqa: E731
    assert not np.allclose(kernel(tuned), kernel(on_disk))
    samples = np.load(tmp_path / "tuned" / "representative.npz")["inputs"][:8]
    served = tf.saved_model.load(str(tmp_path / "tuned" / "model")).signatures["serving_default"]
    np.testing.assert_allclose(served(images=tf.constant(samples))["probabilities"], model.predict(samples, verbose=0), atol=1e-5)


def test_fixed_head_trains_by_epochs_as_before_and_is_reproducible(dataset, tiny_image_module, settings, tmp_path):
    first = _retrain(dataset, tiny_image_module, settings, tmp_path / "fixed1", head="fixed")
    again = _retrain(dataset, tiny_image_module, settings, tmp_path / "fixed2", head="fixed")
    assert first["head"] == "fixed" and first["selection"] is None and first["accuracy"] >= 0.85
    assert 0 < first["epochs_run"] <= 40 and len(first["history"]["val_loss"]) == first["epochs_run"]
    assert again["history"] == first["history"] and again["confusion_matrix"] == first["confusion_matrix"]
    assert first["validation_accuracy"] is not None  # validation stayed out of the head's training
    assert (tmp_path / "fixed1" / "plots" / "training_curves.png").is_file()


def test_augmented_copies_are_cached_too(dataset, tiny_image_module, tmp_path):
    fresh = Settings.load(cache_dir=tmp_path / "cache")
    first = _retrain(dataset, tiny_image_module, fresh, tmp_path / "aug1", augment_copies=2)
    assert first["extraction"]["features_computed"] == 42 + 2 * first["splits"]["train"]
    second = _retrain(dataset, tiny_image_module, fresh, tmp_path / "aug2", augment_copies=2)
    assert second["extraction"]["features_computed"] == 0
    assert second["selection"]["path"] == first["selection"]["path"]
    # The copies join the refit (and each fold that holds their original), never a held-out fold.
    assert first["selection"]["refit_examples"] == 3 * first["splits"]["train"] + first["splits"]["validation"]


def test_corrupt_file_is_skipped_and_listed_and_tensorboard_logs_written(tmp_path, tiny_image_module, settings):
    data = make_image_dataset(tmp_path / "data", per_class=10, seed=5)
    (data / "blue_bars" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    summary = _retrain(data, tiny_image_module, settings, tmp_path / "run", head="fixed", epochs=5, tensorboard=True)
    assert [s["key"] for s in summary["skipped"]] == ["blue_bars/broken.jpg"]
    assert sum(summary["splits"].values()) == 30
    assert list((tmp_path / "run" / "logs" / "head").glob("events.out.tfevents.*"))


def test_existing_output_is_never_replaced_without_overwrite(frozen_run, dataset, tiny_image_module, settings):
    output, _ = frozen_run
    before = (output / "run.json").read_text()
    with pytest.raises(UsageError, match="already exists"):
        _retrain(dataset, tiny_image_module, settings, output)
    with pytest.raises(UsageError, match="unknown optimizer"):
        image_data.retrain_images(
            dataset, str(tiny_image_module), settings=settings, config=TrainConfig(optimizer="magic"),
            output=output.parent / "never",
        )
    assert (output / "run.json").read_text() == before and not (output.parent / "never").exists()
    assert not [p for p in output.parent.iterdir() if p.name.startswith(".")]


def test_a_full_disk_is_one_clear_error_and_leaves_the_old_run_intact(frozen_run, dataset, tiny_image_module, settings):
    output, _ = frozen_run
    before = (output / "run.json").read_text()
    # Features are cached already, so the first big write is the run directory's.
    with file_size_limit(64 * 1024), pytest.raises(HubcliError, match=f"cannot write the run directory {output}: File too large"):
        _retrain(dataset, tiny_image_module, settings, output, overwrite=True)
    assert (output / "run.json").read_text() == before
    assert not [p for p in output.parent.iterdir() if p.name.startswith(".")]


def test_default_output_never_overwrites(tmp_path):
    (tmp_path / "flowers").mkdir()
    assert default_output("flowers", tmp_path) == tmp_path / "flowers-2"
    assert default_output("tulips", tmp_path) == tmp_path / "tulips"


def test_served_model_on_the_test_files_matches_the_runs_own_metrics(frozen_run, dataset, tmp_path):
    """Training scored the test split on cached features; the exported model re-reads the files."""
    import shutil

    output, summary = frozen_run
    test_split = image_data.load_image_folder(dataset, validation_split=0.2, test_split=0.2).test
    for example in test_split:
        target = tmp_path / "test" / example.key
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(example.source, target)
    evaluation = evaluate(output, tmp_path / "test")
    assert evaluation["examples"] == summary["splits"]["test"]
    assert evaluation["confusion_matrix"] == summary["confusion_matrix"]
    assert evaluation["loss"] == pytest.approx(summary["loss"], abs=1e-3)
