"""Benchmark `retrain-images` (issue B, section 8) on flowers-mini with EfficientNet-Lite0.

Parts (choose with ``--parts``); end to end against the make_image_classifier way is
``benchmarks/bench_end_to_end.py``, extraction against the bare forward pass
``benchmarks/bench_extraction.py``:

b. A warm-cache re-run as a process (``hubcli retrain-images ... --json``), minus a
   process that only imports TensorFlow and Keras. Target: <= 10 s.
d. Validation/test accuracy, frozen against ``--fine-tune``.
e. Head settings by 5-fold cross-validation on the cached features (what the
   defaults were chosen from): the cache makes each setting cost seconds, not a
   re-extraction.

Run:
    .venv/bin/python -m benchmarks.bench_retrain                      # all parts
    .venv/bin/python -m benchmarks.bench_retrain --parts b,e --json out.json
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

    from hubcli.train.features import frozen_extractor
    from hubcli.train.head import build_head, fit_head
    from hubcli.train.images import ImageModality, scan_image_folder
    from hubcli.train.module_ref import ModuleRef

    settings = _settings(work / "warm-cache")
    labels, examples = scan_image_folder(data_dir)
    module_ref = ModuleRef.resolve(str(module), settings)
    modality = ImageModality(module_ref.info.image_size)
    encoder = modality.build_encoder(module_ref, False)
    extractor = frozen_extractor(modality=modality, encoder=encoder, module=module_ref, examples=len(examples))
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
    parser.add_argument("--parts", default="b,d,e")
    parser.add_argument("--fine-tune-epochs", type=int, default=2)
    parser.add_argument("--json", type=Path, help="Also write the results here.")
    args = parser.parse_args()
    if not args.module.is_dir():
        sys.exit(f"no module at {args.module}; run `make modules` first")
    parts = set(args.parts.split(","))
    work = Path(tempfile.mkdtemp(prefix="bench-retrain-"))
    results: dict = {"data": str(args.data), "module": str(args.module)}
    try:
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
