"""Whole ``hubcli retrain-images`` processes against the make_image_classifier way, 10 epochs each.

Both sides are timed as whole processes (Python and TensorFlow start-up included), on the
same photos, module, splits, head and epochs, in alternating rounds so machine load hits
both alike:

- hubcli: ``python -m hubcli retrain-images DATA --module M --epochs 10 --patience 10
  --json`` on an empty feature cache. The first hubcli round is a module's first use here
  (the TFLite engine is converted and probed in it); later rounds start from a cache
  holding only that converted engine, no features: "cold features", what every new
  dataset on a known module costs;
- the make_image_classifier way (``--baseline``, this file in its own process): tf.data
  decodes and resizes every photo in every epoch and the frozen module runs inside the
  Keras model, as TF Hub's make_image_classifier does; then it scores the test split.

Reported: seconds (median of rounds), the speed-up, test accuracy of both (the same
stable-hash test split), and hubcli's peak RSS from its metrics.

Run:
    .venv/bin/python -m benchmarks.bench_end_to_end
    .venv/bin/python -m benchmarks.bench_end_to_end --rounds 3 --data ../shared/datasets/flowers-mini
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "datasets" / "flowers-mini"
DEFAULT_MODULE = REPO / ".modules" / "efficientnet_lite0_feature_vector"
SPLITS = {"validation_split": 0.1, "test_split": 0.1}
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}


def make_image_classifier_way(data_dir: Path, module: Path, epochs: int) -> dict:
    """Train and test as make_image_classifier does: decode in tf.data every epoch, the module inside the model."""
    import keras
    import numpy as np
    import tensorflow as tf

    from hubcli.config import Settings
    from hubcli.train.config import TrainConfig
    from hubcli.train.head import make_optimizer
    from hubcli.train.images import load_image_folder
    from hubcli.train.layer import HubLayer

    config = TrainConfig(epochs=epochs)
    data = load_image_folder(data_dir, **SPLITS)
    encoder = HubLayer(str(module), settings=Settings.load(offline=True))
    height, width = encoder.image_size
    classes = len(data.labels)

    def dataset(examples, shuffle):
        paths = [str(e.source) for e in examples]
        labels = np.eye(classes, dtype=np.float32)[[e.label for e in examples]]
        ds = tf.data.Dataset.from_tensor_slices((paths, labels))
        if shuffle:
            ds = ds.shuffle(len(paths), seed=config.seed)

        def load(path, label):
            image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
            return tf.image.resize(tf.cast(image, tf.float32), [height, width], antialias=True) / 255.0, label

        return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(config.batch_size).prefetch(tf.data.AUTOTUNE)

    keras.utils.set_random_seed(config.seed)
    inputs = keras.Input((height, width, 3))
    hidden = keras.layers.Dropout(config.dropout)(encoder(inputs))
    outputs = keras.layers.Dense(classes, activation="softmax", kernel_regularizer=keras.regularizers.L2(config.l2))(hidden)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=make_optimizer(config.optimizer, config.learning_rate),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
        metrics=["accuracy"],
    )
    model.fit(dataset(data.train, True), validation_data=dataset(data.validation, False), epochs=epochs, verbose=0)
    _, accuracy = model.evaluate(dataset(data.test, False), verbose=0)
    return {"accuracy": round(float(accuracy), 4), "test_examples": len(data.test)}


def _timed(command: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=ENV, cwd=REPO)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds, done.stdout


def _hubcli(data: Path, module: Path, cache: Path, output: Path, epochs: int) -> tuple[float, dict]:
    seconds, stdout = _timed([
        sys.executable, "-m", "hubcli", "retrain-images", str(data), "--module", str(module), "--cache-dir", str(cache),
        "--output", str(output), "--overwrite", "--offline", "--json", "--epochs", str(epochs), "--patience", str(epochs),
        "--validation-split", str(SPLITS["validation_split"]), "--test-split", str(SPLITS["test_split"]),
    ])
    return seconds, json.loads(stdout)


def _baseline(data: Path, module: Path, epochs: int) -> tuple[float, dict]:
    seconds, stdout = _timed([
        sys.executable, "-m", "benchmarks.bench_end_to_end", "--baseline", "--data", str(data), "--module", str(module),
        "--epochs", str(epochs),
    ])
    return seconds, json.loads(stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--module", type=Path, default=DEFAULT_MODULE)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2, help="cold-feature hubcli rounds, each followed by a baseline round")
    parser.add_argument("--baseline", action="store_true", help="be the make_image_classifier side (prints one JSON line)")
    args = parser.parse_args(argv)
    for needed in (args.module, args.data):
        if not needed.exists():
            raise SystemExit(f"missing {needed} (modules come from `make modules`)")
    if args.baseline:
        print(json.dumps(make_image_classifier_way(args.data, args.module, args.epochs)))
        return 0

    work = Path(tempfile.mkdtemp(prefix="bench-end-to-end-"))
    try:
        first_seconds, first = _hubcli(args.data, args.module, work / "first-cache", work / "run", args.epochs)
        baseline = [_baseline(args.data, args.module, args.epochs)]
        engines = next((work / "first-cache" / "features").glob("*/engines"), None)
        cold = []
        for round_number in range(args.rounds):
            cache = work / f"cache-{round_number}"
            if engines is not None:
                shutil.copytree(engines, cache / "features" / engines.parent.name / "engines")
            cold.append(_hubcli(args.data, args.module, cache, work / "run", args.epochs))
            baseline.append(_baseline(args.data, args.module, args.epochs))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    cold_seconds = statistics.median(s for s, _ in cold)
    baseline_seconds = statistics.median(s for s, _ in baseline)
    summary = cold[-1][1]
    results = {
        "data": str(args.data),
        "module": str(args.module),
        "epochs": args.epochs,
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
        "hubcli_first_use_seconds": round(first_seconds, 1),
        "hubcli_cold_features_seconds": round(cold_seconds, 1),
        "hubcli_cold_features_all": [round(s, 1) for s, _ in cold],
        "baseline_seconds": round(baseline_seconds, 1),
        "baseline_all": [round(s, 1) for s, _ in baseline],
        "speedup_cold_features": round(baseline_seconds / cold_seconds, 2),
        "speedup_first_use": round(baseline_seconds / first_seconds, 2),
        "hubcli_test_accuracy": summary["accuracy"],
        "baseline_test_accuracy": baseline[-1][1]["accuracy"],
        "accuracy_gap_points": round(100 * (summary["accuracy"] - baseline[-1][1]["accuracy"]), 1),
        "hubcli_extraction": summary["extraction"],
        "hubcli_first_use_extraction": first["extraction"],
        "hubcli_peak_rss_mb": summary.get("peak_rss_mb"),
    }
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
