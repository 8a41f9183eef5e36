"""Text classifiers on device: the run's encoder on token ids, its WordPiece vocabulary for the client.

A text run's model takes strings and tokenizes inside its graph, with
tensorflow-text ops that TFLite's builtin op set lacks. BERT-family encoders
can leave the tokenizer behind: the TFLite model takes ``ids``, ``mask`` and
``segment_ids`` (int32 ``[1, max_seq_length]``) and the client tokenizes with
the encoder's ``vocab.txt`` (MediaPipe Tasks' ``TextClassifier`` does,
following the model's metadata). Two kinds of runs can:

- runs on a single module that also offers its encoder on token ids: an
  ``encoder`` function taking TF Hub's BERT-encoder inputs
  (``input_word_ids``, ``input_mask``, ``input_type_ids``), a ``tokenize``
  function, ``assets/vocab.txt`` and ``max_seq_length`` in
  ``hubcli_module.json`` (the MiniLM module built by ``make modules`` does);
- runs with a BERT-style ``--preprocessor`` whose module ships
  ``assets/vocab.txt``: the encoder module already takes token ids.

Anything else (hashed words, a tokenizer with no vocabulary file, a cased
vocabulary that the client's lower-casing tokenizer would not match) is
refused with one line naming why.

Example:
    >>> route = token_id_route(model)  # doctest: +SKIP
    >>> keras_model = token_id_model(model, route)  # doctest: +SKIP
    >>> route.tokenize(["a fine film"])["ids"].shape  # doctest: +SKIP
    (1, 256)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from hubcli.errors import ExportError
from hubcli.export.tflite_metadata import BERT_INPUTS

#: Tokens the client's BERT tokenizer looks up in the vocabulary.
_REQUIRED_TOKENS = ("[CLS]", "[SEP]", "[UNK]")
_BATCH = 32


@dataclass(frozen=True)
class TokenIdRoute:
    """How a run's encoder is fed token ids, and what the client needs to make them."""

    #: Keras layer (or callable) that maps the BERT-encoder input dict to the features the head takes.
    encode: Callable
    #: Strings -> {"ids", "mask", "segment_ids"} int32 [n, seq_length], made by the run's own tokenizer.
    tokenize: Callable[[Sequence[str]], dict]
    vocab: bytes
    seq_length: int
    feature_dim: int
    #: The Keras layer that owns the encoder's variables (tracked by the export model, so they are saved).
    owner: object = None


def token_id_route(model) -> TokenIdRoute:
    """The token-id route of a loaded text run model, or ExportError naming why it has none."""
    from hubcli.train.layer import HubLayer, PreprocessedEncoder

    encoder = next((layer for layer in model.layers if isinstance(layer, (HubLayer, PreprocessedEncoder))), None)
    if encoder is None:
        raise ExportError("the run's model holds no hub module layer to feed token ids")
    if isinstance(encoder, PreprocessedEncoder):
        return _preprocessor_route(encoder)
    return _module_route(encoder)


def _module_route(layer) -> TokenIdRoute:
    module = layer.module
    lacking = []
    if not callable(getattr(module, "encoder", None)) or not callable(getattr(module, "tokenize", None)):
        lacking.append("encoder function on token ids (input_word_ids, input_mask, input_type_ids) with a tokenize function")
    vocab_path = Path(layer.module_path) / "assets" / "vocab.txt"
    if not vocab_path.is_file():
        lacking.append("WordPiece vocabulary (assets/vocab.txt)")
    seq_length = _declared_seq_length(Path(layer.module_path))
    if seq_length is None:
        lacking.append("max_seq_length in hubcli_module.json")
    if lacking:
        listed = lacking[0] if len(lacking) == 1 else ", ".join(lacking[:-1]) + " or " + lacking[-1]
        raise ExportError(
            f"module {layer.handle} tokenizes inside its graph and has no {listed}, so its tokenization "
            "cannot leave the graph for an on-device tokenizer; export this run with --format savedmodel or keras"
        )
    vocab = _checked_vocab(vocab_path, f"module {layer.handle}")

    def tokenize(texts: Sequence[str]) -> dict:
        tokens = module.tokenize(tf.constant(list(texts), dtype=tf.string))
        ids = tokens.get("input_word_ids", tokens.get("input_ids"))
        return _padded(ids.numpy(), tokens["input_mask"].numpy(), seq_length)

    def encode(inputs):
        outputs = module.encoder(inputs)
        return outputs["default"] if isinstance(outputs, dict) else outputs

    return TokenIdRoute(encode, tokenize, vocab, seq_length, layer.output_dim, owner=layer)


def _preprocessor_route(layer) -> TokenIdRoute:
    preprocessor = layer.preprocessor
    vocab_path = Path(preprocessor.module_path) / "assets" / "vocab.txt"
    if not vocab_path.is_file():
        raise ExportError(
            f"preprocessor {preprocessor.handle} has no WordPiece vocabulary (assets/vocab.txt): it tokenizes in its graph "
            "in a way an on-device BERT tokenizer cannot reproduce; export this run with --format savedmodel or keras"
        )
    vocab = _checked_vocab(vocab_path, f"preprocessor {preprocessor.handle}")
    seq_length = int(preprocessor(tf.constant(["a"]))["input_word_ids"].shape[-1])
    if seq_length < 2:
        raise ExportError(f"preprocessor {preprocessor.handle} does not pad to a fixed sequence length")

    def tokenize(texts: Sequence[str]) -> dict:
        tokens = preprocessor(tf.constant(list(texts), dtype=tf.string))
        return _padded(tokens["input_word_ids"].numpy(), tokens["input_mask"].numpy(), seq_length)

    return TokenIdRoute(layer.encoder, tokenize, vocab, seq_length, layer.output_dim, owner=layer.encoder)


def _declared_seq_length(module_dir: Path) -> int | None:
    try:
        value = json.loads((module_dir / "hubcli_module.json").read_text(encoding="utf-8")).get("max_seq_length")
    except (OSError, ValueError, AttributeError):
        return None
    return int(value) if isinstance(value, int) and value >= 2 else None


def _checked_vocab(path: Path, owner: str) -> bytes:
    """The vocabulary file's bytes, if a lower-casing client BERT tokenizer can use it as is."""
    data = path.read_bytes()
    try:
        tokens = data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise ExportError(f"{owner}: {path} is not UTF-8 text") from None
    missing = [token for token in _REQUIRED_TOKENS if token not in tokens]
    if missing:
        raise ExportError(f"{owner}: its vocabulary lacks {', '.join(missing)}, which a BERT tokenizer on the device needs")
    cased = [token for token in tokens if not token.startswith("[") and token != token.lower()]
    if cased:
        raise ExportError(
            f"{owner} has a cased vocabulary ({cased[0]!r}...), but the on-device BERT tokenizer lower-cases every "
            "sentence, so it would not reproduce the run's tokens; export this run with --format savedmodel or keras"
        )
    return data


def _padded(ids: np.ndarray, mask: np.ndarray, seq_length: int) -> dict:
    """Token ids and mask padded with 0 (or cut) to ``seq_length``, as a device tokenizer fills its tensors."""
    count = len(ids)
    out = {name: np.zeros((count, seq_length), np.int32) for name in BERT_INPUTS}
    width = min(ids.shape[1], seq_length)
    out["ids"][:, :width] = ids[:, :width]
    out["mask"][:, :width] = mask[:, :width]
    return out


def token_id_model(model, route: TokenIdRoute):
    """A Keras model: ids, mask, segment_ids int32 [1, seq_length] -> the run's class probabilities.

    It reuses the run's trained layers (the encoder's variables, fine-tuned or
    not, and the classifier), so nothing is copied or retrained.
    """
    inputs = {name: keras.Input((route.seq_length,), batch_size=1, dtype="int32", name=name) for name in BERT_INPUTS}
    features = _TokenIdEncoder(route, name="token_id_encoder")(inputs)
    return keras.Model(inputs, model.get_layer("classifier")(features), name="token_id_classifier")


class _TokenIdEncoder(keras.layers.Layer):
    """Calls a route's encoder on the dict of token-id tensors (built for an export, never saved)."""

    def __init__(self, route: TokenIdRoute, **kwargs):
        super().__init__(trainable=False, autocast=False, **kwargs)
        self.route = route
        self.owner = route.owner  # an attribute, so Keras tracks the encoder's variables

    def call(self, inputs):
        return self.route.encode({"input_word_ids": inputs["ids"], "input_mask": inputs["mask"], "input_type_ids": inputs["segment_ids"]})

    def compute_output_shape(self, input_shape):
        return (input_shape["ids"][0], self.route.feature_dim)


def run_token_id_tflite(flatbuffer: bytes, inputs: dict) -> np.ndarray:
    """Probabilities of a token-id TFLite model on ``inputs`` (the dict :attr:`TokenIdRoute.tokenize` returns)."""
    import warnings

    from hubcli.quiet_tensorflow import native_stderr_silenced

    outputs = []
    with warnings.catch_warnings(), native_stderr_silenced():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's move to ai_edge_litert
        interpreter = tf.lite.Interpreter(model_content=flatbuffer)
        runner = interpreter.get_signature_runner("serving_default")
        count = len(inputs["ids"])
        for start in range(0, count, _BATCH):
            batch = {name: values[start : start + _BATCH] for name, values in inputs.items()}
            (result,) = runner(**batch).values()
            outputs.append(np.asarray(result, dtype=np.float32))
    return np.concatenate(outputs)
