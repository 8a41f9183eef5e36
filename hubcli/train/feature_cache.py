"""On-disk cache of frozen-module features: the reason a re-run costs seconds.

A feature depends only on (module content, example content, preprocessing),
so that triple is its key; data paths, labels, splits and head settings are
not. Re-runs, other heads and hyper-parameter sweeps over the same module
therefore never run the module again for an example they have seen.

Layout, under ``<cache dir>/features/`` (beside the modules)::

    <module content digest[:32]>/<sha1(preprocessing)[:16]>/   (hubcli.savedmodel.inspector.content_digest)
        preprocessing.txt              the preprocessing id, for people
        shard-<sha256(keys)[:32]>.npy  float32 [n, dim] features
        shard-<sha256(keys)[:32]>.keys n lines: the example keys, row order

A shard is written through :mod:`hubcli.fsio` (temp file, fsync, rename); its ``.keys``
file is renamed last, so readers (other runs, concurrently) only ever see complete
shards, and an interrupted extraction keeps the shards it finished. A shard is named by
its keys, so writing the same features again (a retried pipeline bundle, another
process) replaces a file with the same bytes instead of adding one.

Example:
    >>> cache = FeatureCache(Path("/tmp/features"), content_digest(module_dir), "image-v1-224x224")  # doctest: +SKIP
    >>> cache.put(["k1", "k2"], np.zeros((2, 1280), np.float32))  # doctest: +SKIP
    >>> found, missing = cache.get(["k1", "k3"])  # doctest: +SKIP
    >>> sorted(found), missing  # doctest: +SKIP
    (['k1'], ['k3'])
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hubcli import console
from hubcli.fsio import atomic_write, write_text_atomic


def features_root(cache_dir: str | os.PathLike) -> Path:
    """Where features live for a module cache directory (``hubcli.Settings.cache_dir``)."""
    return Path(cache_dir) / "features"


def cache_subdirectory(module_digest: str, preprocessing: str) -> str:
    """The folder, below the features root, of one (module, preprocessing) pair.

    Example:
        >>> cache_subdirectory("sha256:" + "ab" * 32, "image-v1-32x32")
        'abababababababababababababababab/6dc48a449cd3d4fd'
    """
    # Digests may carry an algorithm prefix ("sha256:..."); the directory name is hex only.
    return f"{module_digest.split(':')[-1][:32]}/{hashlib.sha1(preprocessing.encode()).hexdigest()[:16]}"


def shard_stem(keys: Sequence[str]) -> str:
    """A shard's file name without suffix: a hash of its keys, so the same shard gets the same name.

    Example:
        >>> shard_stem(["k1", "k2"]) == shard_stem(["k1", "k2"]) != shard_stem(["k1"])
        True
    """
    return "shard-" + hashlib.sha256("".join(f"{key}\n" for key in keys).encode("utf-8")).hexdigest()[:32]


class FeatureCache:
    """Features of one (module, preprocessing) pair, keyed by example content keys."""

    def __init__(self, root: str | os.PathLike, module_digest: str, preprocessing: str):
        self.directory = Path(root) / cache_subdirectory(module_digest, preprocessing)
        self.preprocessing = preprocessing
        self._index: dict[str, tuple[str, int]] | None = None
        self._unwritable = False

    def _load_index(self) -> dict[str, tuple[str, int]]:
        if self._index is None:
            self._index = {}
            if self.directory.is_dir():
                for keys_file in sorted(self.directory.glob("shard-*.keys")):
                    shard = keys_file.with_suffix(".npy").name
                    if not (self.directory / shard).is_file():
                        # A writer that failed removed the matrix another writer of the same shard had just put there.
                        continue
                    for row, key in enumerate(keys_file.read_text("utf-8").splitlines()):
                        self._index[key] = (shard, row)
        return self._index

    @property
    def writable(self) -> bool:
        """False once a write failed (disk full, read-only): the cache then only reads."""
        return not self._unwritable

    def __len__(self) -> int:
        return len(self._load_index())

    def get(self, keys: Sequence[str]) -> tuple[dict[str, np.ndarray], list[str]]:
        """Features found (key -> vector) and the keys that are missing, in input order."""
        index = self._load_index()
        by_shard: dict[str, list[tuple[str, int]]] = {}
        missing = []
        for key in dict.fromkeys(keys):
            location = index.get(key)
            if location is None:
                missing.append(key)
            else:
                by_shard.setdefault(location[0], []).append((key, location[1]))
        found = {}
        for shard, entries in by_shard.items():
            matrix = np.load(self.directory / shard, mmap_mode="r")
            rows = np.asarray([row for _, row in entries])
            values = np.asarray(matrix[rows], dtype=np.float32)
            found.update((key, values[i]) for i, (key, _) in enumerate(entries))
        return found, missing

    def put(self, keys: Sequence[str], features: np.ndarray) -> None:
        """Store one shard: the .npy first, then its .keys, each via a rename.

        A cache that cannot be written (disk full, read-only) only costs speed, so it
        is one warning and the caller goes on without storing, never a failed run.
        """
        if len(keys) == 0 or self._unwritable:
            return
        try:
            self.write_shard(keys, features)
        except OSError as err:
            self._unwritable = True
            console.warn(f"feature cache {self.directory} cannot be written ({err.strerror or err}); continuing without caching")

    def write_shard(self, keys: Sequence[str], features: np.ndarray) -> str:
        """Write one shard (the .npy, then its .keys) and index it; returns its .npy name. Raises OSError.

        A .npy whose .keys never arrived is invisible to readers, so a failure leaves the cache valid.
        """
        features = np.asarray(features, dtype=np.float32)
        if features.shape[0] != len(keys):
            raise ValueError(f"{len(keys)} keys for {features.shape[0]} feature rows")
        stem = shard_stem(keys)
        self.directory.mkdir(parents=True, exist_ok=True)
        note = self.directory / "preprocessing.txt"
        if not note.exists():
            write_text_atomic(note, self.preprocessing + "\n")
        try:
            with atomic_write(self.directory / f"{stem}.npy", "wb") as matrix:
                np.save(matrix, features)
            write_text_atomic(self.directory / f"{stem}.keys", "".join(f"{key}\n" for key in keys))
        except OSError:
            # Free the space of a matrix whose keys never arrived (unless another writer's keys did).
            if not (self.directory / f"{stem}.keys").exists():
                (self.directory / f"{stem}.npy").unlink(missing_ok=True)
            raise
        if self._index is not None:
            self._index.update((key, (f"{stem}.npy", row)) for row, key in enumerate(keys))
        return f"{stem}.npy"

    def locate(self, keys: Sequence[str]) -> list[tuple[str, int] | None]:
        """Where each key's features are: ``(shard .npy name, row)``, or None when not cached."""
        index = self._load_index()
        return [index.get(key) for key in keys]
