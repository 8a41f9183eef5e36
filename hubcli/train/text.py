"""The text side of the training core: :class:`TextModality`, ``classify-text`` and predict's sentences.

:class:`TextModality` is the text :class:`~hubcli.train.modality.Modality`;
:func:`classify_text` is the library behind ``hubcli classify-text`` (data from
:func:`hubcli.train.text_dataset.load_text_dataset`), and :func:`read_sentences` gathers
the sentences ``predict`` classifies.

Example:
    >>> summary = classify_text("imdb_labelled.txt", ".modules/minilm_l6_v2", settings=settings, config=TrainConfig())  # doctest: +SKIP
    >>> summary["accuracy"]  # doctest: +SKIP
    0.8913
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from hubcli.config import Settings
from hubcli.errors import DataError, NotFoundError, UsageError
from hubcli.train.batches import batch_bounds
from hubcli.train.config import TrainConfig
from hubcli.train.gate import QualityGate
from hubcli.train.manifest import load_manifest
from hubcli.train.module_ref import ModuleRef
from hubcli.train.rundir import Run, default_output
from hubcli.train.splits import Example
from hubcli.train.text_dataset import TextDataset, load_text_dataset, text_key
from hubcli.train.text_readers import decode_text

#: Bumped when the way a sentence reaches the module changes (cache keys change with it).
TEXT_PREPROCESSING_VERSION = 1
REPRESENTATIVE_TEXTS = 200


class TextModality:
    """Sentences as module inputs: a :class:`~hubcli.train.modality.Modality`.

    Raw inputs are the sentences themselves (``tf.string [batch]``): the module
    tokenizes, handles unknown words and truncates long texts. With a
    ``preprocessor`` (a resolved :class:`~hubcli.train.module_ref.ModuleRef`), the encoder is a
    :class:`~hubcli.train.layer.PreprocessedEncoder` and the preprocessor's
    digest is part of every cached feature's key.

    Example:
        >>> modality = TextModality()
        >>> modality.preprocessing
        'text-v1-raw'
        >>> [(pos, list(batch)) for pos, batch in modality.iter_inputs([Example("k", 0, "good film")], 8)]
        [([0], ['good film'])]
    """

    task = "text"
    supports_augmentation = False
    representative_limit = REPRESENTATIVE_TEXTS

    def __init__(self, preprocessor: ModuleRef | None = None):
        self.preprocessor = preprocessor
        self.preprocessing = f"text-v{TEXT_PREPROCESSING_VERSION}-" + (
            f"preprocessor-{preprocessor.sha256}" if preprocessor is not None else "raw"
        )
        self.failures: list[tuple[str, str]] = []

    def content_hash(self, example: Example) -> str:
        return text_key(example.source)

    def batching_order(self, examples: Sequence[Example]) -> list[int]:
        """Longest sentences first, so each batch pads to nearly its own length (the module pads to a batch's longest).

        Example:
            >>> TextModality().batching_order([Example("a", 0, "short"), Example("b", 0, "a longer one")])
            [1, 0]
        """
        return sorted(range(len(examples)), key=lambda i: -len(examples[i].source))

    def iter_inputs(self, examples: Sequence[Example], batch_size: int) -> Iterator[tuple[list[int], np.ndarray]]:
        # Nothing to decode: sentences are already in memory.
        for start, stop in batch_bounds(len(examples), batch_size):
            yield list(range(start, stop)), np.array([e.source for e in examples[start:stop]], dtype=object)

    def model_inputs(self, raw):
        return raw

    def augment(self, raw, seeds):
        """Sentences are not augmented (``supports_augmentation`` is False): the identity."""
        return raw

    def keras_input(self):
        import keras

        return keras.Input((), dtype="string", name="text")

    def build_encoder(self, module: ModuleRef, trainable: bool):
        if self.preprocessor is None:
            from hubcli.train.layer import HubLayer

            return HubLayer(module.layer_handle, trainable=trainable, settings=module.settings)
        from hubcli.train.layer import PreprocessedEncoder

        return PreprocessedEncoder(self.preprocessor.layer_handle, module.layer_handle, trainable=trainable, settings=module.settings)

    def serving_signatures(self, model, outputs) -> dict:
        import tensorflow as tf

        # No Python control flow on tensors here: autograph would only cost a source rewrite per save.
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")], autograph=False)
        def serving_default(text):
            return outputs(model(text, training=False))

        return {"serving_default": serving_default}

    def run_fields(self) -> dict:
        preprocessor = self.preprocessor.to_json() if self.preprocessor is not None else None
        return {"image_size": None, "preprocessor": preprocessor}

    # -- using a finished run (evaluate, predict) ----------------------------------------------
    @classmethod
    def from_run(cls, run: Run) -> TextModality:
        # The run's model/ carries the preprocessor; evaluation feeds it raw sentences.
        return cls()

    def load_evaluation_data(self, path, **options) -> tuple[list[str], list[Example]]:
        """Every labelled sentence of ``path`` (any DATA form), whatever its split.

        ``options``: ``text_column``, ``label_column``, ``encoding``.
        """
        data = load_text_dataset(path, **options)
        return data.class_names, data.examples()

    def prediction_inputs(self, sentences: Sequence[str]) -> np.ndarray:
        return np.array(list(sentences), dtype=object)


def read_sentences(texts: Sequence[str] | None = None, files: Sequence[str | Path] = (), *, stdin=None, encoding: str = "utf-8") -> list[str]:
    """Sentences for ``predict``: ``--text`` values, else each line of ``files``, else stdin lines.

    ``--text -`` also reads stdin. Blank lines are dropped; nothing left is a DataError.

    Example:
        >>> read_sentences(["a fine film", "dull"])
        ['a fine film', 'dull']
        >>> import io
        >>> read_sentences(["-"], stdin=io.StringIO("one\\n\\ntwo\\n"))
        ['one', 'two']
    """
    texts = list(texts or [])
    if "-" in texts and len(texts) > 1:
        raise UsageError("--text - (read stdin) cannot be combined with other --text values")
    if texts and texts != ["-"]:
        if files:
            raise UsageError("give sentences with --text or in FILES, not both")
        sentences = texts
    elif files and not texts:
        sentences = []
        for file in files:
            path = Path(file)
            if not path.is_file():
                raise NotFoundError(f"{path}: no such file")
            sentences += decode_text(path.read_bytes(), path, encoding).split("\n")
    else:
        sentences = (stdin or sys.stdin).read().replace("\r\n", "\n").split("\n")
    sentences = [sentence.strip() for sentence in sentences if sentence.strip()]
    if not sentences:
        raise DataError('no sentences to classify: give --text "...", FILES, or one sentence per line on stdin')
    return sentences


def classify_text(
    data: str | Path | TextDataset | None,
    module_handle: str,
    *,
    settings: Settings,
    config: TrainConfig,
    output: str | Path | None = None,
    overwrite: bool = False,
    tfds_name: str | None = None,
    text_column: str | None = None,
    label_column: str | None = None,
    encoding: str = "utf-8",
    preprocessor_handle: str | None = None,
    validation_split: float = 0.1,
    test_split: float = 0.1,
    tfds_data_dir=None,
    gate: QualityGate | None = None,
) -> dict:
    """The library behind ``hubcli classify-text``: labelled sentences + text module -> a run directory.

    ``data`` is a path (any form :func:`load_text_dataset` reads, or a manifest with
    ``config.multi_label``), ``None`` with ``tfds_name``, or a :class:`TextDataset` already
    loaded. Bad data and a wrong module are reported before TensorFlow starts. A ``gate`` is
    checked for being applicable before training; the caller applies it.

    Example:
        >>> from hubcli import Settings  # doctest: +SKIP
        >>> from hubcli.train.config import TrainConfig  # doctest: +SKIP
        >>> summary = classify_text("imdb_labelled.txt", ".modules/minilm_l6_v2", settings=Settings.load(), config=TrainConfig())  # doctest: +SKIP
        >>> summary["accuracy"], summary["output"]  # doctest: +SKIP
        (0.8913, 'runs/imdb_labelled')
    """
    config.check()
    if config.multi_label:
        if tfds_name or text_column or label_column or isinstance(data, TextDataset):
            raise UsageError("--multi-label reads a manifest (CSV with text,labels columns, or JSONL); drop --tfds/--text-column/--label-column")
        split = load_manifest(data, task="text", validation_split=validation_split, test_split=test_split, encoding=encoding)
        source, data_config = split.origin, {"format": "manifest"}
    else:
        dataset = data if isinstance(data, TextDataset) else load_text_dataset(
            data, tfds=tfds_name, text_column=text_column, label_column=label_column, encoding=encoding, tfds_data_dir=tfds_data_dir
        )
        split = dataset.split(validation_split, test_split)
        source = dataset.source
        data_config = {"format": dataset.format, "columns": dataset.columns or None, "skipped_empty_texts": dataset.skipped_empty}
    check_text_module(module_handle, preprocessor_handle, settings)
    # Imported only now, so bad data or a wrong module is reported without waiting for TensorFlow.
    from hubcli.train.core import train

    module = ModuleRef.resolve(module_handle, settings)
    preprocessor = ModuleRef.resolve(preprocessor_handle, settings) if preprocessor_handle else None
    if output is None:
        origin = Path(source.removeprefix("tfds:")).resolve()
        output = default_output(origin.stem if origin.is_file() else origin.name)
    data_config = {"validation_split": validation_split, "test_split": test_split, **data_config}
    return train(
        split, TextModality(preprocessor), module=module, config=config, output=output, overwrite=overwrite, data_config=data_config, gate=gate
    )


def check_text_module(module_handle: str, preprocessor_handle: str | None, settings) -> None:
    """Refuse a module that cannot take sentences, without loading TensorFlow (inspection only).

    With a preprocessor, the preprocessor is what takes the strings.

    Raises:
        InvalidModuleError: the module fed with sentences does not take tf.string.
        NotFoundError: a handle resolves to nothing.
    """
    from hubcli.errors import InvalidModuleError
    from hubcli.hub.pull import resolve_module_path
    from hubcli.savedmodel.inspector import inspect_module

    handle = preprocessor_handle or module_handle
    info = inspect_module(resolve_module_path(handle, settings))
    if info.image_size:
        # An image module given by mistake: the BERT hint below would send the user the wrong way.
        raise InvalidModuleError(f"module {handle} takes images, not strings; use retrain-images")
    if not info.takes_strings:
        hint = "" if preprocessor_handle else "; BERT-style encoders need --preprocessor HANDLE"
        raise InvalidModuleError(f"module {handle} does not take strings{hint}")
