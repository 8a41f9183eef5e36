"""Feature-cache shards written by pipeline workers: large, atomic, named by their content.

A million images must not mean a file per 32-image batch, so features are grouped into
buckets of about ``rows_per_shard`` by their content hash (the same hash always lands in
the same bucket for the same number of buckets) and each bucket becomes one shard, its
rows sorted by key. The shard's name is a hash of its keys, so a retried bundle rewrites
the same file with the same bytes: retries are idempotent. The layout is the local feature
cache's (:mod:`hubcli.train.feature_cache`), so ``retrain-images`` reads these shards as
its own. On a local disk a shard is written through :mod:`hubcli.fsio` (temp file, fsync,
rename; its ``.keys`` last); on object stores (``gs://``...) an object appears only once
complete, and the ``.keys`` object is again written last.

Example:
    >>> bucket_count(1_000_000, rows_per_shard=8192)
    123
    >>> bucket_of("ab" * 32, 123) == bucket_of("ab" * 32, 123)
    True
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

from hubcli.scale.sources import is_url
from hubcli.train.feature_cache import FeatureCache, cache_subdirectory, shard_stem

#: Rows per shard by default: 8,192 x 1,280 float32 features is a 42 MB shard, 123 shards per million images.
ROWS_PER_SHARD = 8192


def bucket_count(examples: int, *, rows_per_shard: int = ROWS_PER_SHARD) -> int:
    """How many shards ``examples`` features make (at least one)."""
    return max(1, -(-examples // rows_per_shard))


def bucket_of(key: str, buckets: int) -> int:
    """The shard bucket of a content-hash key: stable for a given number of buckets."""
    return int(key[:15], 16) % buckets


def write_shard(*, features_root: str, module_digest: str, preprocessing: str, keys: Sequence[str], features: np.ndarray) -> str:
    """Write one shard of ``keys`` (rows of ``features``) under ``features_root``; returns its name."""
    order = np.argsort(np.asarray(keys))
    keys = [keys[i] for i in order]
    features = np.asarray(features, dtype=np.float32)[order]
    if not is_url(features_root):
        cache = FeatureCache(features_root.removeprefix("file://"), module_digest, preprocessing)
        return cache.write_shard(keys, features)
    from apache_beam.io.filesystems import FileSystems

    directory = f"{features_root.rstrip('/')}/{cache_subdirectory(module_digest, preprocessing)}"
    stem = shard_stem(keys)
    matrix = io.BytesIO()
    np.save(matrix, features)
    note = f"{directory}/preprocessing.txt"
    if not FileSystems.exists(note):
        _write_object(note, preprocessing.encode("utf-8") + b"\n")
    _write_object(f"{directory}/{stem}.npy", matrix.getvalue())
    _write_object(f"{directory}/{stem}.keys", "".join(f"{key}\n" for key in keys).encode("utf-8"))
    return f"{stem}.npy"


def _write_object(url: str, data: bytes) -> None:
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.create(url) as stream:
        stream.write(data)
