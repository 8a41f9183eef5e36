"""HubLayer: a hub module as a Keras 3 layer, frozen or trainable, saved and reloaded."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from hubcli.errors import InvalidModuleError  # noqa: E402
from hubcli.train.layer import HubLayer  # noqa: E402


def _images(count=6, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (count, 32, 32, 3)).astype(np.float32)


def _model(layer, classes=3):
    inputs = keras.Input(layer.input_shape_hint)
    return keras.Model(inputs, keras.layers.Dense(classes, activation="softmax")(layer(inputs)))


def test_frozen_layer_reads_module_facts_and_stays_in_inference_mode(tiny_image_module):
    layer = HubLayer(str(tiny_image_module))
    assert layer.image_size == (32, 32) and layer.output_dim == 8 and not layer.takes_strings
    images = _images()
    # Frozen: batch norm uses its moving statistics even when Keras says training=True.
    np.testing.assert_allclose(layer(images, training=True), layer(images, training=False), rtol=1e-6)
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == 6
    # Each Keras weight is the module's own variable, not a copy.
    assert all(weight.value is variable for weight, variable in zip(layer.weights, layer.module.variables, strict=True))
    model = _model(layer)
    model(images, training=True)
    assert model.losses == []  # no regularisation of a frozen module


def test_trainable_layer_passes_training_and_adds_regularisation(tiny_image_module):
    layer = HubLayer(str(tiny_image_module), trainable=True)
    images = _images()
    assert not np.allclose(layer(images, training=True), layer(images, training=False))
    names = sorted(w.name for w in layer.trainable_weights)
    assert names == ["bn_beta", "bn_gamma", "dense_bias", "dense_kernel"]
    model = _model(layer)
    model(images, training=True)
    assert len(model.losses) == 1 and float(model.losses[0]) > 0


def test_training_updates_the_module_variables_themselves(tiny_image_module):
    layer = HubLayer(str(tiny_image_module), trainable=True)
    model = _model(layer)
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")
    kernel_before = layer._module.kernel.numpy().copy()
    model.fit(_images(12), np.arange(12) % 3, epochs=2, verbose=0)
    # The optimizer wrote into the tf.Variable the module's own function reads.
    assert not np.allclose(layer._module.kernel.numpy(), kernel_before)


def test_keras_file_round_trip_restores_fine_tuned_weights(tiny_image_module, tmp_path):
    layer = HubLayer(str(tiny_image_module), trainable=True)
    model = _model(layer)
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")
    model.fit(_images(12), np.arange(12) % 3, epochs=2, verbose=0)
    images = _images(4, seed=1)
    expected = model.predict(images, verbose=0)
    model.save(tmp_path / "model.keras")
    reloaded = keras.models.load_model(tmp_path / "model.keras")  # no custom_objects
    np.testing.assert_allclose(reloaded.predict(images, verbose=0), expected, rtol=1e-5, atol=1e-6)
    assert isinstance(reloaded.layers[1], HubLayer)


def test_tf1_hub_module_works_frozen_through_its_signature(tiny_tf1_module):
    layer = HubLayer(str(tiny_tf1_module))
    features = layer(_images(3))
    assert features.shape == (3, 8)
    with pytest.raises(InvalidModuleError, match="frozen"):
        HubLayer(str(tiny_tf1_module), trainable=True)


def test_signature_outputs_and_unknown_signature(tiny_image_module):
    by_signature = HubLayer(str(tiny_image_module), signature="serving_default")
    by_call = HubLayer(str(tiny_image_module))
    images = _images(3)
    np.testing.assert_allclose(by_signature(images), by_call(images), rtol=1e-6)
    with pytest.raises(InvalidModuleError, match="no signature 'nope'"):
        HubLayer(str(tiny_image_module), signature="nope")


def test_text_module_in_a_string_input_model(tiny_text_module):
    layer = HubLayer(str(tiny_text_module), trainable=True)
    assert layer.takes_strings and layer.input_shape_hint == ()
    inputs = keras.Input((), dtype="string")
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(layer(inputs)))
    probabilities = model(tf.constant(["a good film", "a bad film"]))
    assert probabilities.shape == (2, 2)
