"""Benchmark the TFLite variants of the flowers model: size, latency and held-out accuracy.

1. Retrains a frozen flowers classifier on the EfficientNet-Lite0 feature-vector
   module (``make modules``) with hubcli's defaults, holding out ``--test-split``
   of the photos (stable hash split) for the comparison.
2. Exports the float SavedModel and every TFLite variant (``none``, ``dynamic``,
   ``float16``, ``int8``) with ``hubcli.export.artifacts.export_run``; the agreement check
   runs as in ``hubcli export`` (threshold 0 here, so every variant is measured).
3. For each: file size; single-image latency (median and p90 of ``--repeat``
   invocations after warm-up, one interpreter thread, batch 1); top-1 accuracy
   on the held-out photos, and top-1 agreement with the float SavedModel there.

Run:
    .venv/bin/python -m benchmarks.bench_tflite
    .venv/bin/python -m benchmarks.bench_tflite --json --work /tmp/bench_tflite
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

DEFAULT_MODULE = Path(__file__).resolve().parent.parent / ".modules" / "efficientnet_lite0_feature_vector"
DEFAULT_DATA = Path("/work/shared/datasets/flowers-mini")
MODES = ("none", "dynamic", "float16", "int8")


def _held_out(data_dir: Path, size: tuple[int, int], validation_split: float, test_split: float):
    """The run's own test split (same stable hash), decoded as the model takes it."""
    from hubcli.train.image_decode import decode_image, read_source
    from hubcli.train.images import load_image_folder

    data = load_image_folder(data_dir, validation_split, test_split)
    images = np.stack([decode_image(read_source(e.source), size) for e in data.test]).astype(np.float32) / 255.0
    labels = [data.labels[e.label] for e in data.test]
    return images, labels


def _latency_ms(call, repeat: int) -> tuple[float, float]:
    for _ in range(5):
        call()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(0.9 * (len(samples) - 1))]


def _tflite_runner(path: Path, threads: int):
    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(model_path=str(path), num_threads=threads)
    interpreter.allocate_tensors()
    source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]

    def one(image: np.ndarray) -> np.ndarray:
        interpreter.set_tensor(source["index"], image[None])
        interpreter.invoke()
        return interpreter.get_tensor(target["index"])[0]

    return one


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", type=Path, default=DEFAULT_MODULE)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--work", type=Path, default=None, help="keep the run and exports here (default: a temp dir)")
    parser.add_argument("--test-split", type=float, default=0.2)
    parser.add_argument("--validation-split", type=float, default=0.1)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for needed in (args.module, args.data):
        if not needed.exists():
            raise SystemExit(f"missing {needed} (modules come from `make modules`)")

    import tensorflow as tf

    from hubcli.config import Settings
    from hubcli.export.artifacts import export_run
    from hubcli.train.config import TrainConfig
    from hubcli.train.images import retrain_images
    from hubcli.train.rundir import open_run

    work = args.work or Path(tempfile.mkdtemp(prefix="bench_tflite-"))
    work.mkdir(parents=True, exist_ok=True)
    run = work / "run"
    started = time.perf_counter()
    summary = retrain_images(
        args.data, str(args.module), settings=Settings.load(cache_dir=work / "cache", offline=True), config=TrainConfig(),
        output=run, overwrite=True, validation_split=args.validation_split, test_split=args.test_split,
    )
    train_s = time.perf_counter() - started
    run_record = open_run(run)
    images, truth = _held_out(args.data, run_record.image_size, args.validation_split, args.test_split)
    labels = run_record.labels

    saved = export_run(run, "savedmodel", output=work / "export" / "saved_model", overwrite=True)
    serving = tf.saved_model.load(str(saved.path)).signatures["serving_default"]
    float_probs = serving(images=tf.constant(images))["probabilities"].numpy()
    float_pred = [labels[i] for i in float_probs.argmax(1)]
    rows = [{
        "variant": "savedmodel (float32)",
        "size_bytes": saved.size_bytes,
        "latency_ms_median": None,
        "latency_ms_p90": None,
        "accuracy": float(np.mean([p == t for p, t in zip(float_pred, truth, strict=True)])),
        "agreement_with_float": 1.0,
        "export_check": saved.agreement.to_json(),
    }]
    single = tf.constant(images[:1])
    rows[0]["latency_ms_median"], rows[0]["latency_ms_p90"] = _latency_ms(lambda: serving(images=single), args.repeat)

    for mode in MODES:
        result = export_run(run, "tflite", output=work / "export" / f"flowers_{mode}.tflite", quantize=mode, min_agreement=0.0, overwrite=True)
        one = _tflite_runner(result.path, args.threads)
        probs = np.stack([one(image) for image in images])
        predicted = [labels[i] for i in probs.argmax(1)]
        median, p90 = _latency_ms(lambda run=one: run(images[0]), args.repeat)
        rows.append({
            "variant": f"tflite {mode}",
            "size_bytes": result.size_bytes,
            "latency_ms_median": median,
            "latency_ms_p90": p90,
            "accuracy": float(np.mean([p == t for p, t in zip(predicted, truth, strict=True)])),
            "agreement_with_float": float(np.mean([p == f for p, f in zip(predicted, float_pred, strict=True)])),
            "max_abs_diff_vs_float": float(np.max(np.abs(probs - float_probs))),
            "export_check": result.agreement.to_json(),
            **({"full_integer": result.details["tflite"]["full_integer"]} if mode == "int8" else {}),
        })

    report = {
        "module": str(args.module),
        "data": str(args.data),
        "held_out_images": len(truth),
        "train_s": round(train_s, 1),
        "run_accuracy": summary.get("accuracy"),
        "threads": args.threads,
        "variants": rows,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{report['held_out_images']} held-out photos; latency: batch 1, {args.threads} thread(s), median/p90 of {args.repeat}")
        print(f"{'variant':22} {'size':>10} {'median ms':>10} {'p90 ms':>8} {'accuracy':>9} {'agree':>7}")
        for row in rows:
            print(
                f"{row['variant']:22} {row['size_bytes'] / 1e6:>8.2f}MB {row['latency_ms_median']:>10.2f} "
                f"{row['latency_ms_p90']:>8.2f} {row['accuracy']:>9.3f} {row['agreement_with_float']:>7.3f}"
            )
    return report


if __name__ == "__main__":
    main()
