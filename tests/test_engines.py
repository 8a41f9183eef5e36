"""Frozen extraction engines: the probed TFLite conversion, its record, and the silent fall-back to TensorFlow."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from hubcli.config import Settings
from hubcli.train import engines
from hubcli.train.feature_cache import features_root
from hubcli.train.images import ImageModality
from hubcli.train.module_ref import ModuleRef
from hubcli.train.text import TextModality

pytestmark = pytest.mark.slow


def _setup(module_dir, tmp_path, modality_class=ImageModality):
    settings = Settings.load(cache_dir=tmp_path / "cache", offline=True)
    module = ModuleRef.resolve(str(module_dir), settings)
    modality = modality_class(module.info.image_size) if modality_class is ImageModality else modality_class()
    encoder = modality.build_encoder(module, trainable=False)
    return module, modality, encoder, features_root(settings.cache_dir)


def _choose(module, modality, encoder, root, examples=engines.CONVERT_MIN_EXAMPLES):
    return engines.choose_engine(encoder=encoder, modality=modality, module_digest=module.sha256, features_dir=root, examples=examples)


def _records(root):
    return sorted(root.rglob("engines/*.json"))


def test_converted_engine_agrees_with_tensorflow_and_is_recorded_once(tiny_image_module, tmp_path):
    module, modality, encoder, root = _setup(tiny_image_module, tmp_path)
    engine = _choose(module, modality, encoder, root)
    assert engine.name == "tflite-xnnpack" and engine.cache_tag
    (record_file,) = _records(root)
    record = json.loads(record_file.read_text())
    assert record["accepted"] and record["max_abs_diff"] <= engines.AGREEMENT_TOLERANCE
    assert record["preprocessing"] == modality.preprocessing
    # Photos it was not probed on, at batch sizes it was not converted for.
    raw = np.random.default_rng(5).integers(0, 256, (7, *modality.image_size, 3), dtype=np.uint8)
    reference = engines.TensorFlowEngine(engines.frozen_forward(encoder, modality)).run(raw)
    np.testing.assert_allclose(engine.run(raw), reference, atol=engines.AGREEMENT_TOLERANCE)
    np.testing.assert_allclose(engine.run(raw[:1]), reference[:1], atol=engines.AGREEMENT_TOLERANCE)

    stamp = record_file.stat().st_mtime_ns
    again = _choose(module, modality, encoder, root)
    assert again.name == "tflite-xnnpack"
    assert record_file.stat().st_mtime_ns == stamp, "the second run must reuse the record, not probe again"


def test_small_runs_leave_the_conversion_to_a_larger_one(tiny_image_module, tmp_path):
    module, modality, encoder, root = _setup(tiny_image_module, tmp_path)
    engine = _choose(module, modality, encoder, root, examples=engines.CONVERT_MIN_EXAMPLES - 1)
    assert engine.name == "tensorflow" and engine.cache_tag == ""
    assert _records(root) == []
    # Once a larger run has converted it, small runs use it too (one engine per module).
    _choose(module, modality, encoder, root)
    assert _choose(module, modality, encoder, root, examples=1).name == "tflite-xnnpack"


def test_a_changed_flatbuffer_is_never_used(tiny_image_module, tmp_path):
    module, modality, encoder, root = _setup(tiny_image_module, tmp_path)
    _choose(module, modality, encoder, root)
    (flatbuffer,) = root.rglob("engines/*.tflite")
    data = bytearray(flatbuffer.read_bytes())
    data[len(data) // 2] ^= 0xFF
    flatbuffer.write_bytes(bytes(data))
    assert _choose(module, modality, encoder, root).name == "tensorflow"


def test_text_modules_run_on_tensorflow(tiny_text_module, tmp_path):
    module, modality, encoder, root = _setup(tiny_text_module, tmp_path, TextModality)
    assert _choose(module, modality, encoder, root, examples=10_000).name == "tensorflow"
    assert _records(root) == []


def _unconvertible_image_module(path):
    """An image module whose graph holds an op TFLite has no builtin for (BesselI0e)."""
    import tensorflow as tf

    module = tf.Module()
    module.scale = tf.Variable(2.0)

    @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 3], tf.float32)])
    def call(images):
        return tf.reduce_mean(tf.math.special.bessel_i0e(images * module.scale), axis=[1, 2])

    module.__call__ = call
    tf.saved_model.save(module, str(path))
    return path


def test_a_failed_conversion_is_recorded_and_tensorflow_used(tmp_path):
    module_dir = _unconvertible_image_module(tmp_path / "bessel")
    settings = Settings.load(cache_dir=tmp_path / "cache", offline=True)
    module = ModuleRef.resolve(str(module_dir), settings)
    modality = ImageModality((8, 8))
    encoder = modality.build_encoder(module, trainable=False)
    root = features_root(settings.cache_dir)
    assert _choose(module, modality, encoder, root).name == "tensorflow"
    (record_file,) = _records(root)
    record = json.loads(record_file.read_text())
    assert not record["accepted"] and record["reason"].startswith("conversion failed")
    assert list(root.rglob("engines/*.tflite")) == []
    assert _choose(module, modality, encoder, root).name == "tensorflow"


class _SlowDoubling:
    """An engine that records how many batches run at once."""

    workers = 2

    def __init__(self):
        self.running, self.most = 0, 0
        self._lock = threading.Lock()

    def run(self, raw):
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(0.01)
        with self._lock:
            self.running -= 1
        return raw * 2


def test_run_batches_keeps_order_and_bounds_what_is_in_flight():
    engine = _SlowDoubling()
    produced = []

    def batches():
        for index in range(20):
            produced.append(index)
            yield [index], np.full(1, index)

    seen = []
    for positions, features in engines.run_batches(engine, batches()):
        # The producer is never more than two batches per worker ahead of the consumer.
        assert len(produced) - len(seen) <= 2 * engine.workers + 1
        seen.append((positions, int(features[0])))
    assert seen == [([i], 2 * i) for i in range(20)]
    assert 1 <= engine.most <= engine.workers
