"""Synthetic image datasets that a linear head on the tiny module can really learn.

Each class has its own dominant colour and its own shape position, drawn with
noise, random sizes and jitter, and saved as real JPEG/PNG files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

#: (background colour, shape colour, shape corner) per class.
CLASS_STYLES = {
    "red_squares": ((40, 40, 40), (220, 40, 40), "top_left"),
    "green_discs": ((230, 230, 230), (40, 200, 60), "bottom_right"),
    "blue_bars": ((90, 70, 30), (50, 70, 230), "top_right"),
}


def draw_example(style, rng: np.random.Generator, size: int = 48) -> Image.Image:
    background, colour, corner = style
    noise = rng.normal(0, 18, (size, size, 3))
    base = np.clip(np.array(background, np.float64) + noise, 0, 255).astype(np.uint8)
    image = Image.fromarray(base, "RGB")
    draw = ImageDraw.Draw(image)
    extent = int(size * rng.uniform(0.35, 0.55))
    jitter = rng.integers(0, size // 8, 2)
    x0 = jitter[0] if "left" in corner else size - extent - jitter[0]
    y0 = jitter[1] if "top" in corner else size - extent - jitter[1]
    tint = tuple(int(np.clip(c + rng.normal(0, 15), 0, 255)) for c in colour)
    draw.rectangle([x0, y0, x0 + extent, y0 + extent], fill=tint)
    return image


def make_image_dataset(root, per_class: int = 12, classes=None, seed: int = 0, size: int = 48) -> Path:
    """``root/<class>/<n>.jpg|png`` for each class; alternates JPEG and PNG."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for name in classes or CLASS_STYLES:
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            image = draw_example(CLASS_STYLES[name], rng, size)
            suffix = "jpg" if index % 2 == 0 else "png"
            image.save(folder / f"{name}_{index:03d}.{suffix}", quality=90)
    return root


#: Multi-label shapes: (label, colour, corner). An image holds any subset of them.
MULTILABEL_SHAPES = (("red", (220, 40, 40), "top_left"), ("green", (40, 200, 60), "bottom_right"), ("blue", (50, 70, 230), "top_right"))


def make_multilabel_dataset(root, count: int = 60, seed: int = 0, size: int = 48) -> Path:
    """``root/images/<n>.png`` each holding a random subset of the coloured squares, and
    ``root/labels.csv`` (``path,labels``) naming them; returns the manifest's path.
    """
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for index in range(count):
        present = [shape for shape in MULTILABEL_SHAPES if rng.random() < 0.45]
        base = np.clip(128 + rng.normal(0, 18, (size, size, 3)), 0, 255).astype(np.uint8)
        image = Image.fromarray(base, "RGB")
        draw = ImageDraw.Draw(image)
        for _, colour, corner in present:
            extent = int(size * rng.uniform(0.3, 0.42))
            x0 = 1 if "left" in corner else size - extent - 1
            y0 = 1 if "top" in corner else size - extent - 1
            draw.rectangle([x0, y0, x0 + extent, y0 + extent], fill=colour)
        image.save(root / "images" / f"{index:03d}.png")
        rows.append(f"images/{index:03d}.png,{';'.join(name for name, _, _ in present)}\n")
    manifest = root / "labels.csv"
    manifest.write_text("path,labels\n" + "".join(rows), encoding="utf-8")
    return manifest
