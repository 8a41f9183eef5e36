"""Benchmark `classify-text` (issue C) on the UCI IMDB sentences with the MiniLM module.

Each run is the real command in its own process (``hubcli classify-text ... --json``),
so the times are what a user waits for, TensorFlow start-up included:

- cold: an empty feature cache, so every sentence goes through MiniLM;
- warm: the same command again on the same cache; no sentence goes through the
  module (checked: ``features_computed == 0``), only the head is retrained;
- baseline: a process that only imports TensorFlow, Keras and tensorflow-text, to
  show how much of the warm run is start-up.

Accuracy is on the held-out test split (stable hash of each sentence's text), never
seen in training or early stopping.

Run:
    .venv/bin/python -m recipes.build_modules --out .modules --only text   # once
    .venv/bin/python -m benchmarks.bench_text
    .venv/bin/python -m benchmarks.bench_text --json bench_text.json --test-split 0.2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "datasets" / "sentiment" / "imdb_labelled.txt"
DEFAULT_MODULE = REPO / ".modules" / "minilm_l6_v2"
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def _timed(command: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=ENV, cwd=REPO)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return seconds, result


def classify(data: Path, module: Path, cache: Path, output: Path, options: list[str]) -> tuple[float, dict]:
    command = [
        sys.executable, "-m", "hubcli", "classify-text", str(data), "--module", str(module), "--cache-dir", str(cache),
        "--output", str(output), "--overwrite", "--offline", "--json", *options,
    ]
    seconds, result = _timed(command)
    return seconds, json.loads(result.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--module", type=Path, default=DEFAULT_MODULE)
    parser.add_argument("--validation-split", type=float, default=0.1)
    parser.add_argument("--test-split", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if not args.module.is_dir():
        raise SystemExit(f"no module at {args.module}; build it: .venv/bin/python -m recipes.build_modules --out .modules --only text")
    if not args.data.is_file():
        raise SystemExit(f"no data at {args.data}")
    options = ["--validation-split", str(args.validation_split), "--test-split", str(args.test_split), "--seed", str(args.seed)]

    with tempfile.TemporaryDirectory(prefix="bench-text-") as work:
        work = Path(work)
        import_seconds, _ = _timed([sys.executable, "-c", "import tensorflow, keras, tensorflow_text"])
        cold_seconds, cold = classify(args.data, args.module, work / "cache", work / "run", options)
        warm_seconds, warm = classify(args.data, args.module, work / "cache", work / "run", options)
    if warm["extraction"]["features_computed"] != 0:
        raise SystemExit("the warm run computed features: the cache missed")
    results = {
        "data": str(args.data),
        "module": str(args.module),
        "splits": cold["splits"],
        "test_accuracy": cold["accuracy"],
        "test_macro_f1": cold["macro_f1"],
        "test_correct": int(sum(cold["confusion_matrix"][i][i] for i in range(len(cold["labels"])))),
        "validation_accuracy": cold["validation_accuracy"],
        "warm_test_accuracy": warm["accuracy"],
        "cold_seconds": round(cold_seconds, 1),
        "cold_extraction": cold["extraction"],
        "warm_seconds": round(warm_seconds, 1),
        "warm_extraction": warm["extraction"],
        "tf_import_seconds": round(import_seconds, 1),
        "warm_beyond_import_seconds": round(warm_seconds - import_seconds, 1),
        "epochs_run": cold["epochs_run"],
    }
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
