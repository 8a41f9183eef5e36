"""`hubcli export-module` and `hubcli publish`: archives others can pull, inspect and retrain."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest

from tests.helpers import synthetic_images
from tests.helpers.cli_run import error_line, run_hubcli

pytestmark = pytest.mark.slow


def test_archive_is_deterministic_with_the_module_at_its_root(tiny_image_module, tmp_path):
    from hubcli.export.module import export_module
    from hubcli.fsio import sha256_file

    first = export_module(tiny_image_module, output=tmp_path / "a" / "tiny.tar.gz", name="acme/tiny", license="Apache-2.0")
    second = export_module(tiny_image_module, output=tmp_path / "b" / "tiny.tar.gz", name="acme/tiny")
    assert first.archive.read_bytes() == second.archive.read_bytes()
    assert first.metadata["sha256"] == sha256_file(first.archive) == second.metadata["sha256"]
    with tarfile.open(first.archive) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names) and "saved_model.pb" in names and "variables/variables.index" in names
    assert all(not n.startswith(("/", "./")) for n in names)
    assert {(m.mtime, m.uid, m.gid) for m in members} == {(0, 0, 0)}

    meta = json.loads(first.metadata_path.read_text())
    assert first.metadata_path.name == "tiny.json"
    assert (meta["name"], meta["version"], meta["task"], meta["license"]) == ("acme/tiny", "1", "image-feature-vector", "Apache-2.0")
    assert (meta["image_size"], meta["output_dim"], meta["input"]) == ([32, 32], 8, "image")
    assert meta["module"]["format"] == "tf2_saved_model" and meta["module"]["signatures"][0]["key"] == "serving_default"
    assert meta["provenance"]["source"] == str(tiny_image_module.resolve())


def test_publish_discover_and_immutability(tiny_image_module, tiny_text_module, tmp_path):
    from hubcli.export.module import export_module

    registry = tmp_path / "registry"
    image = export_module(tiny_image_module, output=tmp_path / "tiny-image.tar.gz", name="acme/tiny-image", description="tiny colour grid")
    text = export_module(tiny_text_module, output=tmp_path / "tiny-text.tar.gz", name="acme/tiny-text", version="3")
    for packed in (image, text):
        done = run_hubcli("publish", packed.archive, "--registry", registry, "--json")
        assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert (document["name"], document["version"]) == ("acme/tiny-text", "3")
    assert document["handle"] == "https://tfhub.dev/acme/tiny-text/3"

    listed = json.loads(run_hubcli("list", "--registry", registry, "--json").stdout)
    by_name = {e["name"]: e for e in listed["entries"]}
    assert set(by_name) == {"acme/tiny-image", "acme/tiny-text"}
    assert by_name["acme/tiny-text"]["task"] == "text-embedding"
    found = json.loads(run_hubcli("search", "colour", "--registry", registry, "--json").stdout)
    assert [e["name"] for e in found["entries"]] == ["acme/tiny-image"]

    index_before = (registry / "index.json").read_bytes()
    again = run_hubcli("publish", image.archive, "--registry", registry)
    assert again.returncode == 2 and "immutable" in error_line(again)
    assert (registry / "index.json").read_bytes() == index_before

    remote = run_hubcli("publish", image.archive, "--registry", "http://127.0.0.1:9/hub", "--version", "2")
    assert remote.returncode == 2 and "directory" in error_line(remote)


def _tar_gz(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_publish_refuses_what_pull_would_refuse(tmp_path):
    registry = tmp_path / "registry"
    not_module = _tar_gz(tmp_path / "readme.tar.gz", {"README.md": b"no model here"})
    refused = run_hubcli("publish", not_module, "--registry", registry, "--name", "acme/readme", "--version", "1")
    assert refused.returncode == 7 and "not a module" in error_line(refused)

    escaping = _tar_gz(tmp_path / "escape.tar.gz", {"saved_model.pb": b"", "../../escaped.txt": b"gotcha"})
    unsafe = run_hubcli("publish", escaping, "--registry", registry, "--name", "acme/escape", "--version", "1")
    assert unsafe.returncode == 6 and "refusing to publish" in error_line(unsafe)
    assert not (tmp_path / "escaped.txt").exists()

    unnamed = run_hubcli("publish", not_module, "--registry", registry)
    assert unnamed.returncode == 2 and "--name" in error_line(unnamed)
    assert not (registry / "index.json").exists()


def test_publish_checks_the_metadata_it_publishes(tiny_image_module, tiny_text_module, tmp_path):
    import shutil

    from hubcli.export.module import export_module

    image = export_module(tiny_image_module, output=tmp_path / "image.tar.gz", name="acme/image")
    text = export_module(tiny_text_module, output=tmp_path / "text.tar.gz", name="acme/text")
    registry = tmp_path / "registry"
    shutil.copyfile(text.archive, image.archive)  # the archive no longer matches its metadata
    swapped = run_hubcli("publish", image.archive, "--registry", registry)
    assert swapped.returncode == 5 and "sha256" in error_line(swapped)

    ownerless = run_hubcli("publish", text.archive, "--registry", registry, "--name", "text")
    assert ownerless.returncode == 2 and "owner/model" in error_line(ownerless)
    assert not (registry / "index.json").exists()


def test_feature_vector_round_trip_export_publish_pull_inspect_retrain(image_run, tiny_image_module, tmp_path, monkeypatch):
    import keras
    import tensorflow as tf

    from hubcli.config import Settings
    from hubcli.export.module import export_module
    from hubcli.hub.publish import publish_module
    from hubcli.hub.pull import pull
    from hubcli.savedmodel.inspector import inspect_module
    from hubcli.train.config import TrainConfig
    from hubcli.train.images import retrain_images
    from hubcli.train.layer import HubLayer

    packed = export_module(image_run, output=tmp_path / "tuned.tar.gz", name="acme/tuned", version="1", as_="feature-vector")
    assert packed.metadata["task"] == "image-feature-vector" and packed.metadata["provenance"]["run"] == str(image_run.resolve())
    registry = tmp_path / "registry"
    published = publish_module(packed.archive, str(registry))

    settings = Settings.load(cache_dir=tmp_path / "cache", offline=False, mirror=str(registry))
    pulled = pull(published.handle, settings=settings, progress=False)
    assert pulled.sha256 == packed.metadata["sha256"]
    info = inspect_module(pulled.path)
    assert info.image_size == (32, 32) and info.output_dim == 8
    variants = " ".join(c.describe() for c in info.call_input_specs)
    assert "training=True" in variants and "training=False" in variants

    # The module carries the run's fine-tuned weights: it computes the run's features, not the original's.
    samples = tf.constant(np.load(image_run / "representative.npz")["inputs"][:16])
    run_model = keras.models.load_model(image_run / "model.keras")
    (run_encoder,) = [layer for layer in run_model.layers if isinstance(layer, HubLayer)]
    shared = tf.saved_model.load(str(pulled.path))
    np.testing.assert_allclose(shared(samples, training=False).numpy(), run_encoder(samples).numpy(), atol=1e-5)
    original = tf.saved_model.load(str(tiny_image_module))
    assert not np.allclose(shared(samples, training=False).numpy(), original(samples, training=False).numpy(), atol=1e-4)
    assert len(shared.trainable_variables) == 4 and len(shared.regularization_losses) == 1

    data = synthetic_images.make_image_dataset(tmp_path / "data", per_class=12, seed=5)
    config = TrainConfig(epochs=30, learning_rate=0.05)
    summary = retrain_images(data, published.handle, settings=settings, config=config, output=tmp_path / "again")
    assert summary["accuracy"] >= 0.9

    # Exporting needs no --cache-dir/--mirror again: the run knows where its module was pulled to.
    from hubcli.export.artifacts import export_run

    monkeypatch.setenv("HUBCLI_CACHE_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("HUBCLI_OFFLINE", "1")
    assert export_run(tmp_path / "again", "keras").agreement.top1_agreement == 1.0


def test_classification_module_reproduces_the_run(image_run, tmp_path):
    import tensorflow as tf

    from hubcli.export.module import export_module

    packed = export_module(image_run, output=tmp_path / "classifier.tar.gz", name="acme/classifier", as_="classification")
    assert (packed.metadata["task"], packed.metadata["output_dim"]) == ("image-classification", 3)
    module_dir = tmp_path / "module"
    with tarfile.open(packed.archive) as tar:
        tar.extractall(module_dir, filter="data")
    labels = (image_run / "labels.txt").read_text().split()
    assert (module_dir / "assets" / "labels.txt").read_text().split() == labels

    samples = tf.constant(np.load(image_run / "representative.npz")["inputs"][:16])
    module = tf.saved_model.load(str(module_dir))
    served = tf.saved_model.load(str(image_run / "model")).signatures["serving_default"]
    expected = served(images=samples)["probabilities"].numpy()
    np.testing.assert_allclose(module(samples, training=False).numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(module.signatures["serving_default"](images=samples)["probabilities"].numpy(), expected, atol=1e-5)


def test_a_full_disk_is_one_clear_error_and_leaves_nothing(tiny_image_module, tmp_path):
    from hubcli.export.module import export_module
    from hubcli.fsio import DiskFullError
    from tests.helpers.disk_full import file_size_limit

    target = tmp_path / "out" / "tiny.tar.gz"
    with file_size_limit(1024), pytest.raises(DiskFullError, match=f"cannot write {target}: File too large"):
        export_module(tiny_image_module, output=target, name="acme/tiny")
    assert list((tmp_path / "out").iterdir()) == []
