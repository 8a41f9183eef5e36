"""Image datasets: formats, modes, EXIF, layouts, bad input, stable splits."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from hubcli.errors import DataError, NotFoundError
from hubcli.train.image_decode import decode_image
from hubcli.train.images import (
    ImageModality,
    load_image_folder,
    module_image_size,
    parse_image_size,
    report_duplicates,
    scan_image_folder,
)
from hubcli.train.splits import LabeledData, split_of
from tests.helpers.synthetic_images import make_image_dataset


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _left_red_right_blue(width=40, height=20) -> Image.Image:
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:, : width // 2] = (255, 0, 0)
    pixels[:, width // 2 :] = (0, 0, 255)
    return Image.fromarray(pixels, "RGB")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "BMP", "WEBP", "GIF"])
def test_every_format_decodes_to_rgb_at_the_requested_size(fmt):
    pixels = decode_image(_encode(_left_red_right_blue(), fmt), (16, 16))
    assert pixels.shape == (16, 16, 3) and pixels.dtype == np.uint8
    left, right = pixels[:, :4].mean(axis=(0, 1)), pixels[:, -4:].mean(axis=(0, 1))
    assert left[0] > 200 and left[2] < 60 and right[2] > 200 and right[0] < 60


def test_animated_gif_uses_its_first_frame():
    frames = [Image.new("RGB", (8, 8), colour) for colour in ((0, 255, 0), (255, 0, 255))]
    data = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    pixels = decode_image(data, (8, 8))
    assert pixels[..., 1].mean() > 200 and pixels[..., 0].mean() < 50


def test_exif_orientation_is_applied():
    image = _left_red_right_blue(40, 20)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    pixels = decode_image(_encode(image, "JPEG", exif=exif.tobytes()), (40, 20))
    # Displayed upright, the stored 40x20 landscape is a portrait with red on top.
    assert pixels[:10].mean(axis=(0, 1))[0] > 200 and pixels[-10:].mean(axis=(0, 1))[2] > 200


def test_grayscale_cmyk_palette_alpha_and_16_bit_become_rgb():
    gray16 = Image.fromarray(np.full((8, 8), 65535, np.uint16))
    cases = {
        "L": Image.new("L", (8, 8), 128),
        "CMYK": Image.new("CMYK", (8, 8), (0, 255, 255, 0)),  # red in CMYK
        "P": Image.new("RGB", (8, 8), (0, 0, 255)).convert("P"),
        "RGBA": Image.new("RGBA", (8, 8), (0, 255, 0, 100)),
        "I;16": gray16,
    }
    decoded = {mode: decode_image(_encode(image, "TIFF" if mode == "CMYK" else "PNG"), (8, 8)) for mode, image in cases.items()}
    assert all(p.shape == (8, 8, 3) for p in decoded.values())
    assert abs(int(decoded["L"][0, 0, 0]) - 128) <= 1
    assert decoded["CMYK"][0, 0, 0] > 200 and decoded["CMYK"][0, 0, 1] < 50
    assert decoded["P"][0, 0, 2] > 200
    assert decoded["RGBA"][0, 0, 1] == 255
    assert (decoded["I;16"] == 255).all()  # rescaled from 16 bits, not clipped or wrapped


def test_scan_ignores_hidden_and_non_image_files(tmp_path):
    make_image_dataset(tmp_path, per_class=4)
    (tmp_path / "red_squares" / ".DS_Store").write_bytes(b"junk")
    (tmp_path / "red_squares" / "notes.txt").write_text("not an image")
    (tmp_path / ".hidden_class").mkdir()
    (tmp_path / ".hidden_class" / "a.jpg").write_bytes(b"x")
    labels, examples = scan_image_folder(tmp_path)
    assert labels == ["blue_bars", "green_discs", "red_squares"]
    assert len(examples) == 12 and all(not e.key.split("/")[-1].startswith(".") for e in examples)


def test_runs_written_inside_the_data_folder_are_not_classes(tmp_path):
    # `cd flowers && hubcli retrain-images .` puts its default runs/ beside the class folders.
    make_image_dataset(tmp_path, per_class=4)
    for run in (tmp_path / "runs" / "flowers", tmp_path / "blue_bars" / "run"):
        (run / "plots").mkdir(parents=True)
        (run / "run.json").write_text("{}")
        (run / "plots" / "confusion_matrix.png").write_bytes((tmp_path / "red_squares" / "red_squares_001.png").read_bytes())
    labels, examples = scan_image_folder(tmp_path)
    assert labels == ["blue_bars", "green_discs", "red_squares"]
    assert len(examples) == 12 and not [e for e in examples if "plots" in e.key]


def test_pre_split_layout_keeps_its_splits(tmp_path):
    for split, count in (("train", 6), ("val", 3), ("test", 2)):
        make_image_dataset(tmp_path / split, per_class=count, seed=len(split))
    data = load_image_folder(tmp_path)
    assert data.sizes() == {"train": 18, "validation": 9, "test": 6}
    assert all(e.key.startswith("val/") for e in data.validation)


def test_pre_split_layout_with_an_unknown_class_is_an_error(tmp_path):
    make_image_dataset(tmp_path / "train", per_class=6)
    make_image_dataset(tmp_path / "test", per_class=2, classes=["red_squares"])
    (tmp_path / "test" / "purple").mkdir()
    with pytest.raises(DataError, match="'purple' is not in train/"):
        load_image_folder(tmp_path)



def test_split_folders_without_train_are_an_error_not_classes(tmp_path):
    make_image_dataset(tmp_path / "test", per_class=2)
    make_image_dataset(tmp_path / "val", per_class=2)
    with pytest.raises(DataError, match="has test, val/ but no train/ folder"):
        load_image_folder(tmp_path)

def test_single_class_and_too_few_images_are_clear_errors(tmp_path):
    make_image_dataset(tmp_path / "one", per_class=8, classes=["red_squares"])
    with pytest.raises(DataError, match="at least 2 classes"):
        load_image_folder(tmp_path / "one")
    make_image_dataset(tmp_path / "few", per_class=8, classes=["red_squares", "green_discs"])
    for extra in list((tmp_path / "few" / "green_discs").iterdir())[2:]:
        extra.unlink()
    with pytest.raises(DataError, match=r"too few in: 'green_discs' \(2\)"):
        load_image_folder(tmp_path / "few")


def test_corrupt_and_truncated_files_are_skipped_and_listed(tmp_path):
    make_image_dataset(tmp_path, per_class=4)
    good = (tmp_path / "red_squares" / "red_squares_000.jpg").read_bytes()
    (tmp_path / "red_squares" / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (tmp_path / "red_squares" / "garbage.png").write_bytes(b"\x89PNG not really")
    labels, examples = scan_image_folder(tmp_path)
    modality = ImageModality((16, 16))
    decoded = [i for positions, _ in modality.iter_inputs(examples, batch_size=5) for i in positions]
    assert len(decoded) == 12
    assert sorted(key for key, _ in modality.failures) == ["red_squares/garbage.png", "red_squares/truncated.jpg"]
    # Reasons are for people: no "<_io.BytesIO object at 0x...>" from PIL.
    assert dict(modality.failures)["red_squares/garbage.png"] == "not a recognised image format"


def test_a_file_given_as_the_dataset_folder_is_named_as_a_file(tmp_path):
    (tmp_path / "reviews.tsv").write_text("great\t1\n")
    with pytest.raises(DataError, match="reviews.tsv is a file, not a folder of class folders"):
        scan_image_folder(tmp_path / "reviews.tsv")


def test_same_image_in_two_classes_is_reported(tmp_path, capsys):
    make_image_dataset(tmp_path, per_class=4)
    source = tmp_path / "red_squares" / "red_squares_000.jpg"
    (tmp_path / "green_discs" / "copy.jpg").write_bytes(source.read_bytes())
    labels, examples = scan_image_folder(tmp_path)
    modality = ImageModality((16, 16))
    clashes = report_duplicates(examples, {e.key: modality.content_hash(e) for e in examples})
    assert clashes == [("green_discs/copy.jpg", "red_squares/red_squares_000.jpg")]
    assert "appear in more than one class" in capsys.readouterr().err


def test_hash_split_is_stable_when_files_are_added():
    keys = [f"class_{i % 3}/img_{i}.jpg" for i in range(300)]
    before = {k: split_of(k, 0.2, 0.1) for k in keys}
    more = keys + [f"class_{i % 3}/new_{i}.jpg" for i in range(300)]
    after = {k: split_of(k, 0.2, 0.1) for k in more}
    assert all(after[k] == split for k, split in before.items())
    counts = {s: list(after.values()).count(s) for s in ("train", "validation", "test")}
    assert 0.6 < counts["train"] / 600 < 0.8 and 0.04 < counts["test"] / 600 < 0.17


def test_split_fractions_are_checked():
    from hubcli.errors import UsageError
    from hubcli.train.splits import Example

    with pytest.raises(UsageError, match="leave some data for training"):
        LabeledData.from_examples(["a", "b"], [Example("x", 0, None)], validation_split=0.6, test_split=0.5)


def test_image_size_options():
    assert parse_image_size("224") == (224, 224) and parse_image_size("224x192") == (224, 192)
    from hubcli.errors import UsageError

    with pytest.raises(UsageError):
        parse_image_size("big")


def test_module_without_image_size_needs_the_option(tmp_path):
    from hubcli.errors import InvalidModuleError
    from hubcli.savedmodel.inspector import inspect_module
    from tests.helpers.dynamic_module import build_dynamic_image_module

    info = inspect_module(build_dynamic_image_module(tmp_path / "dynamic"))
    assert info.image_size is None
    with pytest.raises(InvalidModuleError, match="--image-size"):
        module_image_size(info, None, "dynamic")
    assert module_image_size(info, (24, 24), "dynamic") == (24, 24)


def test_text_module_is_named_as_such_not_asked_for_an_image_size(tiny_text_module):
    from hubcli.errors import InvalidModuleError
    from hubcli.savedmodel.inspector import inspect_module

    info = inspect_module(tiny_text_module)
    # A text module has no image size either; the useful message is that it takes strings.
    for requested in (None, (32, 32)):
        with pytest.raises(InvalidModuleError, match="takes strings.*classify-text"):
            module_image_size(info, requested, "text")


def test_tfds_dataset_by_name_keeps_its_own_test_split(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    from hubcli.train.images import load_tfds

    make_image_dataset(tmp_path / "raw" / "train", per_class=8, seed=1)
    make_image_dataset(tmp_path / "raw" / "test", per_class=3, seed=2)
    names = ["blue_bars", "green_discs", "red_squares"]

    class HubcliTestShapes(tfds.core.GeneratorBasedBuilder):
        """A local TFDS builder (registered by name) over the synthetic shapes."""

        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            features = tfds.features.FeaturesDict({"image": tfds.features.Image(), "label": tfds.features.ClassLabel(names=names)})
            return self.dataset_info_from_configs(features=features)

        def _split_generators(self, dl_manager):
            return {split: self._generate_examples(tmp_path / "raw" / split) for split in ("train", "test")}

        def _generate_examples(self, folder):
            for path in sorted(folder.rglob("*.*")):
                yield path.name, {"image": str(path), "label": path.parent.name}

    data = load_tfds("hubcli_test_shapes", validation_split=0.25, test_split=0.5, data_dir=tmp_path / "tfds")
    assert data.labels == names and data.origin == "tfds:hubcli_test_shapes"
    sizes = data.sizes()
    assert sizes["test"] == 9 and sizes["train"] + sizes["validation"] == 24 and sizes["validation"] > 0
    pixels = decode_image(data.train[0].source, (8, 8))  # images stay encoded bytes until decoded
    assert isinstance(data.train[0].source, bytes) and pixels.shape == (8, 8, 3)
    with pytest.raises(NotFoundError, match="TFDS dataset 'no_such_dataset_xyz' not found"):
        load_tfds("no_such_dataset_xyz", data_dir=tmp_path / "tfds")


def test_both_modalities_implement_the_protocol():
    from hubcli.train.modality import Modality
    from hubcli.train.text import TextModality

    assert isinstance(ImageModality((8, 8)), Modality) and isinstance(TextModality(), Modality)
