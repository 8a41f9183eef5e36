"""The helper process that extracts features, and fits ``--head auto``, while a run imports TensorFlow.

Whatever the helper does (finish first, finish last, fail, meet unreadable photos), the run
must be the run it would have been without it: the same head, metrics, extraction figures
and serving model.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from hubcli.config import Settings
from hubcli.train import core, engines
from hubcli.train import prefetch as prefetch_module
from hubcli.train.config import TrainConfig
from hubcli.train.feature_cache import features_root
from hubcli.train.images import ImageModality, load_image_folder
from hubcli.train.module_ref import ModuleRef
from hubcli.train.prefetch import Prefetch
from hubcli.train.splits import LabeledData
from tests.helpers.cli_run import run_hubcli
from tests.helpers.synthetic_images import make_image_dataset

pytestmark = pytest.mark.slow


def _cache_with_engine(module_dir: Path, cache_dir: Path) -> Settings:
    """A cache where the module's TFLite engine is converted and accepted (as after a first large run)."""
    settings = Settings.load(cache_dir=cache_dir, offline=True)
    module = ModuleRef.resolve(str(module_dir), settings)
    modality = ImageModality(module.info.image_size)
    encoder = modality.build_encoder(module, trainable=False)
    engine = engines.choose_engine(
        encoder=encoder, modality=modality, module_digest=module.sha256, features_dir=features_root(cache_dir), examples=engines.CONVERT_MIN_EXAMPLES
    )
    assert engine.name == "tflite-xnnpack"
    return settings


def _setup(module_dir: Path, root: Path, data_dir: Path):
    settings = _cache_with_engine(module_dir, root / "cache")
    module = ModuleRef.resolve(str(module_dir), settings)
    return module, ImageModality(module.info.image_size), load_image_folder(data_dir, 0.2, 0.2)


def _train(module, modality, data: LabeledData, output: Path, prefetch=None, config: TrainConfig | None = None) -> dict:
    return core.train(data, modality, module=module, config=config or TrainConfig(), output=output, prefetch=prefetch)


def _comparable(summary: dict) -> dict:
    """What a run found, less how long it took."""
    selection = {key: value for key, value in summary["selection"].items() if key != "selection_time_s"}
    extraction = {key: value for key, value in summary["extraction"].items() if key not in ("seconds", "examples_per_s")}
    return {
        "accuracy": summary["accuracy"],
        "confusion_matrix": summary["confusion_matrix"],
        "selection": selection,
        "extraction": extraction,
        "skipped": summary["skipped"],
    }


def _serving_probabilities(run: Path, images: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    function = tf.saved_model.load(str(run / "model")).signatures["serving_default"]
    return function(images=tf.constant(images))["probabilities"].numpy()


def _keras_probabilities(run: Path, images: np.ndarray) -> np.ndarray:
    import keras

    from hubcli.train.layer import HubLayer  # registers the layer for loading

    assert HubLayer
    return keras.saving.load_model(run / "model.keras").predict(images, verbose=0)


def test_a_run_with_the_helper_is_the_run_without_it(tiny_image_module, tmp_path):
    data_dir = make_image_dataset(tmp_path / "photos", per_class=12)
    module, modality, data = _setup(tiny_image_module, tmp_path / "with", data_dir)
    prefetch = Prefetch.start(data, modality, module=module, config=TrainConfig())
    assert prefetch is not None
    try:
        done = prefetch.result()
        assert done is not None and done.choice is not None
        assert done.stats.features_computed == len(data.all_examples()) and done.stats.engine == "tflite-xnnpack"
        with_helper = _train(module, modality, data, tmp_path / "with" / "run", prefetch)
    finally:
        prefetch.close()

    alone_module, alone_modality, alone_data = _setup(tiny_image_module, tmp_path / "alone", data_dir)
    alone = _train(alone_module, alone_modality, alone_data, tmp_path / "alone" / "run")

    assert _comparable(with_helper) == _comparable(alone)
    # The helper computed the features, so the run reports them as computed, not as found cached.
    assert with_helper["extraction"]["features_computed"] == len(data.all_examples())
    assert with_helper["extraction"]["features_cached"] == 0
    # The run's memory counts both processes.
    assert alone["helper_peak_rss_mb"] is None and with_helper["helper_peak_rss_mb"] > 0
    assert with_helper["peak_rss_mb"] > with_helper["helper_peak_rss_mb"]
    images = np.random.default_rng(1).random((4, *modality.image_size, 3)).astype(np.float32)
    np.testing.assert_array_equal(_serving_probabilities(tmp_path / "with" / "run", images), _serving_probabilities(tmp_path / "alone" / "run", images))


def test_the_helper_never_imports_tensorflow_nor_the_working_directory(tiny_image_module, tmp_path, monkeypatch):
    data_dir = make_image_dataset(tmp_path / "photos", per_class=6)
    module, modality, data = _setup(tiny_image_module, tmp_path, data_dir)
    # A dataset folder is no place to import code from, yet `python -m` would put it first on sys.path.
    poisoned = tmp_path / "cwd"
    poisoned.mkdir()
    (poisoned / "numpy.py").write_text(f"open({str(tmp_path / 'imported')!r}, 'w').close()\nraise ImportError('not numpy')\n")
    monkeypatch.chdir(poisoned)
    prefetch = Prefetch.start(data, modality, module=module, config=TrainConfig())
    assert prefetch is not None
    try:
        # The helper's work again, as the run starts it, with every import it makes reported.
        again = subprocess.Popen(
            list(prefetch._process.args[:1]) + ["-X", "importtime"] + list(prefetch._process.args[1:]),
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=prefetch_module._helper_environment(),
        )
        imports = again.stderr.read()
        again.stdin.close()
        assert again.wait() == 0, imports[-2000:]
        assert prefetch.result() is not None
        assert not (tmp_path / "imported").exists()
    finally:
        prefetch.close()
    imported = {line.rsplit("|", 1)[-1].strip() for line in imports.splitlines() if line.startswith("import time:")}
    assert "numpy" in imported and not {"tensorflow", "keras"} & imported


def test_a_helper_stops_with_its_run_however_the_run_ends(tiny_image_module, tmp_path):
    data_dir = make_image_dataset(tmp_path / "photos", per_class=6)
    _cache_with_engine(tiny_image_module, tmp_path / "cache")
    # A run that starts its helper and is then killed outright (as by the out-of-memory killer).
    script = f"""
import os, signal
from hubcli.config import Settings
from hubcli.train.config import TrainConfig
from hubcli.train.images import ImageModality, load_image_folder
from hubcli.train.module_ref import ModuleRef
from hubcli.train.prefetch import Prefetch
module = ModuleRef.resolve({str(tiny_image_module)!r}, Settings.load(cache_dir={str(tmp_path / "cache")!r}, offline=True))
modality = ImageModality(module.info.image_size)
prefetch = Prefetch.start(load_image_folder({str(data_dir)!r}, 0.2, 0.2), modality, module=module, config=TrainConfig())
print(prefetch._process.pid, prefetch._folder, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    pid, folder = killed.stdout.split()
    deadline = time.monotonic() + 60
    while _alive(int(pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(int(pid)), "the helper outlived its run"
    assert not Path(folder).exists(), "the helper left its files behind"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has stopped; only its parent's reaping is missing.
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "\nState:\tZ" in status.read_text())


def test_a_helper_slower_than_the_run_leaves_the_run_unchanged(tiny_image_module, tmp_path, monkeypatch):
    """A helper still at work when the module is loaded: the run saves its serving model ahead, then fills in the head."""
    data_dir = make_image_dataset(tmp_path / "photos", per_class=12)
    module, modality, data = _setup(tiny_image_module, tmp_path / "slow", data_dir)
    rewrites = []
    real_rewrite = core.rewrite_serving_weights
    monkeypatch.setattr(core, "rewrite_serving_weights", lambda holder, path: rewrites.append(path) or real_rewrite(holder, path))
    # A helper that works for a while and delivers nothing: the run then extracts and fits everything itself.
    folder = tmp_path / "helper"
    folder.mkdir()
    slow = Prefetch(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(4)"]), folder)
    try:
        summary = _train(module, modality, data, tmp_path / "slow" / "run", slow)
    finally:
        slow.close()
    assert len(rewrites) == 1, "the serving model must have been saved ahead of the head"

    alone_module, alone_modality, alone_data = _setup(tiny_image_module, tmp_path / "alone", data_dir)
    alone = _train(alone_module, alone_modality, alone_data, tmp_path / "alone" / "run")
    assert _comparable(summary) == _comparable(alone)

    run = tmp_path / "slow" / "run"
    images = np.random.default_rng(2).random((5, *modality.image_size, 3)).astype(np.float32)
    served = _serving_probabilities(run, images)
    np.testing.assert_allclose(served, _keras_probabilities(run, images), atol=1e-6)
    np.testing.assert_array_equal(served, _serving_probabilities(tmp_path / "alone" / "run", images))
    # Session-based TF1 loaders restore through the SavedModel's own saver ops, from the rewritten checkpoint.
    import tensorflow as tf

    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        signature = tf.compat.v1.saved_model.load(session, ["serve"], str(run / "model")).signature_def["serving_default"]
        old_style = session.run(signature.outputs["probabilities"].name, {signature.inputs["images"].name: images})
    np.testing.assert_allclose(old_style, served, atol=1e-6)
    # The fingerprint hashes the checkpoint as it is now.
    from tensorflow.python.saved_model import fingerprinting_utils

    recorded = tf.saved_model.experimental.read_fingerprint(str(run / "model")).checkpoint_hash
    fingerprinting_utils.write_fingerprint(str(run / "model"))
    assert tf.saved_model.experimental.read_fingerprint(str(run / "model")).checkpoint_hash == recorded


def _broken_photo_in(data_dir: Path, split: str) -> str:
    """Add a truncated JPEG named so that the stable split puts it in ``split``; its key."""
    for index in range(200):
        key = f"blue_bars/broken-{index}.jpg"
        (data_dir / key).write_bytes(b"\xff\xd8\xff\xe0 truncated")
        if key in {example.key for example in getattr(load_image_folder(data_dir, 0.2, 0.2), split)}:
            return key
        (data_dir / key).unlink()
    raise AssertionError(f"no name lands in {split}")


# In the training split the helper never fits; in the test split it fits while extracting that split, then drops the head.
@pytest.mark.parametrize("split", ["train", "test"])
def test_unreadable_photos_are_reported_once_and_the_run_fits_its_own_head(tiny_image_module, tmp_path, split):
    data_dir = make_image_dataset(tmp_path / "photos", per_class=12)
    broken = _broken_photo_in(data_dir, split)
    module, modality, data = _setup(tiny_image_module, tmp_path / "with", data_dir)
    prefetch = Prefetch.start(data, modality, module=module, config=TrainConfig())
    assert prefetch is not None
    try:
        done = prefetch.result()
        assert done is not None and done.choice is None, "with unreadable photos the helper must leave the head to the run"
        with_helper = _train(module, modality, data, tmp_path / "with" / "run", prefetch)
    finally:
        prefetch.close()
    alone_module, alone_modality, alone_data = _setup(tiny_image_module, tmp_path / "alone", data_dir)
    alone = _train(alone_module, alone_modality, alone_data, tmp_path / "alone" / "run")
    assert [entry["key"] for entry in with_helper["skipped"]] == [broken]
    assert _comparable(with_helper) == _comparable(alone)


def test_the_helper_starts_only_where_it_can_help(tiny_image_module, tmp_path):
    data_dir = make_image_dataset(tmp_path / "photos", per_class=4)
    settings = Settings.load(cache_dir=tmp_path / "no-engine", offline=True)
    module = ModuleRef.resolve(str(tiny_image_module), settings)
    modality = ImageModality(module.info.image_size)
    data = load_image_folder(data_dir, 0.2, 0.2)
    assert Prefetch.start(data, modality, module=module, config=TrainConfig()) is None, "no accepted engine yet"

    module, modality, data = _setup(tiny_image_module, tmp_path, data_dir)
    assert Prefetch.start(data, modality, module=module, config=TrainConfig(fine_tune=True)) is None
    as_bytes = LabeledData(data.labels, train=[type(e)(e.key, e.label, Path(e.source).read_bytes(), e.split) for e in data.train])
    assert Prefetch.start(as_bytes, modality, module=module, config=TrainConfig()) is None


def test_retrain_images_with_the_helper_prints_only_its_document(tiny_image_module, tmp_path):
    data_dir = make_image_dataset(tmp_path / "photos", per_class=8)
    _cache_with_engine(tiny_image_module, tmp_path / "cache")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    done = run_hubcli(
        "retrain-images", data_dir, "--module", tiny_image_module, "--cache-dir", tmp_path / "cache", "--offline", "--json", "--output", tmp_path / "run",
        env={"TMPDIR": str(scratch)},
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["extraction"]["features_computed"] == sum(summary["splits"].values())
    assert summary["extraction"]["engine"] == "tflite-xnnpack"
    assert done.stderr == ""
    assert list(scratch.iterdir()) == [], "the helper's files must be gone"
