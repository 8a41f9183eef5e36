"""The feature cache: keyed by (module content, example content, preprocessing); atomic shards."""

from __future__ import annotations

import numpy as np

from hubcli.train.feature_cache import FeatureCache
from tests.helpers.disk_full import file_size_limit


def test_put_then_get_in_a_new_instance(tmp_path):
    cache = FeatureCache(tmp_path, "d" * 64, "image-v1-32x32")
    features = np.arange(12, dtype=np.float32).reshape(3, 4)
    cache.put(["a", "b", "c"], features)
    cache.put(["d"], np.ones((1, 4), np.float32))
    reopened = FeatureCache(tmp_path, "d" * 64, "image-v1-32x32")
    found, missing = reopened.get(["c", "x", "a", "d"])
    assert missing == ["x"]
    np.testing.assert_array_equal(found["c"], features[2])
    np.testing.assert_array_equal(found["a"], features[0])
    np.testing.assert_array_equal(found["d"], np.ones(4))
    assert len(reopened) == 4
    # Only complete shards and the note remain: no temporary files.
    names = sorted(p.name for p in reopened.directory.iterdir())
    assert all(n.endswith((".npy", ".keys")) or n == "preprocessing.txt" for n in names)


def test_other_module_or_preprocessing_never_shares_features(tmp_path):
    FeatureCache(tmp_path, "a" * 64, "image-v1-32x32").put(["k"], np.zeros((1, 2), np.float32))
    assert FeatureCache(tmp_path, "b" * 64, "image-v1-32x32").get(["k"])[1] == ["k"]
    assert FeatureCache(tmp_path, "a" * 64, "image-v1-64x64").get(["k"])[1] == ["k"]


def test_a_shard_without_its_keys_file_is_ignored(tmp_path):
    cache = FeatureCache(tmp_path, "a" * 64, "p")
    cache.put(["k"], np.zeros((1, 2), np.float32))
    # As if a writer died between the .npy and its .keys: that shard does not exist yet.
    np.save(cache.directory / "shard-orphan.npy", np.ones((1, 2), np.float32))
    found, missing = FeatureCache(tmp_path, "a" * 64, "p").get(["k"])
    assert list(found) == ["k"] and missing == []


def test_a_cache_that_cannot_be_written_warns_once_and_keeps_nothing_partial(tmp_path, capsys):
    cache = FeatureCache(tmp_path, "d" * 64, "image-v1-32x32")
    with file_size_limit(256):
        cache.put(["a"], np.ones((1, 4), np.float32))  # fits
        cache.put(["b", "c"], np.ones((2, 1024), np.float32))  # 8 KB: the "disk" is full
        cache.put(["d", "e"], np.ones((2, 1024), np.float32))
    warnings = [line for line in capsys.readouterr().err.splitlines() if "feature cache" in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning:")
    found, missing = FeatureCache(tmp_path, "d" * 64, "image-v1-32x32").get(["a", "b", "d"])
    assert list(found) == ["a"] and missing == ["b", "d"]
    assert sorted(p.suffix for p in cache.directory.iterdir() if p.name.startswith("shard-")) == [".keys", ".npy"]


def test_the_same_shard_written_twice_is_one_file(tmp_path):
    features = np.arange(8, dtype=np.float32).reshape(2, 4)
    first = FeatureCache(tmp_path, "d" * 64, "p").write_shard(["a", "b"], features)
    again = FeatureCache(tmp_path, "d" * 64, "p").write_shard(["a", "b"], features)
    other = FeatureCache(tmp_path, "d" * 64, "p").write_shard(["c"], features[:1])
    assert first == again != other
    assert len(list(FeatureCache(tmp_path, "d" * 64, "p").directory.glob("shard-*.npy"))) == 2


def test_locate_names_the_shard_and_row_of_each_key(tmp_path):
    cache = FeatureCache(tmp_path, "d" * 64, "p")
    name = cache.write_shard(["a", "b"], np.zeros((2, 3), np.float32))
    assert FeatureCache(tmp_path, "d" * 64, "p").locate(["b", "zz", "a"]) == [(name, 1), None, (name, 0)]


def test_keys_without_their_matrix_are_not_a_shard(tmp_path):
    cache = FeatureCache(tmp_path, "d" * 64, "p")
    name = cache.write_shard(["a"], np.ones((1, 2), np.float32))
    (cache.directory / name).unlink()
    assert FeatureCache(tmp_path, "d" * 64, "p").get(["a"]) == ({}, ["a"])
