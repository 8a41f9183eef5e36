"""A tiny BERT-style pair of modules: a preprocessor and an encoder, as TF Hub ships them.

- :func:`build_text_preprocessor`: tf.string [None] -> {"input_word_ids",
  "input_mask", "input_type_ids"}: int32 [None, seq_length]. It tokenizes with
  ``tensorflow_text.WhitespaceTokenizer``, so its graph holds tensorflow-text
  custom ops and loads only once that library is imported; it truncates to
  ``seq_length`` tokens, as BERT preprocessors do.
- :func:`build_text_encoder`: that dict -> {"pooled_output": [None, dim],
  "sequence_output": [None, seq_length, dim], "default": pooled}, with a
  trainable embedding table and ``training`` argument (dropout), following the
  Reusable SavedModel conventions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SEQ_LENGTH = 12
VOCAB_BUCKETS = 997


def build_text_preprocessor(path, seq_length: int = SEQ_LENGTH) -> Path:
    import tensorflow as tf
    import tensorflow_text as tf_text

    module = tf.Module()
    tokenizer = tf_text.WhitespaceTokenizer()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="sentences")])
    def call(sentences):
        tokens = tokenizer.tokenize(tf.strings.lower(sentences))
        # Id 0 is padding and 1 is [CLS]; words hash into the remaining buckets.
        ids = tf.strings.to_hash_bucket_fast(tokens, VOCAB_BUCKETS - 2) + 2
        ids = tf.concat([tf.ones_like(ids[:, :1]), ids], axis=1)[:, :seq_length]
        word_ids = tf.cast(ids.to_tensor(0, shape=[None, seq_length]), tf.int32)
        mask = tf.cast(word_ids > 0, tf.int32)
        return {"input_word_ids": word_ids, "input_mask": mask, "input_type_ids": tf.zeros_like(word_ids)}

    module.__call__ = call
    path = Path(path)
    tf.saved_model.save(module, str(path))
    return path


def build_text_encoder(path, output_dim: int = 16, seq_length: int = SEQ_LENGTH, seed: int = 0) -> Path:
    import tensorflow as tf

    from tests.helpers.tiny_modules import _reusable_module_class

    rng = np.random.default_rng(seed)
    module = _reusable_module_class()()
    module.embeddings = tf.Variable(rng.normal(0.0, 1.0, (VOCAB_BUCKETS, output_dim)).astype(np.float32), name="word_embeddings")
    module.pooler = tf.Variable(np.eye(output_dim, dtype=np.float32), name="pooler/kernel")
    spec = {
        name: tf.TensorSpec([None, seq_length], tf.int32, name=name)
        for name in ("input_word_ids", "input_mask", "input_type_ids")
    }

    @tf.function
    def call(inputs, training=False):
        mask = tf.cast(inputs["input_mask"], tf.float32)[:, :, None]
        sequence = tf.gather(module.embeddings, inputs["input_word_ids"]) * mask
        if training:
            sequence = tf.nn.dropout(sequence, rate=0.1)
        mean = tf.reduce_sum(sequence, axis=1) / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)
        pooled = tf.tanh(tf.matmul(mean, module.pooler))
        return {"pooled_output": pooled, "sequence_output": sequence, "default": pooled}

    call.get_concrete_function(spec, True)
    call.get_concrete_function(spec, False)
    module.__call__ = call
    module.variables = [module.embeddings, module.pooler]
    module.trainable_variables = [module.embeddings, module.pooler]
    module.regularization_losses = []
    path = Path(path)
    tf.saved_model.save(module, str(path))
    return path
