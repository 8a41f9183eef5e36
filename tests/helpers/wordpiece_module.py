"""A tiny BERT-family text module: in-graph WordPiece, plus the same encoder on token ids.

Built like the MiniLM recipe, at toy size: ``__call__(texts, training=False)``
lower-cases and WordPiece-tokenizes with ``tensorflow_text.BertTokenizer`` and
a ``vocab.txt`` asset, truncates to ``seq_length`` counting ``[CLS]`` and
``[SEP]``, averages trainable token embeddings over the real tokens and applies
a tanh dense layer. ``tokenize(texts)`` returns the ids it feeds the encoder,
and ``encoder({"input_word_ids", "input_mask", "input_type_ids"})`` runs the
encoder alone, so a client-side tokenizer can replace the in-graph one.
``hubcli_module.json`` records ``max_seq_length``.
:func:`build_wordpiece_preprocessor` is the same tokenizer as a TF Hub-style BERT
preprocessor module (fixed-length int32 outputs, ``assets/vocab.txt``).

The vocabulary covers the words of :mod:`tests.helpers.text_corpus`, some of
them only as WordPiece pieces (``terri ##ble``), so real sub-word splitting
happens.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from recipes.wordpiece import pack_bert_inputs, vocab_table
from tests.helpers.text_corpus import CLASS_WORDS, FILLER

SEQ_LENGTH = 16
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
#: Words the vocabulary holds only as a stem and a suffix piece.
SPLIT_WORDS = {"terrible": ("terri", "##ble"), "wonderful": ("wonder", "##ful"), "brilliant": ("brill", "##iant")}


def vocabulary() -> list[str]:
    words = sorted({w for ws in CLASS_WORDS.values() for w in ws} | set(FILLER) | {".", ",", "!"})
    pieces = [piece for word in SPLIT_WORDS for piece in SPLIT_WORDS[word]]
    return SPECIAL + [w for w in words if w not in SPLIT_WORDS] + pieces


def build_wordpiece_module(path, output_dim: int = 32, seq_length: int = SEQ_LENGTH, seed: int = 0) -> Path:
    import tensorflow as tf
    import tensorflow_text as tf_text

    from tests.helpers.tiny_modules import _reusable_module_class

    path = Path(path)
    vocab = vocabulary()
    rng = np.random.default_rng(seed)
    module = _reusable_module_class()()
    module.embeddings = tf.Variable(rng.normal(0.0, 1.0, (len(vocab), output_dim)).astype(np.float32), name="word_embeddings")
    module.pooler = tf.Variable(np.eye(output_dim, dtype=np.float32) + rng.normal(0.0, 0.1, (output_dim, output_dim)).astype(np.float32), name="pooler")
    with tempfile.TemporaryDirectory() as tmp:
        vocab_path = Path(tmp) / "vocab.txt"
        vocab_path.write_text("\n".join(vocab) + "\n", encoding="utf-8")
        module.vocab_file = tf.saved_model.Asset(str(vocab_path))
        table = vocab_table(module.vocab_file)
        module.table = table
        tokenizer = tf_text.BertTokenizer(table, lower_case=True, token_out_type=tf.int64, unknown_token="[UNK]")
        pad, cls, sep = (vocab.index(t) for t in ("[PAD]", "[CLS]", "[SEP]"))

        def model_inputs(texts):
            pieces = tokenizer.tokenize(texts).merge_dims(-2, -1)
            ids, mask = pack_bert_inputs(pieces, seq_length, pad=pad, cls=cls, sep=sep)
            return tf.cast(ids, tf.int32), tf.cast(mask, tf.int32)

        def encode_ids(ids, mask, training):
            weights = tf.cast(mask, tf.float32)[:, :, None]
            tokens = tf.gather(module.embeddings, ids) * weights
            if training:
                tokens = tf.nn.dropout(tokens, rate=0.1)
            mean = tf.reduce_sum(tokens, axis=1) / tf.maximum(tf.reduce_sum(weights, axis=1), 1.0)
            return tf.tanh(tf.matmul(mean, module.pooler))

        texts_spec = tf.TensorSpec([None], tf.string, name="texts")

        @tf.function
        def call(texts, training=False):
            ids, mask = model_inputs(texts)
            return encode_ids(ids, mask, training)

        call.get_concrete_function(texts_spec, True)
        call.get_concrete_function(texts_spec, False)

        @tf.function(input_signature=[texts_spec])
        def tokenize(texts):
            ids, mask = model_inputs(texts)
            return {"input_ids": ids, "input_mask": mask}

        ids_spec = {name: tf.TensorSpec([None, None], tf.int32, name=name) for name in ("input_word_ids", "input_mask", "input_type_ids")}

        @tf.function(input_signature=[ids_spec])
        def encoder(inputs):
            return {"default": encode_ids(inputs["input_word_ids"], inputs["input_mask"], False)}

        module.__call__ = call
        module.tokenize = tokenize
        module.encoder = encoder
        module.variables = [module.embeddings, module.pooler]
        module.trainable_variables = [module.embeddings, module.pooler]
        module.regularization_losses = []
        tf.saved_model.save(module, str(path))
    metadata = {
        "schema": "hubcli.module/1",
        "name": "tiny_wordpiece",
        "task": "text-embedding",
        "max_seq_length": seq_length,
        "op_libraries": ["tensorflow_text"],
    }
    (path / "hubcli_module.json").write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    return path


def build_wordpiece_preprocessor(path, seq_length: int = SEQ_LENGTH) -> Path:
    """A TF Hub-style BERT preprocessor: strings -> input_word_ids / input_mask / input_type_ids int32 [None, seq_length].

    Its vocabulary ships as ``assets/vocab.txt``; pair it with
    :func:`tests.helpers.text_modules.build_text_encoder` (``--preprocessor``).
    """
    import tensorflow as tf
    import tensorflow_text as tf_text

    path = Path(path)
    vocab = vocabulary()
    module = tf.Module()
    with tempfile.TemporaryDirectory() as tmp:
        vocab_path = Path(tmp) / "vocab.txt"
        vocab_path.write_text("\n".join(vocab) + "\n", encoding="utf-8")
        module.vocab_file = tf.saved_model.Asset(str(vocab_path))
        module.table = vocab_table(module.vocab_file)
        tokenizer = tf_text.BertTokenizer(module.table, lower_case=True, token_out_type=tf.int64, unknown_token="[UNK]")
        pad, cls, sep = (vocab.index(t) for t in ("[PAD]", "[CLS]", "[SEP]"))

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="sentences")])
        def call(sentences):
            pieces = tokenizer.tokenize(sentences).merge_dims(-2, -1)
            ids, mask = pack_bert_inputs(pieces, seq_length, pad=pad, cls=cls, sep=sep)
            # BERT preprocessors pad to a fixed length.
            padding = [[0, 0], [0, seq_length - tf.shape(ids)[1]]]
            word_ids = tf.reshape(tf.pad(tf.cast(ids, tf.int32), padding), [-1, seq_length])
            mask = tf.reshape(tf.pad(tf.cast(mask, tf.int32), padding), [-1, seq_length])
            return {"input_word_ids": word_ids, "input_mask": mask, "input_type_ids": tf.zeros_like(word_ids)}

        module.__call__ = call
        tf.saved_model.save(module, str(path))
    return path
