"""Peak memory of ``retrain-images`` on a few thousand photos, frozen and fine-tuned.

Makes ``--photos`` distinct JPEG photos (default 3,000, about tf_flowers' size) from the
flowers photos (each copy mirrored, cropped and re-encoded, so every file's content and
feature differ), then runs ``hubcli retrain-images`` on them as a process, frozen (a module's first
use, then a second cache holding only its engine, where the extraction helper runs) and with
``--fine-tune``, and reports the peak RSS each run records in its metrics (and the
kernel's figure for the child process). Targets: frozen under 1.5 GB, fine-tuning under 4 GB.

Run:
    .venv/bin/python -m benchmarks.bench_memory
    .venv/bin/python -m benchmarks.bench_memory --photos 1000 --fine-tune-epochs 1
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
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "datasets" / "flowers-mini"
DEFAULT_MODULE = REPO / ".modules" / "efficientnet_lite0_feature_vector"
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}


def make_photos(source: Path, target: Path, count: int) -> int:
    """``count`` distinct photos in ``target/<class>/`` made from the class folders of ``source``."""
    from PIL import Image, ImageOps

    originals = sorted(p for p in source.glob("*/*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    if not originals:
        raise SystemExit(f"no photos under {source}/<class>/")
    for index in range(count):
        original = originals[index % len(originals)]
        variant = index // len(originals)
        with Image.open(original) as image:
            image = ImageOps.exif_transpose(image).convert("RGB")
            if variant % 2:
                image = ImageOps.mirror(image)
            trim = 2 * (variant // 2)
            if trim:
                image = image.crop((trim, trim, image.width - trim, image.height - trim))
            folder = target / original.parent.name
            folder.mkdir(parents=True, exist_ok=True)
            image.save(folder / f"{original.stem}-{variant}.jpg", quality=90)
    return count


def run(data: Path, module: Path, cache: Path, output: Path, options: list[str]) -> dict:
    command = [
        sys.executable, "-m", "hubcli", "retrain-images", str(data), "--module", str(module), "--cache-dir", str(cache),
        "--output", str(output), "--overwrite", "--offline", "--json", *options,
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=ENV, cwd=REPO)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    summary = json.loads(done.stdout)
    return {
        "peak_rss_mb": summary.get("peak_rss_mb"),
        "helper_peak_rss_mb": summary.get("helper_peak_rss_mb"),
        "children_max_rss_mb_so_far": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
        "features_computed": summary["extraction"]["features_computed"],
        "total_time_s": summary["total_time_s"],
        "accuracy": summary["accuracy"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--module", type=Path, default=DEFAULT_MODULE)
    parser.add_argument("--photos", type=int, default=3000)
    parser.add_argument("--fine-tune-epochs", type=int, default=1)
    args = parser.parse_args(argv)
    for needed in (args.module, args.data):
        if not needed.exists():
            raise SystemExit(f"missing {needed} (modules come from `make modules`)")
    work = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    try:
        photos = work / "photos"
        make_photos(args.data, photos, args.photos)
        frozen = run(photos, args.module, work / "cache", work / "run", [])
        # A later dataset on the same module: the engine is known, so the extraction helper runs.
        (engines,) = (work / "cache" / "features").glob("*/engines")
        shutil.copytree(engines, work / "cache-2" / "features" / engines.parent.name / "engines")
        frozen_with_helper = run(photos, args.module, work / "cache-2", work / "run", [])
        tuned = run(photos, args.module, work / "cache", work / "run", ["--fine-tune", "--fine-tune-epochs", str(args.fine_tune_epochs)])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({
        "photos": args.photos,
        "module": str(args.module),
        "frozen": {**frozen, "target_mb": 1536},
        "frozen_with_helper": {**frozen_with_helper, "target_mb": 1536},
        "fine_tuned": {**tuned, "target_mb": 4096},
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
