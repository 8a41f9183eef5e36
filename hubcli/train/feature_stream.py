"""Features for the head in chunks: all of them in memory, or streamed from the cache's shards.

The head trains on whatever :class:`FeatureSource` hands it, one chunk ``(x, y)`` at a time:
:class:`InMemoryFeatures` is one chunk holding every row (the usual case), and
:class:`ShardedFeatures` reads rows straight from the feature cache's ``.npy`` shards,
memory-mapped, a few shards per chunk, so a million cached features train a head within a
memory budget. Each mapping is dropped once its rows are copied out, so the pages it
touched stop counting towards the process's resident memory. Shuffling is two-level when
streaming: the order of the shards (here), then the rows within a chunk (the trainer).

Example:
    >>> source = InMemoryFeatures(np.eye(3, dtype=np.float32))
    >>> [(x.shape, positions.tolist()) for x, positions in source.chunks()]
    [((3, 3), [0, 1, 2])]
    >>> should_stream(rows=1_000_000, dim=1280, max_memory=parse_memory("4G"))
    True
    >>> parse_memory("1.5G"), parse_memory("512M"), parse_memory("2048")
    (1610612736, 536870912, 2048)
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from hubcli.errors import UsageError

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
#: Copies of the features the in-memory path holds at its peak (cache rows, the stacked matrix, a tensor).
IN_MEMORY_COPIES = 3
#: Rows copied out of a mapped shard at a time, so the pages mapped at once stay a few MB.
_READ_ROWS = 1024


def parse_memory(text: str) -> int:
    """Bytes from ``"4G"``, ``"512M"``, ``"1.5GiB"`` or a plain number of bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", str(text), re.IGNORECASE)
    if not match or float(match.group(1)) <= 0:
        raise UsageError(f"--max-memory {text!r}: give a size such as 4G, 512M or 2.5G")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def default_max_memory() -> int:
    """Half of this machine's physical memory: room for TensorFlow, the module and the OS."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2


def memory_budget(max_memory: str | None) -> int:
    """Bytes a run may hold: ``--max-memory`` if given, else :func:`default_max_memory`."""
    return parse_memory(max_memory) if max_memory else default_max_memory()


def resident_bytes() -> int:
    """This process's resident memory now (Linux ``/proc``; 0 where unavailable)."""
    try:
        fields = Path("/proc/self/statm").read_text().split()
    except OSError:
        return 0
    return int(fields[1]) * os.sysconf("SC_PAGE_SIZE")


def chunk_bytes(max_memory: int) -> int:
    """Bytes of features per streamed chunk: an eighth of what the budget leaves now (at least 16 MB).

    Measured, training on a chunk peaks at about 4.5 times its size above the process's
    resident memory before it: the next chunk being filled, the chunk's tensor copy, the
    one-hot labels and what TensorFlow's allocator keeps.
    """
    return max(16 << 20, (max_memory - resident_bytes()) // 8)


def should_stream(*, rows: int, dim: int, max_memory: int) -> bool:
    """Whether features of ``rows`` x ``dim`` held in memory would push the process past ``max_memory``."""
    return resident_bytes() + IN_MEMORY_COPIES * rows * dim * 4 > max_memory


class FeatureSource(Protocol):
    """Rows of features, handed out in chunks with the positions of their rows."""

    #: (rows, feature dimension), like an array's.
    shape: tuple[int, int]

    def chunks(self, rng: np.random.Generator | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(x float32 [n, dim], positions int [n])`` chunks covering every row once; ``positions``
        index the caller's per-row arrays (labels, weights). ``rng`` shuffles the order of the
        chunks (the trainer shuffles the rows within each)."""
        ...


class InMemoryFeatures:
    """Every row in one chunk."""

    def __init__(self, x: np.ndarray):
        self.x = x
        self.shape = x.shape

    def chunks(self, rng: np.random.Generator | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        yield self.x, np.arange(len(self.x))


class ShardedFeatures:
    """Rows that live in feature-cache shards (``directory/<shard>.npy``), read a chunk at a time.

    When every row fits one chunk, the chunk holds them in their given order: the very matrix
    the in-memory path would hold, so both train the same head. Otherwise a chunk gathers a
    few whole shards, in an order ``rng`` shuffles every epoch.

    Example:
        >>> source = ShardedFeatures(cache.directory, [("shard-1.npy", 0), ("shard-2.npy", 5)], dim=1280, chunk_bytes=256 << 20)  # doctest: +SKIP
    """

    def __init__(self, directory: str | os.PathLike, locations: Sequence[tuple[str, int]], *, dim: int, chunk_bytes: int):
        self.directory = Path(directory)
        self.shape = (len(locations), dim)
        self.chunk_rows = max(1, chunk_bytes // (4 * dim))
        by_shard: dict[str, list[tuple[int, int]]] = {}
        for position, (shard, row) in enumerate(locations):
            by_shard.setdefault(shard, []).append((row, position))
        # Per shard: its rows, sorted for sequential reads, and their positions in `locations`.
        self._shards = []
        for shard, entries in sorted(by_shard.items()):
            entries.sort()
            self._shards.append((shard, np.asarray([row for row, _ in entries]), np.asarray([position for _, position in entries])))

    def chunks(self, rng: np.random.Generator | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        if self.shape[0] <= self.chunk_rows:
            yield self._read(self._shards, slots=lambda positions, offset: positions), np.arange(self.shape[0])
            return
        for pieces in self._chunk_pieces(rng):
            x = self._read(pieces, slots=lambda positions, offset: np.arange(offset, offset + len(positions)))
            yield x, np.concatenate([positions for _, _, positions in pieces])

    def _read(self, pieces: Sequence[tuple[str, np.ndarray, np.ndarray]], *, slots) -> np.ndarray:
        """One buffer holding the rows of ``pieces``, each row at ``slots(positions, offset)``: no second copy."""
        x = np.empty((sum(len(rows) for _, rows, _ in pieces), self.shape[1]), np.float32)
        offset = 0
        for shard, rows, positions in pieces:
            targets = slots(positions, offset)
            for start in range(0, len(rows), _READ_ROWS):
                stop = min(start + _READ_ROWS, len(rows))
                # The mapping lives for this statement only: once unmapped, the pages it
                # touched no longer count towards this process's resident set.
                x[targets[start:stop]] = np.load(self.directory / shard, mmap_mode="r")[rows[start:stop]]
            offset += len(rows)
        return x

    def _chunk_pieces(self, rng: np.random.Generator | None) -> Iterator[list[tuple[str, np.ndarray, np.ndarray]]]:
        """Groups of (shard, rows, positions) of at most ``chunk_rows`` rows, shards in shuffled order."""
        order = rng.permutation(len(self._shards)) if rng is not None else range(len(self._shards))
        pieces, filled = [], 0
        for index in order:
            shard, rows, positions = self._shards[index]
            start = 0
            while start < len(rows):
                take = min(len(rows) - start, self.chunk_rows - filled)
                pieces.append((shard, rows[start : start + take], positions[start : start + take]))
                start += take
                filled += take
                if filled == self.chunk_rows:
                    yield pieces
                    pieces, filled = [], 0
        if pieces:
            yield pieces
