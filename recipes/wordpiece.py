"""In-graph WordPiece for BERT-family modules: the vocabulary table and ``[CLS] pieces [SEP]`` packing.

Shared by the module recipes (and the tests' tiny WordPiece module), so every
module that tokenizes in its graph packs token ids the way an on-device BERT
tokenizer does: ``[CLS]``, at most ``seq_length - 2`` pieces, ``[SEP]``, then
padding.

Example:
    >>> import tensorflow as tf  # doctest: +SKIP
    >>> pieces = tf.ragged.constant([[7, 8], [9]], dtype=tf.int64)  # doctest: +SKIP
    >>> ids, mask = pack_bert_inputs(pieces, 8, pad=0, cls=2, sep=3)  # doctest: +SKIP
    >>> ids.numpy().tolist()  # doctest: +SKIP
    [[2, 7, 8, 3], [2, 9, 3, 0]]
"""

from __future__ import annotations


def vocab_table(asset):
    """Token -> line number of a vocabulary file (a ``tf.saved_model.Asset``, one token a line); -1 if absent."""
    import tensorflow as tf

    initializer = tf.lookup.TextFileInitializer(
        asset,
        key_dtype=tf.string,
        key_index=tf.lookup.TextFileIndex.WHOLE_LINE,
        value_dtype=tf.int64,
        value_index=tf.lookup.TextFileIndex.LINE_NUMBER,
    )
    return tf.lookup.StaticHashTable(initializer, default_value=-1)


def pack_bert_inputs(pieces, seq_length: int, *, pad: int, cls: int, sep: int):
    """Dense int64 ids ``[batch, length]`` of ``[CLS] pieces [SEP]`` (pieces cut to ``seq_length - 2``) and their bool mask."""
    import tensorflow as tf

    pieces = pieces[:, : seq_length - 2]
    lengths = pieces.row_lengths()[:, None]
    # Dense padding then placing [CLS]/[SEP] by position: a ragged concat would add
    # row-count assertions that Grappler warns about on every trace.
    ids = tf.pad(pieces.to_tensor(default_value=pad), [[0, 0], [1, 1]], constant_values=pad)
    positions = tf.range(tf.shape(ids, out_type=tf.int64)[1], dtype=tf.int64)[None, :]
    ids = tf.where(positions == 0, tf.constant(cls, tf.int64), ids)
    ids = tf.where(positions == lengths + 1, tf.constant(sep, tf.int64), ids)
    return ids, positions < lengths + 2
