"""Forward-pass throughput of the converted EfficientNet-Lite0/1/2 modules vs Keras' MobileNetV2.

All run in the same process on random batches of 32 at each model's size
(224, 240, 260; MobileNetV2 at 224): the hub modules as
``tf.saved_model.load(...)(images, training=False)``, and
``keras.applications.MobileNetV2(weights=None, include_top=False,
pooling="avg")`` called inside a ``tf.function``. Timed rounds alternate
between the models, so load on a shared machine hits both alike; the median of
the rounds is reported.

Example:
    .venv/bin/python -m benchmarks.bench_image_module --modules .modules --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

BATCH = 32
IMAGE_SIZE = 224


def _time_once(fn, images) -> float:
    started = time.perf_counter()
    fn(images).numpy()  # .numpy() waits for the result
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", type=Path, default=Path(".modules"))
    parser.add_argument("--rounds", type=int, default=5, help="timed batches per model")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import keras
    import tensorflow as tf

    from recipes import build_modules, efficientnet_lite

    candidates = {}  # name -> (forward function, its batch)
    for model in efficientnet_lite.MODELS.values():
        (recipe,) = build_modules.recipes_for(model.module_name("feature_vector"))
        module = tf.saved_model.load(str(build_modules.build_module(args.modules, recipe)[0]))
        images = tf.random.stateless_uniform([BATCH, model.image_size, model.image_size, 3], seed=[1, 2])
        candidates[f"efficientnet_{model.name} (hubcli module)"] = (lambda x, m=module: m(x, training=False), images)
    mobilenet = keras.applications.MobileNetV2(
        weights=None, include_top=False, pooling="avg", input_shape=(IMAGE_SIZE, IMAGE_SIZE, 3)
    )
    candidates["keras MobileNetV2 (weights=None)"] = (
        tf.function(lambda x: mobilenet(x, training=False)),
        tf.random.stateless_uniform([BATCH, IMAGE_SIZE, IMAGE_SIZE, 3], seed=[1, 2]),
    )
    for fn, images in candidates.values():  # warm-up: tracing, allocation
        _time_once(fn, images)
    seconds = {name: [] for name in candidates}
    for _ in range(args.rounds):
        for name, (fn, images) in candidates.items():
            seconds[name].append(_time_once(fn, images))

    results = {
        "batch": BATCH,
        "rounds": args.rounds,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "tensorflow": tf.__version__,
        "models": {
            name: {
                "median_batch_seconds": round(statistics.median(times), 4),
                "images_per_second": round(BATCH / statistics.median(times), 1),
            }
            for name, times in seconds.items()
        },
    }
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"forward pass, batch {BATCH}, median of {args.rounds} ({results['machine']}, TF {tf.__version__}):")
        for name, row in results["models"].items():
            print(f"  {name:<36} {row['images_per_second']:>7.1f} images/s  ({row['median_batch_seconds']:.3f} s/batch)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
