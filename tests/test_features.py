"""Feature extraction end to end: the engine a run uses, the cache keyed by it, text batched by length, bounded memory."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hubcli.config import Settings
from hubcli.train import engines
from hubcli.train import images as image_data
from hubcli.train.config import TrainConfig
from hubcli.train.features import FeatureExtractor
from hubcli.train.fine_tune import _streamed
from hubcli.train.head import one_hot
from hubcli.train.module_ref import ModuleRef
from hubcli.train.splits import Example
from hubcli.train.text import TextModality
from hubcli.train.text_dataset import text_key
from tests.helpers.synthetic_images import make_image_dataset

pytestmark = pytest.mark.slow

FAST = dict(epochs=30, learning_rate=0.05, batch_size=16, seed=3)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_image_dataset(tmp_path_factory.mktemp("shapes"), per_class=12)


def _retrain(dataset, module, settings, output, **options):
    return image_data.retrain_images(
        dataset, str(module), settings=settings, config=TrainConfig(**{**FAST, **options}), output=output,
        overwrite=True, validation_split=0.2, test_split=0.2,
    )


def test_a_run_large_enough_converts_the_module_and_keys_its_features_by_engine(dataset, tiny_image_module, tmp_path, monkeypatch):
    settings = Settings.load(cache_dir=tmp_path / "cache", offline=True)
    small = _retrain(dataset, tiny_image_module, settings, tmp_path / "small")
    assert small["extraction"]["engine"] == "tensorflow"

    # The same data, now counted as a run worth a conversion.
    monkeypatch.setattr(engines, "CONVERT_MIN_EXAMPLES", 10)
    converted = _retrain(dataset, tiny_image_module, settings, tmp_path / "converted")
    extraction = converted["extraction"]
    assert extraction["engine"] == "tflite-xnnpack"
    # TensorFlow's cached features are not reused for the other engine: every image ran again.
    assert extraction["features_computed"] == 36 and extraction["features_cached"] == 0
    assert converted["accuracy"] >= 0.8
    notes = sorted(p.read_text().strip() for p in (tmp_path / "cache" / "features").rglob("preprocessing.txt"))
    assert notes == [small_note := notes[0], small_note + engines.TFLiteEngine.cache_tag]

    again = _retrain(dataset, tiny_image_module, settings, tmp_path / "again")
    assert again["extraction"] == {**again["extraction"], "engine": "tflite-xnnpack", "features_computed": 0, "features_cached": 36}
    metrics = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert metrics["peak_rss_mb"] > 50 and metrics["extraction"]["engine"] == "tflite-xnnpack"


def test_text_is_batched_by_length_and_each_feature_lands_on_its_sentence(tiny_text_module, tmp_path):
    sentences = [" ".join(["word"] * n) + f" end{n}" for n in (1, 9, 3, 27, 5, 2, 14, 7)]
    examples = [Example(text_key(s), 0, s) for s in sentences]
    modality = TextModality()
    order = modality.batching_order(examples)
    assert [len(sentences[i]) for i in order] == sorted(map(len, sentences), reverse=True)

    module = ModuleRef.resolve(str(tiny_text_module), Settings.load(cache_dir=tmp_path, offline=True))
    encoder = modality.build_encoder(module, trainable=False)
    engine = engines.TensorFlowEngine(engines.frozen_forward(encoder, modality))
    features, kept = FeatureExtractor(modality, engine, cache=None, batch_size=3).features(examples)
    assert kept == list(range(len(sentences)))
    one_by_one = np.concatenate([engine.run(np.array([s], dtype=object)) for s in sentences])
    np.testing.assert_allclose(features, one_by_one, rtol=1e-5, atol=1e-6)


class _CountingImages(image_data.ImageModality):
    """Counts how many images it decodes."""

    decoded = 0

    def _decode(self, example):
        type(self).decoded += 1
        return super()._decode(example)


def test_fine_tuning_decodes_every_epoch_instead_of_holding_the_split(dataset):
    labels, examples = image_data.scan_image_folder(dataset)
    modality = _CountingImages((32, 32))
    stream = _streamed(modality, examples, one_hot([e.label for e in examples], len(labels)), 8, seed=1)
    epochs = [[(raw.numpy(), target.numpy()) for raw, target in stream] for _ in range(2)]
    # One probe image for the signature, then every image once per epoch.
    assert _CountingImages.decoded == 1 + 2 * len(examples)
    assert all(raw.shape[0] <= 8 for epoch in epochs for raw, _ in epoch)
    first, second = (np.concatenate([t.argmax(1) for _, t in epoch]) for epoch in epochs)
    assert sorted(first) == sorted(second) == sorted(e.label for e in examples)
    assert list(first) != list(second), "each epoch visits the images in a new order"
    # Labels travel with their images.
    label_of = {}
    for positions, batch in image_data.ImageModality((32, 32)).iter_inputs(examples, 16):
        label_of.update((image.tobytes(), examples[p].label) for p, image in zip(positions, batch, strict=True))
    for raw, target in epochs[1]:
        assert [label_of[image.tobytes()] for image in raw] == list(target.argmax(1))
