"""A tiny image module whose graph holds an op neither TFLite's builtins nor tf2onnx can map (RGBToHSV)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def build_hsv_image_module(path, image_size: int = 32, output_dim: int = 8, seed: int = 0) -> Path:
    """TF2 Reusable SavedModel: float32 [None, size, size, 3] -> HSV -> a dense layer -> [None, output_dim]."""
    import tensorflow as tf

    from tests.helpers.tiny_modules import _reusable_module_class

    rng = np.random.default_rng(seed)
    module = _reusable_module_class()()
    module.kernel = tf.Variable(rng.normal(0.0, 1.0, (3, output_dim)).astype(np.float32), name="kernel")

    @tf.function(input_signature=[tf.TensorSpec([None, image_size, image_size, 3], tf.float32, name="images")])
    def call(images):
        hsv = tf.image.rgb_to_hsv(images)
        return tf.matmul(tf.reduce_mean(hsv, axis=[1, 2]), module.kernel)

    module.__call__ = call
    module.variables = [module.kernel]
    module.trainable_variables = [module.kernel]
    module.regularization_losses = []
    tf.saved_model.save(module, str(path))
    return Path(path)
