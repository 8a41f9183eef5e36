"""``--distribute``: fine-tuning on two replicas (two logical CPUs) and on two workers (two processes on 127.0.0.1)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from hubcli.train.distributed import cluster_role
from tests.helpers import tiny_modules
from tests.helpers.cli_run import HUBCLI, error_line, run_hubcli
from tests.helpers.synthetic_images import make_image_dataset

#: Fine-tuning options every run here shares: two steps of 8 per epoch, no dropout (its masks
#: depend on how a batch is split over replicas), early stopping out of the way.
TRAINING = ["--epochs", "3", "--fine-tune", "--fine-tune-epochs", "2", "--batch-size", "8", "--dropout", "0", "--patience", "5", "--json", "--offline"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return make_image_dataset(tmp_path_factory.mktemp("distributed") / "photos", per_class=8)


@pytest.fixture(scope="module")
def module_without_batch_norm(tmp_path_factory):
    return tiny_modules.build_image_module(tmp_path_factory.mktemp("modules") / "no_bn", batch_norm=False)


def _train_on_devices(devices: int, photos, module, output, cache) -> dict:
    """retrain-images with --distribute mirrored over ``devices`` logical CPUs."""
    command = [sys.executable, "-m", "tests.helpers.split_cpu", str(devices), "retrain-images", photos, "--module", module]
    command += ["--output", output, "--cache-dir", cache, "--distribute", "mirrored", *TRAINING]
    done = subprocess.run(list(map(str, command)), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _weights(run) -> list[np.ndarray]:
    import keras

    from hubcli.train import layer  # noqa: F401 - registers hubcli>HubLayer for load_model

    return keras.models.load_model(run / "model.keras").get_weights()


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for probe in sockets:
        probe.bind(("127.0.0.1", 0))
    ports = [probe.getsockname()[1] for probe in sockets]
    for probe in sockets:
        probe.close()
    return ports


@pytest.mark.slow
def test_two_replicas_and_two_workers_train_the_same_weights(photos, tiny_image_module, tmp_path):
    mirrored = _train_on_devices(2, photos, tiny_image_module, tmp_path / "mirrored", tmp_path / "cache")
    assert mirrored["fine_tuned"]

    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    processes = []
    for index in range(2):
        tf_config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        command = [*HUBCLI, "retrain-images", photos, "--module", tiny_image_module, "--output", tmp_path / f"worker{index}"]
        command += ["--cache-dir", tmp_path / "cache", "--distribute", "multi-worker", *TRAINING]
        env = {**os.environ, "TF_CONFIG": tf_config}
        processes.append(subprocess.Popen(list(map(str, command)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
    outcomes = [process.communicate(timeout=600) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], [err for _, err in outcomes]
    chief, other = (json.loads(out) for out, _ in outcomes)
    # Only the chief (worker 0) writes the run.
    assert chief["output"] == str(tmp_path / "worker0") and other["output"] is None
    assert not (tmp_path / "worker1").exists()
    assert (chief["epochs_run"], chief["confusion_matrix"]) == (other["epochs_run"], other["confusion_matrix"])

    for mine, theirs in zip(_weights(tmp_path / "mirrored"), _weights(tmp_path / "worker0"), strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-6)


@pytest.mark.slow
def test_without_batch_norm_two_replicas_match_one_device(photos, module_without_batch_norm, tiny_image_module, tmp_path):
    _train_on_devices(1, photos, module_without_batch_norm, tmp_path / "one", tmp_path / "cache")
    _train_on_devices(2, photos, module_without_batch_norm, tmp_path / "two", tmp_path / "cache")
    one, two = (json.loads((tmp_path / run / "metrics.json").read_text())["history"] for run in ("one", "two"))
    assert one["loss"] == pytest.approx(two["loss"], abs=1e-5)
    for single, split in zip(_weights(tmp_path / "one"), _weights(tmp_path / "two"), strict=True):
        np.testing.assert_allclose(single, split, rtol=0, atol=1e-6)

    # With batch norm, each replica normalises by its own half of the batch: the caveat the README states.
    _train_on_devices(1, photos, tiny_image_module, tmp_path / "bn_one", tmp_path / "cache")
    _train_on_devices(2, photos, tiny_image_module, tmp_path / "bn_two", tmp_path / "cache")
    largest = max(float(np.abs(a - b).max()) for a, b in zip(_weights(tmp_path / "bn_one"), _weights(tmp_path / "bn_two"), strict=True))
    assert largest > 1e-4


@pytest.mark.slow
def test_a_text_classifier_fine_tunes_on_two_replicas_as_on_one_device(tiny_text_module, tmp_path):
    from tests.helpers import text_corpus

    sentences = text_corpus.write_tab_lines(tmp_path / "reviews.txt", text_corpus.corpus(per_class=12))
    for devices in (1, 2):
        command = [sys.executable, "-m", "tests.helpers.split_cpu", str(devices), "classify-text", sentences, "--module", tiny_text_module]
        command += ["--output", tmp_path / f"run{devices}", "--cache-dir", tmp_path / "cache", "--distribute", "mirrored", *TRAINING]
        done = subprocess.run(list(map(str, command)), capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
    for single, split in zip(_weights(tmp_path / "run1"), _weights(tmp_path / "run2"), strict=True):
        np.testing.assert_allclose(single, split, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("options", "env", "expected"),
    [
        (["--distribute", "mirrored"], {}, "--distribute spreads fine-tuning over devices or machines; add --fine-tune"),
        (["--distribute", "everywhere", "--fine-tune"], {}, "unknown --distribute 'everywhere'; choose from mirrored, multi-worker"),
        (["--distribute", "multi-worker", "--fine-tune"], {"TF_CONFIG": ""}, "--distribute multi-worker needs TF_CONFIG"),
        (["--distribute", "multi-worker", "--fine-tune"], {"TF_CONFIG": "{cluster"}, "TF_CONFIG is not JSON"),
        (["--distribute", "multi-worker", "--fine-tune"], {"TF_CONFIG": '{"cluster": {}}'}, 'TF_CONFIG needs "cluster" and "task"'),
    ],
)
def test_a_distribution_that_cannot_work_is_one_line(photos, tiny_image_module, tmp_path, options, env, expected):
    process = run_hubcli(
        "retrain-images", photos, "--module", tiny_image_module, "--cache-dir", tmp_path / "cache", "--output", tmp_path / "run", *options, env=env
    )
    assert expected in error_line(process, 2, alone=True)
    assert not (tmp_path / "run").exists()


def test_the_chief_is_the_chief_task_or_else_worker_zero():
    workers = {"worker": ["a:1", "b:1"]}
    assert cluster_role({}).chief
    assert cluster_role({"cluster": workers, "task": {"type": "worker", "index": 0}}).chief
    assert not cluster_role({"cluster": workers, "task": {"type": "worker", "index": 1}}).chief
    with_chief = {"cluster": {**workers, "chief": ["c:1"]}, "task": {"type": "worker", "index": 0}}
    assert not cluster_role(with_chief).chief and cluster_role(with_chief).workers == 3
    assert cluster_role({**with_chief, "task": {"type": "chief", "index": 0}}).chief


def test_a_batch_that_does_not_split_evenly_over_the_replicas_is_one_line(photos, tiny_image_module, tmp_path):
    command = [sys.executable, "-m", "tests.helpers.split_cpu", "2", "retrain-images", photos, "--module", tiny_image_module]
    command += ["--cache-dir", tmp_path / "cache", "--output", tmp_path / "run", "--fine-tune", "--distribute", "mirrored", "--batch-size", "7"]
    process = subprocess.run(list(map(str, command)), capture_output=True, text=True, timeout=300)
    assert "--batch-size 7 does not split evenly over 2 replicas; use a multiple of 2" in error_line(process, 2)
    assert not (tmp_path / "run").exists()
