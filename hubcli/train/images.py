"""Image datasets (class folders, pre-split folders, TFDS), the image Modality and ``retrain-images``.

Reading is forgiving about what photo folders really contain:

- every image format :mod:`hubcli.train.image_decode` reads, by file suffix; hidden
  files and folders and other files are ignored;
- a corrupt or truncated file is skipped and named in one warning;
- the same picture filed under two classes is reported.

Pixels follow the hub convention: float32 in [0, 1], resized to the module's
input size. In memory and in the feature cache's key they are uint8.

Example:
    >>> data = load_image_folder("flowers/", validation_split=0.1, test_split=0.1)  # doctest: +SKIP
    >>> data.labels, data.sizes()  # doctest: +SKIP
    (['daisy', 'dandelion', 'roses', 'sunflowers', 'tulips'], {'train': 398, 'validation': 52, 'test': 50})
    >>> modality = ImageModality((224, 224))  # doctest: +SKIP
    >>> pixels = decode_image(Path("flowers/daisy/1.jpg").read_bytes(), (224, 224))  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path

import numpy as np

from hubcli import console
from hubcli.config import Settings
from hubcli.errors import DataError, InvalidModuleError, NotFoundError, UsageError
from hubcli.train.class_folders import scan_class_folders
from hubcli.train.config import TrainConfig
from hubcli.train.decoder_id import image_preprocessing_id
from hubcli.train.gate import QualityGate
from hubcli.train.image_decode import IMAGE_SUFFIXES, content_hash, decode_failure, decode_image, read_source
from hubcli.train.manifest import MANIFEST_SUFFIXES, load_manifest
from hubcli.train.module_ref import ModuleRef
from hubcli.train.prefetch import Prefetch
from hubcli.train.preflight import check_run
from hubcli.train.resources import available_cores
from hubcli.train.rundir import Run, check_output, default_output
from hubcli.train.splits import Example, LabeledData
from hubcli.train.tfds_reader import read_tfds

#: Representative inputs kept for int8 calibration (float images are large; 100 calibrate well).
REPRESENTATIVE_IMAGES = 100


def scan_image_folder(root: str | os.PathLike) -> tuple[list[str], list[Example]]:
    """Class names and examples of ``root/<class>/...`` or ``root/{train,val,test}/<class>/...``.

    Keys are paths relative to ``root`` (posix), the split hash's input.
    """
    root = Path(root)
    if root.is_file():
        hint = "; a manifest is for multi-label runs (--multi-label)" if root.suffix.lower() in MANIFEST_SUFFIXES else ""
        raise DataError(f"{root} is a file, not a folder of class folders of images{hint}")
    if not root.is_dir():
        raise NotFoundError(f"dataset folder {root} does not exist")
    found = scan_class_folders(root, suffixes=IMAGE_SUFFIXES)
    if not found.class_names:
        raise DataError(f"{root} has no class folders; expected {root}/<class name>/<images>")
    index = {name: i for i, name in enumerate(found.class_names)}
    examples = [Example(file.path.relative_to(root).as_posix(), index[file.class_name], file.path, file.split) for file in found.files]
    return found.class_names, examples


def report_duplicates(examples: Sequence[Example], hashes: dict[str, str]) -> list[tuple[str, str]]:
    """Pairs of keys with the same content but different classes; warns once about them."""
    first_seen: dict[str, Example] = {}
    clashes = []
    for example in examples:
        digest = hashes[example.key]
        other = first_seen.setdefault(digest, example)
        if other is not example and other.label != example.label:
            clashes.append((other.key, example.key))
    if clashes:
        shown = "; ".join(f"{a} = {b}" for a, b in clashes[:5])
        more = f" (and {len(clashes) - 5} more)" if len(clashes) > 5 else ""
        console.warn(f"{len(clashes)} image(s) appear in more than one class: {shown}{more}")
    return clashes


def load_image_folder(root, validation_split: float = 0.1, test_split: float = 0.1) -> LabeledData:
    """Scan a class-folder (or pre-split) dataset and assign stable splits."""
    labels, examples = scan_image_folder(root)
    return LabeledData.from_examples(labels, examples, validation_split, test_split, origin=str(root))


def load_tfds(name: str, *, validation_split: float = 0.1, test_split: float = 0.1, data_dir: str | os.PathLike | None = None) -> LabeledData:
    """A TFDS image-classification dataset, with its own splits where it has them.

    Images stay encoded so they decode, hash and cache like files.
    """

    def choose_features(info) -> tuple[str, str]:
        import tensorflow_datasets as tfds

        features = info.features
        image_key = next((k for k, f in features.items() if isinstance(f, tfds.features.Image)), None)
        label_key = next((k for k, f in features.items() if isinstance(f, tfds.features.ClassLabel)), None)
        if image_key is None or label_key is None:
            raise DataError(f"TFDS dataset {name!r} has no image and class-label features")
        return image_key, label_key

    dataset = read_tfds(name, choose_features=choose_features, data_dir=data_dir, skip_decoding=True)
    examples = [
        Example(f"{record.split_name}/{record.position}", int(record.label), bytes(record.value), record.split) for record in dataset.records
    ]
    return LabeledData.from_examples(dataset.label_names, examples, validation_split, test_split, origin=f"tfds:{name}")


class ImageModality:
    """Images as module inputs: a :class:`~hubcli.train.modality.Modality`."""

    task = "image"
    supports_augmentation = True
    representative_limit = REPRESENTATIVE_IMAGES

    def __init__(self, image_size: Sequence[int], workers: int | None = None):
        self.image_size = (int(image_size[0]), int(image_size[1]))
        # Names the decoder libraries too: another Pillow or libjpeg-turbo decodes other pixels.
        self.preprocessing = image_preprocessing_id(self.image_size)
        # Decoding releases the GIL inside PIL. It is a small share of each image's work (the
        # module is most of it), so one decoder per core keeps any engine fed without
        # crowding the cores the engine needs.
        self.workers = workers or available_cores()
        self.failures: list[tuple[str, str]] = []
        self._hashes: dict[str, str] = {}

    def content_hash(self, example: Example) -> str:
        digest = self._hashes.get(example.key)
        if digest is None:
            digest = self._hashes[example.key] = content_hash(read_source(example.source))
        return digest

    def remember_hashes(self, hashes: Mapping[str, str]) -> None:
        """Take the content hashes (example key -> hash) another process computed for the same files."""
        self._hashes.update(hashes)

    def batching_order(self, examples: Sequence[Example]) -> list[int]:
        """Images batch in the order given: every one costs the module the same."""
        return list(range(len(examples)))

    def probe_inputs(self, count: int) -> np.ndarray:
        """A fixed raw batch (smooth photo-like ramps and noise) that converted engines are checked on.

        Example:
            >>> ImageModality((4, 6)).probe_inputs(2).shape
            (2, 4, 6, 3)
        """
        height, width = self.image_size
        rng = np.random.default_rng(0)
        noise = rng.integers(0, 256, (count, height, width, 3)).astype(np.float32)
        across, down = np.meshgrid(np.linspace(0, 255, width), np.linspace(255, 0, height))
        ramps = np.stack([across, down, np.full((height, width), 128.0)], axis=-1)
        noise[::2] = 0.8 * ramps + 0.2 * noise[::2]
        return noise.astype(np.uint8)

    def _decode(self, example: Example):
        try:
            return decode_image(read_source(example.source), self.image_size)
        except Exception as err:  # noqa: BLE001 - PIL raises many types for damaged files
            return decode_failure(err)

    def iter_inputs(self, examples: Sequence[Example], batch_size: int) -> Iterator[tuple[list[int], np.ndarray]]:
        """Decode in a thread pool that stays a sliding window ahead of the consumer, and batch.

        The window keeps decoders busy while the caller runs the module on the previous
        batch, so decoding overlaps the forward pass instead of alternating with it.
        """
        positions: list[int] = []
        pixels: list[np.ndarray] = []
        window = max(2 * batch_size, 2 * self.workers)
        with ThreadPoolExecutor(self.workers) as pool:
            upcoming = iter(range(len(examples)))
            in_flight = deque((i, pool.submit(self._decode, examples[i])) for i in islice(upcoming, window))
            while in_flight:
                index, future = in_flight.popleft()
                result = future.result()
                for following in islice(upcoming, 1):
                    in_flight.append((following, pool.submit(self._decode, examples[following])))
                if isinstance(result, str):
                    self.failures.append((examples[index].key, result))
                    continue
                positions.append(index)
                pixels.append(result)
                if len(pixels) == batch_size:
                    yield positions, np.stack(pixels)
                    positions, pixels = [], []
        if pixels:
            yield positions, np.stack(pixels)

    def model_inputs(self, raw):
        import tensorflow as tf

        return tf.cast(raw, tf.float32) / 255.0

    def augment(self, raw, seeds):
        """Flip, crop-zoom (to 80% per side), brightness and contrast; uint8 in and out."""
        import tensorflow as tf

        height, width = self.image_size

        def one(args):
            image, seed = args
            image = tf.image.stateless_random_flip_left_right(image, seed)
            scale = tf.random.stateless_uniform([], seed + 1, 0.8, 1.0)
            crop = [tf.cast(scale * height, tf.int32), tf.cast(scale * width, tf.int32), 3]
            image = tf.image.stateless_random_crop(image, crop, seed + 2)
            image = tf.image.resize(tf.cast(image, tf.float32), [height, width]) / 255.0
            image = tf.image.stateless_random_brightness(image, 0.1, seed + 3)
            image = tf.image.stateless_random_contrast(image, 0.8, 1.2, seed + 4)
            return tf.cast(tf.round(tf.clip_by_value(image, 0.0, 1.0) * 255.0), tf.uint8)

        return tf.map_fn(one, (raw, seeds), fn_output_signature=tf.TensorSpec([height, width, 3], tf.uint8))

    def keras_input(self):
        import keras

        return keras.Input((*self.image_size, 3), name="images")

    def build_encoder(self, module: ModuleRef, trainable: bool):
        from hubcli.train.layer import HubLayer

        return HubLayer(module.layer_handle, trainable=trainable, settings=module.settings)

    def serving_signatures(self, model, outputs) -> dict:
        import tensorflow as tf

        height, width = self.image_size

        # No Python control flow on tensors here: autograph would only cost a source rewrite per save.
        @tf.function(input_signature=[tf.TensorSpec([None, height, width, 3], tf.float32, name="images")], autograph=False)
        def serving_default(images):
            return outputs(model(images, training=False))

        # serve_bytes calls this traced function rather than the model: one trace of the model, not two.
        classify_images = serving_default.get_concrete_function()

        # In-graph decoding, so servers need no Python: JPEG/PNG/GIF/BMP/WebP, first frame,
        # antialiased bilinear resize. Unlike training (PIL) it cannot apply EXIF
        # orientation; clients should send upright images.
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")], autograph=False)
        def serve_bytes(image_bytes):
            def decode(data):
                image = tf.io.decode_image(data, channels=3, expand_animations=False)
                image = tf.image.resize(tf.cast(image, tf.float32), [height, width], antialias=True)
                return tf.clip_by_value(image / 255.0, 0.0, 1.0)

            images = tf.map_fn(decode, image_bytes, fn_output_signature=tf.TensorSpec([height, width, 3], tf.float32))
            return classify_images(images)

        return {"serving_default": serving_default, "serve_bytes": serve_bytes}

    def run_fields(self) -> dict:
        return {"image_size": list(self.image_size)}

    @classmethod
    def from_run(cls, run: Run) -> ImageModality:
        if not run.image_size:
            raise DataError(f"run {run.path} records no image_size")
        return cls(run.image_size)

    def load_evaluation_data(self, path) -> tuple[list[str], list[Example]]:
        """Every image of a class-folder (or pre-split) dataset, whatever its split."""
        return scan_image_folder(path)

    def prediction_inputs(self, paths: Sequence[str | os.PathLike]) -> np.ndarray:
        """Float images in [0, 1] for ``predict``: one clear error for an unreadable file."""
        images = []
        for path in paths:
            path = Path(path)
            if path.is_dir():
                raise UsageError(f"{path} is a folder; give image files, e.g. {path / '*.jpg'}")
            if not path.is_file():
                raise NotFoundError(f"{path}: no such file")
            try:
                images.append(decode_image(path.read_bytes(), self.image_size))
            except Exception as err:  # noqa: BLE001 - PIL raises many types for damaged files
                raise DataError(f"{path}: not a readable image ({decode_failure(err)})") from None
        return np.stack(images).astype(np.float32) / 255.0


def parse_image_size(text: str | None) -> tuple[int, int] | None:
    """``"224"`` or ``"224x192"`` (height x width) -> (h, w)."""
    if text is None:
        return None
    parts = text.lower().replace(",", "x").split("x")
    try:
        size = tuple(int(p) for p in parts)
    except ValueError:
        size = ()
    if len(size) not in (1, 2) or min(size) <= 0:
        raise UsageError(f"--image-size {text!r}: give SIZE or HEIGHTxWIDTH, e.g. 224 or 224x192")
    return (size[0], size[-1])


def module_image_size(info, requested: tuple[int, int] | None, handle: str) -> tuple[int, int]:
    """The size images are resized to: the module's own, else --image-size; they must agree."""
    # First: a text module has no image size either, and asking for one would mislead.
    if info.takes_strings:
        raise InvalidModuleError(f"module {handle} takes strings, not images; use classify-text")
    own = tuple(info.image_size) if info.image_size else None
    if own and requested and own != requested:
        raise UsageError(f"module {handle} takes {own[0]}x{own[1]} images; --image-size {requested[0]}x{requested[1]} disagrees")
    size = own or requested
    if size is None:
        raise InvalidModuleError(f"module {handle} does not say which image size it takes; pass --image-size HEIGHTxWIDTH")
    return size


def retrain_images(
    data_dir: str | os.PathLike | None,
    module_handle: str,
    *,
    settings: Settings,
    config: TrainConfig,
    output: str | os.PathLike | None = None,
    overwrite: bool = False,
    tfds_name: str | None = None,
    validation_split: float = 0.1,
    test_split: float = 0.1,
    image_size: tuple[int, int] | None = None,
    gate: QualityGate | None = None,
) -> dict:
    """The library behind ``hubcli retrain-images``: data + module -> a run directory.

    ``data_dir`` is a class-folder (or pre-split) dataset, a manifest with ``config.multi_label``,
    or None with ``tfds_name``; ``image_size`` is needed only when the module does not say its own.
    A ``gate`` is checked for being applicable before training; the caller applies it.

    Example:
        >>> summary = retrain_images("flowers/", "efficientnet_lite0", settings=Settings.load(), config=TrainConfig())  # doctest: +SKIP
        >>> summary["output"]  # doctest: +SKIP
        'runs/flowers'
    """
    config.check()
    if (data_dir is None) == (tfds_name is None):
        raise UsageError("give a DATA_DIR or --tfds NAME (one of them)")
    if config.multi_label:
        if tfds_name:
            raise UsageError("--multi-label reads a manifest (CSV or JSONL), not --tfds")
        data = load_manifest(data_dir, task="image", validation_split=validation_split, test_split=test_split)
        name = Path(data_dir).resolve().stem
    elif tfds_name:
        data = load_tfds(tfds_name, validation_split=validation_split, test_split=test_split)
        name = tfds_name
    else:
        data = load_image_folder(data_dir, validation_split, test_split)
        name = Path(data_dir).resolve().name
    module = ModuleRef.resolve(module_handle, settings)
    modality = ImageModality(module_image_size(module.info, image_size, module_handle))
    if not tfds_name:
        report_duplicates(data.all_examples(), {e.key: modality.content_hash(e) for e in data.all_examples()})
    output = check_output(default_output(name) if output is None else output, overwrite)
    check_run(data, modality, module=module, config=config, gate=gate)
    # Started before TensorFlow is imported: the helper's extraction overlaps the import and the module's load.
    prefetch = Prefetch.start(data, modality, module=module, config=config)
    try:
        from hubcli.train.core import train

        return train(
            data,
            modality,
            module=module,
            config=config,
            output=output,
            overwrite=overwrite,
            data_config={"validation_split": validation_split, "test_split": test_split},
            gate=gate,
            prefetch=prefetch,
        )
    finally:
        if prefetch is not None:
            prefetch.close()
