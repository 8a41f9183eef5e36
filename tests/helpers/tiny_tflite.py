"""Tiny real TFLite models, converted by TensorFlow itself: float, and full-integer quantised.

``tests/data/tiny.tflite`` and ``tests/data/tiny_int8.tflite`` were written by
:func:`write_reference_files`, so the fast tests need no TensorFlow; a slow test converts
them again and checks the reader against ``tf.lite.Interpreter``.
"""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "data"


def convert(quantized: bool) -> bytes:
    """A 4x4x3 image -> 5 scores model with one ``serving_default`` signature."""
    import numpy as np
    import tensorflow as tf

    class Tiny(tf.Module):
        def __init__(self):
            super().__init__()
            self.kernel = tf.Variable(np.linspace(-1, 1, 48 * 5, dtype=np.float32).reshape(48, 5))

        @tf.function(input_signature=[tf.TensorSpec([None, 4, 4, 3], tf.float32, name="image")])
        def serve(self, image):
            return {"scores": tf.nn.softmax(tf.matmul(tf.reshape(image, [-1, 48]), self.kernel))}

    module = Tiny()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.serve.get_concrete_function()], module)
    if quantized:
        def representative():
            for seed in range(8):
                yield [np.random.default_rng(seed).random((1, 4, 4, 3), dtype=np.float32)]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


def write_reference_files() -> None:
    (DATA / "tiny.tflite").write_bytes(convert(False))
    (DATA / "tiny_int8.tflite").write_bytes(convert(True))


if __name__ == "__main__":
    write_reference_files()
