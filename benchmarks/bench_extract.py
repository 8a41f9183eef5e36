"""Benchmark ``hubcli extract`` (Beam) against in-process extraction, with EfficientNet-Lite0 on flowers photos.

For each way of extracting, two sizes are timed from a cold feature cache, which separates
the fixed start-up cost (pipeline, worker processes, module loading) from the marginal rate:

    marginal rate = (large - small) / (seconds(large) - seconds(small))
    start-up      = seconds(small) - small / marginal rate

Ways: ``in-process`` (the FeatureExtractor that retrain-images runs), ``beam-1`` (direct
runner, in this process) and ``beam-2`` (direct runner, two worker processes). The
overhead ratio is the in-process marginal rate over Beam's. Files and bytes per million
images follow from the shard layout (rows per shard, feature dimension) and are checked
against the shards the largest run wrote.

Run:
    .venv/bin/python -m benchmarks.bench_extract                       # 100 and 400 photos
    .venv/bin/python -m benchmarks.bench_extract --sizes 200,500 --json out.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "datasets" / "flowers-mini"
DEFAULT_MODULE = REPO / ".modules" / "efficientnet_lite0_feature_vector"
MILLION = 1_000_000


def _subset(data: Path, count: int, work: Path) -> Path:
    """The first ``count`` photos of ``data`` (round-robin over classes), as a class-folder tree."""
    from hubcli.train.images import scan_image_folder

    _, examples = scan_image_folder(data)
    by_class: dict[int, list] = {}
    for example in sorted(examples, key=lambda e: e.key):
        by_class.setdefault(example.label, []).append(example)
    chosen = [e for group in itertools.zip_longest(*by_class.values()) for e in group if e is not None][:count]
    root = work / f"photos-{count}"
    for example in chosen:
        target = root / example.key
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(example.source, target)
    return root


def _in_process(photos: Path, module: Path, cache: Path) -> float:
    from hubcli.config import Settings
    from hubcli.train.features import frozen_extractor
    from hubcli.train.images import ImageModality, scan_image_folder
    from hubcli.train.module_ref import ModuleRef

    started = time.perf_counter()
    reference = ModuleRef.resolve(str(module), Settings.load(cache_dir=cache, offline=True))
    modality = ImageModality(reference.info.image_size)
    examples = scan_image_folder(photos)[1]
    extractor = frozen_extractor(
        modality=modality, encoder=modality.build_encoder(reference, trainable=False), module=reference, examples=len(examples)
    )
    extractor.features(examples)
    return time.perf_counter() - started


def _beam(photos: Path, module: Path, cache: Path, workers: int) -> tuple[float, dict]:
    from hubcli.config import Settings
    from hubcli.scale.extract import extract

    started = time.perf_counter()
    summary = extract(data=str(photos), module_handle=str(module), settings=Settings.load(cache_dir=cache, offline=True), workers=workers)
    return time.perf_counter() - started, summary


def _rates(sizes: tuple[int, int], seconds: tuple[float, float]) -> dict:
    marginal = (sizes[1] - sizes[0]) / (seconds[1] - seconds[0])
    return {
        "seconds": [round(s, 2) for s in seconds],
        "marginal_images_per_s": round(marginal, 1),
        "startup_s": round(seconds[0] - sizes[0] / marginal, 2),
    }


def _storage(cache: Path, summary: dict) -> dict:
    """Files and bytes per million images, from the shard layout and the shards written."""
    from hubcli.scale.shards import ROWS_PER_SHARD, bucket_count

    shards = sorted(cache.glob("features/*/*/shard-*.npy"))
    rows = sum(len(Path(s).with_suffix(".keys").read_text().split()) for s in shards)
    written = sum(s.stat().st_size + s.with_suffix(".keys").stat().st_size for s in shards)
    per_row = written / rows
    return {
        "shards_written": summary["shards_written"],
        "bytes_per_image": round(per_row, 1),
        "files_per_million_images": 2 * bucket_count(MILLION, rows_per_shard=ROWS_PER_SHARD) + 1,
        "gigabytes_per_million_images": round(per_row * MILLION / 1e9, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--module", type=Path, default=DEFAULT_MODULE)
    parser.add_argument("--sizes", default="100,400", help="two dataset sizes, small,large")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    sizes = tuple(int(part) for part in args.sizes.split(","))
    work = Path(tempfile.mkdtemp(prefix="bench-extract-"))
    try:
        trees = {size: _subset(args.data, size, work) for size in sizes}
        # TensorFlow's import and start-up belong to no one way of extracting: pay them first.
        import tensorflow as tf

        tf.constant(0.0).numpy()
        report: dict = {"sizes": list(sizes)}
        timings: dict[str, list[float]] = {"in-process": [], "beam-1": [], "beam-2": []}
        last_summary, last_cache = None, None
        for size in sizes:
            timings["in-process"].append(_in_process(trees[size], args.module, work / f"cache-local-{size}"))
            for workers in (1, 2):
                cache = work / f"cache-beam{workers}-{size}"
                seconds, last_summary = _beam(trees[size], args.module, cache, workers)
                timings[f"beam-{workers}"].append(seconds)
                last_cache = cache
        for way, seconds in timings.items():
            report[way] = _rates(sizes, tuple(seconds))
        for workers in (1, 2):
            report[f"overhead_ratio_beam_{workers}"] = round(
                report["in-process"]["marginal_images_per_s"] / report[f"beam-{workers}"]["marginal_images_per_s"], 2
            )
        report["storage"] = _storage(last_cache, last_summary)
        report["load_average"] = os.getloadavg()
        print(json.dumps(report, indent=2))
        if args.json:
            args.json.write_text(json.dumps(report, indent=2) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
