"""What the training core needs from a kind of data: the :class:`Modality` protocol.

The core (features, head, fine-tuning, run directory, evaluate and predict) never
looks at pixels or characters; everything that does lives in a Modality.
:class:`hubcli.train.images.ImageModality` and :class:`hubcli.train.text.TextModality`
implement it.

Inputs pass through three forms:

- an :class:`~hubcli.train.splits.Example` (a file path, encoded bytes or a sentence);
- *raw* inputs: compact arrays kept in memory and in fine-tuning datasets, uint8
  ``[b, h, w, 3]`` for images, an object array of str ``[b]`` for text;
- *model* inputs, made in the graph by :meth:`Modality.model_inputs`: what the Keras model
  and the module take (float32 images in [0, 1], ``tf.string`` sentences).

A modality may also offer ``probe_inputs(count) -> raw batch``: a fixed batch on which a
converted extraction engine is checked against TensorFlow (:mod:`hubcli.train.engines`);
without it, features are always computed by TensorFlow.

Example:
    >>> from hubcli.train.text import TextModality
    >>> isinstance(TextModality(), Modality)
    True
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from hubcli import console
from hubcli.train.module_ref import ModuleRef
from hubcli.train.rundir import Run
from hubcli.train.splits import Example

if TYPE_CHECKING:
    import keras
    import tensorflow as tf


@runtime_checkable
class Modality(Protocol):
    """The data-specific half of a run, for training and for using a finished run."""

    #: ``"image"`` or ``"text"``: run.json's ``task``, on which evaluate and predict dispatch.
    task: str
    #: Stable id of every step from raw example to module input (size, resize method, decoder
    #: version...). Part of every feature-cache key: it changes whenever the module's input could.
    preprocessing: str
    #: False for text: ``--augment`` is refused and fine-tuning uses none.
    supports_augmentation: bool
    #: At most this many training inputs go to representative.npz (at most 200).
    representative_limit: int
    #: ``(example.key, reason)`` of the examples :meth:`iter_inputs` skipped.
    failures: list[tuple[str, str]]

    @classmethod
    def from_run(cls, run: Run) -> Modality:
        """The modality that reads data for a finished run (evaluate, predict)."""
        ...

    def content_hash(self, example: Example) -> str:
        """Hex digest of the example's raw content (image bytes; utf-8 text, plus anything
        else that changes the module input); never its path, label or split."""
        ...

    def batching_order(self, examples: Sequence[Example]) -> list[int]:
        """The order in which feature extraction batches ``examples`` (indices into them): text
        sorts by length, so a batch pads little; the features are put back in place."""
        ...

    def iter_inputs(self, examples: Sequence[Example], batch_size: int) -> Iterator[tuple[list[int], np.ndarray]]:
        """Yield ``(positions in examples, batch of raw inputs)``, decoding ahead while the caller
        runs the module. Unreadable examples are skipped and appended to :attr:`failures`."""
        ...

    def model_inputs(self, raw: tf.Tensor) -> tf.Tensor:
        """In the graph: a raw batch -> what the Keras model (and module) take."""
        ...

    def augment(self, raw: tf.Tensor, seeds: tf.Tensor) -> tf.Tensor:
        """Seeded augmentation of a raw batch (same dtype and shape out); ``seeds`` int32 [b, 2],
        one stateless seed per example so cached augmented copies are reproducible.
        Called only when :attr:`supports_augmentation`."""
        ...

    def keras_input(self) -> keras.KerasTensor:
        """``keras.Input`` of one model input (``(h, w, 3)`` images, ``()`` strings)."""
        ...

    def build_encoder(self, module: ModuleRef, trainable: bool) -> keras.layers.Layer:
        """The layer from model inputs to features (a HubLayer, or a preprocessor and encoder pair)."""
        ...

    def serving_signatures(self, model: keras.Model, outputs: Callable[[tf.Tensor], dict]) -> dict:
        """``tf.function``\\ s with input signatures for ``model/``; each returns ``outputs`` of
        the model's probabilities (:func:`hubcli.train.serving.classify_outputs` or
        :func:`~hubcli.train.serving.multilabel_outputs`)."""
        ...

    def run_fields(self) -> dict:
        """This modality's keys in run.json (``image_size``, a text run's ``preprocessor``)."""
        ...

    def load_evaluation_data(self, path, **options) -> tuple[list[str], list[Example]]:
        """Class names and every labelled example at ``path``, whatever its split (``evaluate``)."""
        ...

    def prediction_inputs(self, items: Sequence[str]) -> np.ndarray:
        """Model inputs for ``predict`` (image files, sentences); one clear error for a bad item."""
        ...


def warn_skipped(failures: Sequence[tuple[str, str]]) -> None:
    """One warning naming the examples a modality could not read (the first ten, with reasons)."""
    if failures:
        shown = ", ".join(f"{key} ({reason})" for key, reason in failures[:10])
        more = f" and {len(failures) - 10} more" if len(failures) > 10 else ""
        console.warn(f"skipped {len(failures)} unreadable example(s): {shown}{more}")
