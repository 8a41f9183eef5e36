"""The tiny modules the other tests rely on behave as their docstrings say."""

import numpy as np
import tensorflow as tf


def test_image_module_follows_reusable_conventions(tiny_image_module):
    module = tf.saved_model.load(str(tiny_image_module))
    images = tf.random.stateless_uniform([4, 32, 32, 3], seed=[1, 2])
    frozen = module(images, training=False)
    assert frozen.shape == (4, 8)
    assert len(module.variables) == 6 and len(module.trainable_variables) == 4
    assert float(module.regularization_losses[0]()) > 0
    before = module.variables[4].numpy().copy()
    trained = module(images, training=True)
    assert not np.allclose(frozen.numpy(), trained.numpy())
    assert not np.allclose(before, module.variables[4].numpy()), "training=True must update the moving mean"
    serving = module.signatures["serving_default"]
    np.testing.assert_allclose(serving(images=images)["feature_vector"].numpy(), module(images, training=False).numpy(), rtol=1e-5)


def test_text_module_embeds_strings(tiny_text_module):
    module = tf.saved_model.load(str(tiny_text_module))
    out = module(tf.constant(["Good movie", "good MOVIE", "terrible plot", ""]))
    assert out.shape == (4, 16)
    np.testing.assert_allclose(out[0].numpy(), out[1].numpy())
    assert not np.allclose(out[0].numpy(), out[2].numpy())
    np.testing.assert_allclose(out[3].numpy(), 0.0)


def test_tf1_module_has_default_signature(tiny_tf1_module):
    assert (tiny_tf1_module / "tfhub_module.pb").read_bytes() == b"\x08\x03"
    module = tf.saved_model.load(str(tiny_tf1_module), tags=[])
    out = module.signatures["default"](images=tf.ones([2, 32, 32, 3]))["default"]
    assert out.shape == (2, 8)


def test_archive_root_is_module(tiny_image_archive):
    import tarfile

    with tarfile.open(tiny_image_archive) as tar:
        names = tar.getnames()
    assert "saved_model.pb" in names and "variables" in names
