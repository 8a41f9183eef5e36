"""Benchmark the head trained from the feature cache's shards: 1,000,000 x 1280 synthetic features.

The features (10 classes around random centres, so a linear head can learn them) are written
as 8,192-row shards of a real feature cache, then a fresh process trains the head on them the
way ``retrain-images`` does past ``--max-memory``: keys located through the cache's index,
rows streamed from the memory-mapped shards in chunks sized from the budget. That process
reports its peak resident memory (``ru_maxrss``, which must stay under the budget) and its
training throughput in rows per second; a second run with the features in memory is given for
comparison when they fit (``--compare``).

Run:
    .venv/bin/python -m benchmarks.bench_streaming                        # 1,000,000 rows, 2G budget, 2 epochs
    .venv/bin/python -m benchmarks.bench_streaming --rows 100000 --max-memory 1G --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SHARD_ROWS = 8192
CLASSES = 10
DIGEST = "b" * 64
PREPROCESSING = "synthetic-features"


def write_features(root: Path, rows: int, dim: int) -> None:
    """``rows`` learnable features in shards of a feature cache under ``root``, and their keys and labels."""
    import numpy as np

    from hubcli.train.feature_cache import FeatureCache

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((CLASSES, dim)).astype(np.float32)
    cache = FeatureCache(root, DIGEST, PREPROCESSING)
    labels = rng.integers(0, CLASSES, rows)
    for start in range(0, rows, SHARD_ROWS):
        stop = min(start + SHARD_ROWS, rows)
        noise = rng.standard_normal((stop - start, dim), dtype=np.float32) * 3.0
        cache.write_shard([f"{i:016x}" for i in range(start, stop)], centres[labels[start:stop]] + noise)
    np.save(root / "labels.npy", labels)


def train(root: Path, rows: int, dim: int, max_memory: str, epochs: int, streamed: bool) -> dict:
    """Train the head as retrain-images would, in this (fresh) process; its figures."""
    import keras
    import numpy as np

    from hubcli.train.config import TrainConfig
    from hubcli.train.feature_cache import FeatureCache
    from hubcli.train.feature_stream import ShardedFeatures, chunk_bytes, parse_memory
    from hubcli.train.head import build_head, fit_head, one_hot

    budget = parse_memory(max_memory)
    labels = np.load(root / "labels.npy")
    keys = [f"{i:016x}" for i in range(rows)]
    cache = FeatureCache(root, DIGEST, PREPROCESSING)
    locations = cache.locate(keys)
    split = rows * 9 // 10
    if streamed:
        size = chunk_bytes(budget)
        train_features = ShardedFeatures(cache.directory, locations[:split], dim=dim, chunk_bytes=size)
        validation_features = ShardedFeatures(cache.directory, locations[split:], dim=dim, chunk_bytes=size)
    else:
        found, _ = cache.get(keys)
        matrix = np.stack([found[key] for key in keys])
        del found
        train_features, validation_features = matrix[:split], matrix[split:]
    config = TrainConfig(head="fixed", epochs=epochs, patience=epochs, batch_size=256)
    keras.utils.set_random_seed(0)
    head = build_head(dim, CLASSES, config)
    targets = one_hot(labels, CLASSES)
    started = time.perf_counter()
    history = fit_head(head, (train_features, targets[:split]), (validation_features, targets[split:]), config=config)
    seconds = time.perf_counter() - started
    return {
        "streamed": streamed,
        "rows": rows,
        "dim": dim,
        "feature_gigabytes": round(rows * dim * 4 / 1e9, 2),
        "max_memory": max_memory,
        "peak_rss_megabytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        "budget_megabytes": budget >> 20,
        "epochs": epochs,
        "training_rows_per_s": round(epochs * split / seconds),
        "val_accuracy": round(history["val_accuracy"][-1], 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--max-memory", default="2G")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--compare", action="store_true", help="also train with every feature in memory")
    parser.add_argument("--work", type=Path, help="keep the features here (default: a temporary folder)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--train-only", type=Path, help=argparse.SUPPRESS)  # the measured child process
    parser.add_argument("--in-memory", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.train_only:
        print(json.dumps(train(args.train_only, args.rows, args.dim, args.max_memory, args.epochs, streamed=not args.in_memory)))
        return
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-streaming-"))
    try:
        if not (work / "labels.npy").exists():
            write_features(work, args.rows, args.dim)
        child = [sys.executable, "-m", "benchmarks.bench_streaming", "--train-only", str(work), "--rows", str(args.rows), "--dim", str(args.dim)]
        child += ["--max-memory", args.max_memory, "--epochs", str(args.epochs)]
        report = {"streamed": json.loads(subprocess.run(child, check=True, capture_output=True, text=True).stdout.splitlines()[-1])}
        if args.compare:
            report["in_memory"] = json.loads(subprocess.run([*child, "--in-memory"], check=True, capture_output=True, text=True).stdout.splitlines()[-1])
        report["load_average"] = os.getloadavg()
        print(json.dumps(report, indent=2))
        if args.json:
            args.json.write_text(json.dumps(report, indent=2) + "\n")
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
