"""Training the head from the feature cache's shards when the features exceed the memory budget."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hubcli.errors import UsageError
from hubcli.train.feature_cache import FeatureCache
from hubcli.train.feature_stream import ShardedFeatures, parse_memory, should_stream
from tests.helpers.cli_run import error_line, run_hubcli
from tests.helpers.synthetic_images import make_image_dataset

DIM = 6


def _cached_rows(tmp_path, sizes=(5, 3, 4), seed=0):
    """Shards of the given sizes in a feature cache; every row's features and location."""
    rng = np.random.default_rng(seed)
    cache = FeatureCache(tmp_path, "d" * 64, "p")
    features, locations = [], []
    for number, size in enumerate(sizes):
        keys = [f"{number}-{row}" for row in range(size)]
        matrix = rng.standard_normal((size, DIM)).astype(np.float32)
        name = cache.write_shard(keys, matrix)
        features.extend(matrix)
        locations.extend((name, row) for row in range(size))
    # Rows in another order than the shards hold them, as a run's examples would be.
    order = rng.permutation(len(locations))
    return cache, np.asarray(features)[order], [locations[i] for i in order]


def test_every_row_comes_once_with_its_position_in_chunks_of_the_budget(tmp_path):
    cache, features, locations = _cached_rows(tmp_path)
    source = ShardedFeatures(cache.directory, locations, dim=DIM, chunk_bytes=4 * DIM * 4)
    chunks = list(source.chunks(np.random.default_rng(1)))
    assert [len(x) for x, _ in chunks] == [4, 4, 4]
    assert sorted(int(p) for _, positions in chunks for p in positions) == list(range(len(features)))
    for x, positions in chunks:
        np.testing.assert_array_equal(x, features[positions])
    # The shards come in another order every epoch.
    orders = {tuple(tuple(x[0]) for x, _ in source.chunks(np.random.default_rng(seed))) for seed in range(6)}
    assert len(orders) > 1


def test_when_everything_fits_one_chunk_it_is_the_in_memory_matrix(tmp_path):
    cache, features, locations = _cached_rows(tmp_path)
    ((x, positions),) = ShardedFeatures(cache.directory, locations, dim=DIM, chunk_bytes=1 << 20).chunks(np.random.default_rng(0))
    np.testing.assert_array_equal(x, features)
    assert positions.tolist() == list(range(len(features)))


@pytest.mark.parametrize("text", ["lots", "0", "-1G", "4X", ""])
def test_a_memory_budget_must_be_a_size(text):
    with pytest.raises(UsageError, match="--max-memory"):
        parse_memory(text)


def test_the_budget_decides_between_memory_and_streaming():
    assert not should_stream(rows=1000, dim=1280, max_memory=parse_memory("8G"))
    assert should_stream(rows=1_000_000, dim=1280, max_memory=parse_memory("8G"))  # 5 GB of features, held three times


def _separable(rows: int, seed: int):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, rows)
    centres = np.eye(3, DIM, dtype=np.float32) * 4
    return (centres[labels] + rng.standard_normal((rows, DIM)).astype(np.float32)), labels


@pytest.mark.slow
def test_a_head_trained_chunk_by_chunk_learns_as_in_memory(tmp_path):
    import keras

    from hubcli.train.config import TrainConfig
    from hubcli.train.head import build_head, fit_head, one_hot, predict_features

    cache = FeatureCache(tmp_path, "d" * 64, "p")
    x, y = _separable(600, seed=0)
    x_val, y_val = _separable(150, seed=1)
    locations = []
    for start in range(0, 750, 50):  # 15 shards of 50 rows
        rows = np.concatenate([x, x_val])[start : start + 50]
        name = cache.write_shard([f"k{start + i}" for i in range(len(rows))], rows)
        locations.extend((name, i) for i in range(len(rows)))
    config = TrainConfig(epochs=15)
    streamed = [ShardedFeatures(cache.directory, part, dim=DIM, chunk_bytes=120 * DIM * 4) for part in (locations[:600], locations[600:])]
    accuracies = {}
    for name, (train, validation) in {"memory": (x, x_val), "streamed": streamed}.items():
        keras.utils.set_random_seed(0)
        head = build_head(DIM, 3, config)
        history = fit_head(head, (train, one_hot(y, 3)), (validation, one_hot(y_val, 3)), config=config)
        accuracies[name] = float(np.mean(predict_features(head, validation).argmax(1) == y_val))
        assert history["val_loss"][-1] < history["val_loss"][0]
    assert accuracies["streamed"] > 0.9 and abs(accuracies["streamed"] - accuracies["memory"]) < 0.05


@pytest.mark.slow
def test_retrain_images_under_a_small_budget_streams_and_trains_the_same_head(tiny_image_module, tmp_path):
    photos = make_image_dataset(tmp_path / "photos", per_class=8)

    def run(name, *extra):
        process = run_hubcli(
            "retrain-images", photos, "--module", tiny_image_module, "--cache-dir", tmp_path / "cache", "--offline",
            "--output", tmp_path / name, "--epochs", "6", "--json", *extra,
        )
        assert process.returncode == 0, process.stderr
        return json.loads(process.stdout), json.loads((tmp_path / name / "metrics.json").read_text())

    in_memory, in_memory_metrics = run("memory", "--head", "fixed")
    streamed, streamed_metrics = run("streamed", "--head", "fixed", "--max-memory", "1M")
    assert (in_memory["extraction"]["streamed_from_cache"], streamed["extraction"]["streamed_from_cache"]) == (False, True)
    assert streamed["extraction"]["features_computed"] == 0
    assert streamed_metrics["history"] == in_memory_metrics["history"]
    assert (streamed["accuracy"], streamed["confusion_matrix"]) == (in_memory["accuracy"], in_memory["confusion_matrix"])
    # The default head cross-validates on features in memory: past the budget the fixed head streams instead.
    default, _ = run("default", "--max-memory", "1M")
    assert default["head"] == "fixed" and default["extraction"]["streamed_from_cache"]


def test_a_bad_budget_is_one_line(tiny_image_module, tmp_path):
    photos = make_image_dataset(tmp_path / "photos", per_class=2)
    process = run_hubcli("retrain-images", photos, "--module", tiny_image_module, "--cache-dir", tmp_path / "cache", "--max-memory", "plenty")
    assert "--max-memory 'plenty'" in error_line(process, 2, alone=True)
