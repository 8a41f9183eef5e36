"""hubcli's cold feature extraction against the bare TensorFlow forward pass of the same module.

In one process, in alternating rounds (so load on a shared machine hits every side alike),
with the EfficientNet-Lite0 feature-vector module (``make modules``) and the flowers photos:

- ``bare TF forward``: ``module(images, training=False)`` at batch 32 on random float
  inputs already in memory: the module's own speed, and the yardstick;
- ``hubcli, tensorflow engine``: files -> hashing, decoding, resizing -> the module run by
  TensorFlow (what extraction did before engines), no feature cache;
- ``hubcli, chosen engine``: the same through the engine hubcli picks for this module
  (the converted TFLite one once it has passed its probe), no feature cache.

Ratios are images/s over the bare forward pass's (median rounds). CPU shares: decoding
all photos in one thread (thread CPU time) against each engine's forward pass on decoded
batches (process CPU time), per image.

Run:
    .venv/bin/python -m benchmarks.bench_extraction
    .venv/bin/python -m benchmarks.bench_extraction --rounds 5 --data ../shared/datasets/flowers-mini --json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "datasets" / "flowers-mini"
DEFAULT_MODULE = REPO / ".modules" / "efficientnet_lite0_feature_vector"
BATCH = 32


def _rate(count: int, run) -> float:
    started = time.perf_counter()
    run()
    return count / (time.perf_counter() - started)


def _cpu_ms_per_item(count: int, run, clock=time.process_time) -> float:
    started = clock()
    run()
    return 1000 * (clock() - started) / count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", type=Path, default=DEFAULT_MODULE)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for needed in (args.module, args.data):
        if not needed.exists():
            raise SystemExit(f"missing {needed} (modules come from `make modules`)")

    import numpy as np
    import tensorflow as tf

    from hubcli.config import Settings
    from hubcli.train.engines import TensorFlowEngine, choose_engine, frozen_forward
    from hubcli.train.feature_cache import features_root
    from hubcli.train.features import FeatureExtractor
    from hubcli.train.image_decode import decode_image, read_source
    from hubcli.train.images import ImageModality, scan_image_folder
    from hubcli.train.module_ref import ModuleRef

    with tempfile.TemporaryDirectory(prefix="bench-extraction-") as work:
        settings = Settings.load(cache_dir=Path(work) / "cache", offline=True)
        module = ModuleRef.resolve(str(args.module), settings)
        modality = ImageModality(module.info.image_size)
        _, examples = scan_image_folder(args.data)
        encoder = modality.build_encoder(module, trainable=False)
        tf_engine = TensorFlowEngine(frozen_forward(encoder, modality))
        converted_at = time.perf_counter()
        chosen = choose_engine(
            encoder=encoder, modality=modality, module_digest=module.sha256, features_dir=features_root(settings.cache_dir),
            examples=len(examples),
        )
        conversion_s = time.perf_counter() - converted_at

        loaded = encoder._module  # the module object itself: what `module(batch)` means
        bare = tf.function(lambda images: loaded(images, training=False))
        random_batch = tf.random.stateless_uniform([BATCH, *modality.image_size, 3], seed=[1, 2])
        bare_batches = (len(examples) + BATCH - 1) // BATCH

        def bare_pass() -> None:
            for _ in range(bare_batches):
                bare(random_batch).numpy()

        def extraction(engine):
            return lambda: FeatureExtractor(modality, engine, cache=None, batch_size=BATCH).features(examples)

        sides = {"bare TF forward": bare_pass, "hubcli, tensorflow engine": extraction(tf_engine)}
        if chosen.name != tf_engine.name:
            sides[f"hubcli, {chosen.name} engine"] = extraction(chosen)
        for side in sides.values():
            side()  # warm-up: traces, kernels, interpreters, page cache
        counts = {"bare TF forward": bare_batches * BATCH}
        rates: dict[str, list[float]] = {name: [] for name in sides}
        for _ in range(args.rounds):
            for name, side in sides.items():
                rates[name].append(_rate(counts.get(name, len(examples)), side))

        decoded = [decode_image(read_source(e.source), modality.image_size) for e in examples]
        decode_ms = _cpu_ms_per_item(
            len(examples), lambda: [decode_image(read_source(e.source), modality.image_size) for e in examples], time.thread_time
        )
        pixels = np.stack(decoded)
        forward_ms = {}
        for engine in {tf_engine.name: tf_engine, chosen.name: chosen}.values():
            forward_ms[engine.name] = _cpu_ms_per_item(
                len(pixels), lambda engine=engine: [engine.run(pixels[s : s + BATCH]) for s in range(0, len(pixels), BATCH)]
            )

    bare_rate = statistics.median(rates["bare TF forward"])
    results = {
        "module": str(args.module),
        "data": str(args.data),
        "images": len(examples),
        "rounds": args.rounds,
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
        "tensorflow": tf.__version__,
        "chosen_engine": chosen.name,
        "engine_choice_seconds": round(conversion_s, 1),
        "sides": {
            name: {
                "images_per_s_median": round(statistics.median(values), 1),
                "ratio_to_bare_forward": round(statistics.median(values) / bare_rate, 3),
                "images_per_s_all": [round(v, 1) for v in values],
            }
            for name, values in rates.items()
        },
        "cpu_ms_per_image": {
            "decode (one thread)": round(decode_ms, 2),
            **{f"forward ({name})": round(ms, 2) for name, ms in forward_ms.items()},
        },
        "decode_share_of_cpu": {name: round(decode_ms / (decode_ms + ms), 3) for name, ms in forward_ms.items()},
    }
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"{results['images']} photos, {args.rounds} alternating rounds, {results['cpu_count']} CPUs, "
              f"load {results['load_average_1min']:.1f}, TF {results['tensorflow']}; engine: {chosen.name}")
        for name, row in results["sides"].items():
            print(f"  {name:32} {row['images_per_s_median']:>7.1f} images/s  {row['ratio_to_bare_forward']:.2f}x bare")
        print(f"  CPU per image: {results['cpu_ms_per_image']}")
        print(f"  decode share of CPU: {results['decode_share_of_cpu']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
