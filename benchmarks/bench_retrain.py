"""Benchmark `retrain-images` (issue B, section 8) on flowers-mini with EfficientNet-Lite0.

Parts (choose with ``--parts``):

a. End to end, cold feature cache, 10 epochs, against a make_image_classifier-style
   loop (tf.data decode + frozen module + head in one Keras model, so the module
   runs on every image in every epoch). Same module, data, splits, head and
   epochs. Targets: >= 5x faster, test accuracy within 1 point.
b. A warm-cache re-run as a process (``hubcli retrain-images ... --json``), minus a
   process that only imports TensorFlow and Keras. Target: <= 10 s.
c. Extraction throughput (files -> features through hubcli's pipeline, no cache)
   against the bare ``module(batch)`` forward pass on pre-decoded batches. Target >= 90%.
d. Validation/test accuracy, frozen against ``--fine-tune``.
e. Head settings by 5-fold cross-validation on the cached features (what the
   defaults were chosen from): the cache makes each setting cost seconds, not a
   re-extraction.

Run:
    .venv/bin/python -m benchmarks.bench_retrain                      # all parts
    .venv/bin/python -m benchmarks.bench_retrain --parts c,e --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "datasets" / "flowers-mini"
DEFAULT_MODULE = REPO / ".modules" / "efficientnet_lite0_feature_vector"
SPLITS = {"validation_split": 0.1, "test_split": 0.1}


def _settings(cache_dir):
    from hubcli.config import Settings

    return Settings.load(cache_dir=cache_dir, offline=True)


def _config(**overrides):
    from hubcli.train.config import TrainConfig

    # This benchmark compares the Keras head (epochs, learning rate...) with a baseline loop;
    # benchmarks/bench_heads.py compares it with --head auto.
    return TrainConfig(**{"head": "fixed", **overrides})


def bench_end_to_end(data_dir: Path, module: Path, work: Path, epochs: int) -> dict:
    """(a) hubcli cold run vs a loop that runs the module every epoch."""
    from hubcli.train.images import retrain_images

    # Early stopping off on both sides: exactly `epochs` epochs each.
    config = _config(epochs=epochs, patience=epochs)
    started = time.perf_counter()
    ours = retrain_images(data_dir, str(module), settings=_settings(work / "cold-cache"), config=config, output=work / "run-a", **SPLITS)
    hubcli_seconds = time.perf_counter() - started
    started = time.perf_counter()
    baseline_accuracy, baseline_val = _baseline_loop(data_dir, module, config)
    baseline_seconds = time.perf_counter() - started
    return {
        "epochs": epochs,
        "hubcli_seconds": round(hubcli_seconds, 1),
        "hubcli_test_accuracy": ours["accuracy"],
        "hubcli_validation_accuracy": ours["validation_accuracy"],
        "hubcli_extraction_images_per_s": ours["extraction"]["examples_per_s"],
        "baseline_seconds": round(baseline_seconds, 1),
        "baseline_test_accuracy": baseline_accuracy,
        "baseline_validation_accuracy": baseline_val,
        "speedup": round(baseline_seconds / hubcli_seconds, 2),
        "accuracy_gap_points": round(100 * (ours["accuracy"] - baseline_accuracy), 1),
    }


def _baseline_loop(data_dir: Path, module: Path, config) -> tuple[float, float]:
    """make_image_classifier's shape: decode in tf.data each epoch, module inside the model."""
    import keras
    import numpy as np
    import tensorflow as tf

    from hubcli.train.head import make_optimizer
    from hubcli.train.images import load_image_folder
    from hubcli.train.layer import HubLayer

    data = load_image_folder(data_dir, **SPLITS)
    encoder = HubLayer(str(module), settings=_settings(None))
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
    history = model.fit(dataset(data.train, True), validation_data=dataset(data.validation, False), epochs=config.epochs, verbose=0)
    _, accuracy = model.evaluate(dataset(data.test, False), verbose=0)
    return round(float(accuracy), 4), round(max(history.history["val_accuracy"]), 4)


def bench_warm_rerun(data_dir: Path, module: Path, work: Path) -> dict:
    """(b) second identical run as a process, minus the cost of importing TF + Keras."""
    env = {**os.environ, "HUBCLI_CACHE_DIR": str(work / "warm-cache"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [str(REPO / ".venv" / "bin" / "hubcli"), "retrain-images", str(data_dir), "-m", str(module), "--json"]

    def timed(args, output=None):
        started = time.perf_counter()
        done = subprocess.run(args + ([] if output is None else ["-o", str(output)]), env=env, capture_output=True, text=True, check=True)
        return time.perf_counter() - started, done.stdout

    timed(command, work / "run-b1")  # fills the cache
    warm_seconds, stdout = timed(command, work / "run-b2")
    summary = json.loads(stdout)
    import_seconds, _ = timed([sys.executable, "-c", "import tensorflow, keras"])
    return {
        "warm_process_seconds": round(warm_seconds, 1),
        "tf_import_seconds": round(import_seconds, 1),
        "beyond_tf_import_seconds": round(warm_seconds - import_seconds, 1),
        "features_computed": summary["extraction"]["features_computed"],
        "in_process_total_seconds": summary["total_time_s"],
    }


def bench_extraction(data_dir: Path, module: Path) -> dict:
    """(c) hubcli's decode+forward pipeline vs the bare forward pass on ready tensors."""
    import numpy as np
    import tensorflow as tf

    from hubcli.train.features import FeatureExtractor
    from hubcli.train.images import ImageModality, scan_image_folder
    from hubcli.train.layer import HubLayer

    _, examples = scan_image_folder(data_dir)
    encoder = HubLayer(str(module), settings=_settings(None))
    modality = ImageModality(encoder.image_size)
    batch_size = 32
    pixels = np.concatenate([raw for _, raw in modality.iter_inputs(examples, 64)]).astype(np.float32) / 255.0
    loaded = encoder._module  # the module object itself: what `module(batch)` means
    forward = tf.function(lambda images: loaded(images, training=False))
    forward(tf.constant(pixels[:batch_size]))  # trace once, outside the timing
    started = time.perf_counter()
    for start in range(0, len(pixels), batch_size):
        forward(tf.constant(pixels[start : start + batch_size])).numpy()
    bare_rate = len(pixels) / (time.perf_counter() - started)

    extractor = FeatureExtractor(ImageModality(encoder.image_size), encoder, cache=None, batch_size=batch_size)
    extractor.features(examples[:batch_size])  # trace once
    extractor.stats.seconds = 0.0
    extractor.stats.features_computed = 0
    extractor.features(examples)
    ours = extractor.stats.features_computed / extractor.stats.seconds
    return {
        "images": len(examples),
        "bare_forward_images_per_s": round(bare_rate, 1),
        "hubcli_extraction_images_per_s": round(ours, 1),
        "ratio": round(ours / bare_rate, 3),
    }


def bench_fine_tune(data_dir: Path, module: Path, work: Path, fine_tune_epochs: int) -> dict:
    """(d) the same run frozen and with --fine-tune (the cache serves the head phase)."""
    from hubcli.train.images import retrain_images

    settings = _settings(work / "warm-cache")
    frozen = retrain_images(data_dir, str(module), settings=settings, config=_config(), output=work / "run-d-frozen", **SPLITS)
    started = time.perf_counter()
    tuned = retrain_images(
        data_dir, str(module), settings=settings, config=_config(fine_tune=True, fine_tune_epochs=fine_tune_epochs), output=work / "run-d-tuned", **SPLITS
    )
    return {
        "frozen_validation_accuracy": frozen["validation_accuracy"],
        "frozen_test_accuracy": frozen["accuracy"],
        "fine_tuned_validation_accuracy": tuned["validation_accuracy"],
        "fine_tuned_test_accuracy": tuned["accuracy"],
        "fine_tune_epochs": fine_tune_epochs,
        "fine_tune_seconds": round(time.perf_counter() - started, 1),
    }


def bench_head_settings(data_dir: Path, module: Path, work: Path, folds: int = 5) -> list[dict]:
    """(e) head settings by k-fold cross-validation on cached features (how the defaults were chosen).

    Every example is tested once; a hashed eighth of each training fold is the
    early-stopping validation set. A setting costs seconds because features come
    from the cache.
    """
    import hashlib

    import keras
    import numpy as np

    from hubcli.train.feature_cache import FeatureCache, features_root
    from hubcli.train.features import FeatureExtractor
    from hubcli.train.head import build_head, fit_head
    from hubcli.train.images import ImageModality, scan_image_folder
    from hubcli.train.module_ref import ModuleRef

    settings = _settings(work / "warm-cache")
    labels, examples = scan_image_folder(data_dir)
    module_ref = ModuleRef.resolve(str(module), settings)
    modality = ImageModality(module_ref.info.image_size)
    cache = FeatureCache(features_root(settings.cache_dir), module_ref.sha256, modality.preprocessing)
    extractor = FeatureExtractor(modality, modality.build_encoder(module_ref, False), cache=cache)
    features, kept = extractor.features(examples)
    targets = np.asarray([examples[i].label for i in kept])
    digests = [hashlib.sha256(examples[i].key.encode()).digest() for i in kept]
    fold_of = np.asarray([d[0] % folds for d in digests])
    early_stopping_set = np.asarray([d[1] % 8 == 0 for d in digests])
    one_hot = np.eye(len(labels), dtype=np.float32)[targets]
    grid = [
        dict(learning_rate=lr, dropout=dropout, label_smoothing=smoothing, l2=l2)
        for lr in (0.001, 0.003, 0.01)
        for dropout in (0.0, 0.2)
        for smoothing in (0.0, 0.1)
        for l2 in (0.0, 1e-4)
    ]
    results = []
    for overrides in grid:
        config = _config(**overrides, epochs=100)
        hits, epochs = 0, []
        for fold in range(folds):
            test = fold_of == fold
            validation, train = ~test & early_stopping_set, ~test & ~early_stopping_set
            keras.utils.set_random_seed(config.seed)
            head = build_head(features.shape[1], len(labels), config)
            history = fit_head(head, (features[train], one_hot[train]), (features[validation], one_hot[validation]), config=config)
            hits += int((head.predict(features[test], verbose=0).argmax(1) == targets[test]).sum())
            epochs.append(len(history["loss"]))
        results.append({**overrides, "cv_accuracy": round(hits / len(targets), 4), "epochs": epochs})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--module", type=Path, default=DEFAULT_MODULE)
    parser.add_argument("--parts", default="a,b,c,d,e")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--fine-tune-epochs", type=int, default=2)
    parser.add_argument("--json", type=Path, help="Also write the results here.")
    args = parser.parse_args()
    if not args.module.is_dir():
        sys.exit(f"no module at {args.module}; run `make modules` first")
    parts = set(args.parts.split(","))
    work = Path(tempfile.mkdtemp(prefix="bench-retrain-"))
    results: dict = {"data": str(args.data), "module": str(args.module)}
    try:
        # c first: it needs a quiet, cold machine more than the others.
        if "c" in parts:
            results["c_extraction"] = bench_extraction(args.data, args.module)
            print("c", results["c_extraction"], flush=True)
        if "a" in parts:
            results["a_end_to_end"] = bench_end_to_end(args.data, args.module, work, args.epochs)
            print("a", results["a_end_to_end"], flush=True)
        if "b" in parts:
            results["b_warm_rerun"] = bench_warm_rerun(args.data, args.module, work)
            print("b", results["b_warm_rerun"], flush=True)
        if "d" in parts:
            results["d_fine_tune"] = bench_fine_tune(args.data, args.module, work, args.fine_tune_epochs)
            print("d", results["d_fine_tune"], flush=True)
        if "e" in parts:
            results["e_head_settings"] = bench_head_settings(args.data, args.module, work)
            for row in results["e_head_settings"]:
                print("e", row, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
