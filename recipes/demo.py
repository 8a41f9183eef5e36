"""``make demo``: retrain a real EfficientNet-Lite0 on real photos, offline, on a fresh clone.

1. Builds the EfficientNet-Lite0 feature-vector module into ``--modules``
   (skipped when up to date; see :mod:`recipes.build_modules`).
2. Writes a small class-folder dataset made from photos that scikit-image ships
   (all public domain or CC0, listed in :data:`SOURCES`): each class is one
   photo, seen through random crops, scales, flips and lighting changes.
3. Runs ``hubcli retrain-images`` on it and prints the test accuracy and where
   the model and the report went.

Because each class comes from a single photo, this shows that the pipeline
works end to end on real images, not how well it generalises; the flowers
recipe (``recipes/flowers.sh``) measures that.

Example:
    .venv/bin/python -m recipes.demo --modules .modules
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from hubcli import console, quiet_tensorflow
from hubcli.errors import DataError, HubcliError
from recipes import build_modules

#: class name -> (scikit-image loader, licence as scikit-image documents it).
SOURCES = {
    "brick": ("brick", "CC0 (cc0textures.com Bricks25)"),
    "grass": ("grass", "CC0 (DeviantArt linolafett, Grass-01)"),
    "gravel": ("gravel", "CC0 (cc0textures.com Gravel04)"),
    "cat": ("chelsea", "CC0, photographer Stefan van der Walt"),
    "coffee": ("coffee", "CC0, photographer Rachel Michetti"),
    "astronaut": ("astronaut", "public domain (NASA)"),
    "rocket": ("rocket", "public domain (SpaceX)"),
}
IMAGES_PER_CLASS = 30
IMAGE_SIZE = 224
SEED = 7
DATASET_VERSION = "1"  # bump when the generated images change
FEATURE_MODULE = "efficientnet_lite0_feature_vector"


def _photo(loader_name: str) -> np.ndarray:
    from skimage import data

    image = getattr(data, loader_name)()
    return np.stack([image] * 3, axis=-1) if image.ndim == 2 else image[..., :3]


def _views(photo: np.ndarray, count: int, rng: np.random.Generator):
    """Random square crops (35-95% of the short side), flips and brightness/contrast changes."""
    from PIL import Image

    height, width = photo.shape[:2]
    for _ in range(count):
        side = int(min(height, width) * rng.uniform(0.35, 0.95))
        top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
        crop = photo[top:top + side, left:left + side].astype(np.float32)
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        crop = (crop - 128.0) * rng.uniform(0.8, 1.2) + 128.0 + rng.uniform(-25, 25)
        pixels = np.clip(crop, 0, 255).astype(np.uint8)
        yield Image.fromarray(pixels).resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR)


def _fingerprint() -> str:
    recipe = json.dumps([DATASET_VERSION, SEED, IMAGES_PER_CLASS, IMAGE_SIZE, sorted(SOURCES)])
    return hashlib.sha256(recipe.encode()).hexdigest()[:16]


def make_dataset(out_dir: Path) -> Path:
    """Write the class-folder dataset to ``out_dir`` once (atomically); reuse it after."""
    out_dir = Path(out_dir)
    manifest = out_dir / "SOURCES.json"
    if manifest.is_file() and json.loads(manifest.read_text()).get("fingerprint") == _fingerprint():
        return out_dir
    try:
        import skimage  # noqa: F401
    except ImportError:
        raise DataError("the demo images come from scikit-image; run: pip install scikit-image") from None
    rng = np.random.default_rng(SEED)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        for label, (loader_name, _licence) in SOURCES.items():
            (staging / label).mkdir()
            for index, view in enumerate(_views(_photo(loader_name), IMAGES_PER_CLASS, rng)):
                view.save(staging / label / f"{label}_{index:03d}.jpg", quality=92)
        listing = {
            "fingerprint": _fingerprint(),
            "about": "random views of photos shipped by scikit-image; licences as scikit-image documents them",
            "classes": {label: {"skimage.data": loader, "licence": licence} for label, (loader, licence) in SOURCES.items()},
        }
        (staging / "SOURCES.json").write_text(json.dumps(listing, indent=2) + "\n")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recipes.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--modules", type=Path, default=Path(".modules"), help="where modules are built (default .modules)")
    parser.add_argument("--data", type=Path, default=Path(".cache/demo_images"), help="where the demo images are written")
    parser.add_argument("--output", type=Path, default=Path("runs/demo"), help="the run directory")
    args = parser.parse_args(argv)
    quiet_tensorflow.install(freeze=True)
    try:
        (recipe,) = [r for r in build_modules.recipes_for("image") if r.name == FEATURE_MODULE]
        module_dir, _ = build_modules.build_module(args.modules, recipe)
        data_dir = make_dataset(args.data)
        console.info(f"module: {module_dir}; data: {data_dir} ({len(SOURCES)} classes x {IMAGES_PER_CLASS} images)")
    except HubcliError as err:
        console.error_line(str(err))
        return err.exit_code
    command = [
        sys.executable, "-m", "hubcli", "retrain-images", str(data_dir),
        "--module", str(module_dir), "--output", str(args.output), "--overwrite", "--seed", str(SEED),
    ]
    console.info("running: " + " ".join(["hubcli", *command[3:]]))
    returncode = subprocess.call(command)
    if returncode != 0:
        return returncode
    metrics = json.loads((args.output / "metrics.json").read_text())
    print(f"accuracy: {metrics['accuracy']:.1%} on the {metrics['evaluated_on']} split ({metrics['examples']} images)")
    print(f"model: {args.output / 'model'} (SavedModel), {args.output / 'model.keras'}")
    print(f"report: {args.output / 'metrics.json'}, plots in {args.output / 'plots'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
