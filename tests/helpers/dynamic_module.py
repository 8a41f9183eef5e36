"""A tiny image module that accepts any image size (so hubcli cannot know which to use)."""

from __future__ import annotations

from pathlib import Path


def build_dynamic_image_module(path) -> Path:
    """TF2 SavedModel: float32 [None, None, None, 3] -> [None, 3] (mean colour)."""
    import tensorflow as tf

    module = tf.Module()
    module.__call__ = tf.function(
        lambda images: tf.reduce_mean(images, axis=[1, 2]),
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)],
    )
    tf.saved_model.save(module, str(path))
    return Path(path)
