"""The demo's dataset: real scikit-image photos, one class each, written once and reproducibly."""

from __future__ import annotations

from PIL import Image

from recipes import demo


def test_demo_dataset_is_complete_reproducible_and_reused(tmp_path):
    first = demo.make_dataset(tmp_path / "a")
    classes = sorted(p.name for p in first.iterdir() if p.is_dir())
    assert classes == sorted(demo.SOURCES)
    for label in classes:
        files = sorted((first / label).glob("*.jpg"))
        assert len(files) == demo.IMAGES_PER_CLASS
        with Image.open(files[0]) as image:
            assert image.mode == "RGB" and image.size == (demo.IMAGE_SIZE, demo.IMAGE_SIZE)
    second = demo.make_dataset(tmp_path / "b")
    cat_a, cat_b = first / "cat" / "cat_007.jpg", second / "cat" / "cat_007.jpg"
    assert cat_a.read_bytes() == cat_b.read_bytes()
    # Views differ from each other (random crops), so the classifier sees variety.
    assert (first / "cat" / "cat_000.jpg").read_bytes() != cat_a.read_bytes()

    stamp_time = (first / "SOURCES.json").stat().st_mtime_ns
    demo.make_dataset(first)
    assert (first / "SOURCES.json").stat().st_mtime_ns == stamp_time  # reused, not rewritten
