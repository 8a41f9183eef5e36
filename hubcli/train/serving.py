"""A run's serving model: the outputs every signature returns, saving ``model/``, and calling it.

Every run's ``model/`` SavedModel has a ``serving_default`` signature (float images in [0, 1],
or strings) and, for images, ``serve_bytes`` (encoded images); each returns
``probabilities`` and ``classes`` (the top-1 class name), or for a multi-label run
``probabilities``, ``thresholds`` and ``predicted`` (each [batch, labels]). Evaluate, predict and the export
checks all compute a run's answers through :class:`ServingModel`, so they agree by
construction.

Example:
    >>> serving = ServingModel(open_run("runs/flowers"))  # doctest: +SKIP
    >>> serving.probabilities(images).shape  # doctest: +SKIP
    (8, 5)
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from hubcli.errors import DataError
from hubcli.train.batches import in_batches
from hubcli.train.rundir import Run


def classify_outputs(probabilities: tf.Tensor, labels: Sequence[str]) -> dict:
    """The serving outputs every run model returns: probabilities and the top-1 class name."""
    names = tf.constant(list(labels))
    return {"probabilities": probabilities, "classes": tf.gather(names, tf.argmax(probabilities, axis=-1))}


def multilabel_outputs(probabilities: tf.Tensor, thresholds: Sequence[float]) -> dict:
    """The serving outputs of a multi-label run: per-label probabilities, thresholds and decisions.

    ``thresholds`` and ``predicted`` have the shape of ``probabilities`` ([batch, labels]), so
    every output of a signature describes the same examples.
    """
    limits = tf.broadcast_to(tf.constant(np.asarray(thresholds, dtype=np.float32)), tf.shape(probabilities))
    return {"probabilities": probabilities, "thresholds": limits, "predicted": probabilities >= limits}


def save_serving_model(model: keras.Model, signatures: dict, path: Path) -> tf.Module:
    """Save ``model`` as a SavedModel at ``path`` with the given serving ``signatures``; returns what it tracks.

    The SavedModel tracks what the signatures read, not the Keras objects: each hub
    module as it was loaded (its variables, tables and assets) and the TF storage of
    the model's other weights. Tracking the Keras model would store every module variable
    twice (the module's and the Keras wrapper's) and cost a second walk over both.
    """
    from hubcli.train.layer import HubLayer

    hub_layers = [layer for layer in model._flatten_layers(include_self=False) if isinstance(layer, HubLayer)]
    module_variables = {id(variable) for layer in hub_layers for variable in getattr(layer.module, "variables", ())}
    holder = tf.Module()
    holder.modules = [layer.module for layer in hub_layers]
    holder.weights = [weight.value for weight in model.weights if id(weight.value) not in module_variables]
    tf.saved_model.save(holder, str(path), signatures=signatures)
    return holder


def rewrite_serving_weights(holder: tf.Module, path: Path) -> None:
    """Store the current values of ``holder``'s variables in the SavedModel it was saved as at ``path``.

    For a model saved before its weights were final: the graph and signatures stand, and
    the checkpoint (the same keys, from the same objects) and the fingerprint that hashes
    it are written again, in a fraction of a whole save.

    Example:
        >>> holder = save_serving_model(model, signatures, run_dir / "model")  # doctest: +SKIP
        >>> model.get_layer("classifier").set_weights(trained)  # doctest: +SKIP
        >>> rewrite_serving_weights(holder, run_dir / "model")  # doctest: +SKIP
    """
    tf.train.Checkpoint(root=holder).write(str(path / "variables" / "variables"))
    _fingerprint_writer()(str(path))


def can_rewrite_serving_weights() -> bool:
    """Whether this TensorFlow can write a SavedModel's fingerprint again (see :func:`rewrite_serving_weights`)."""
    return _fingerprint_writer() is not None


def _fingerprint_writer():
    # TensorFlow writes the fingerprint only inside a whole save; this module is not public API.
    try:
        from tensorflow.python.saved_model import fingerprinting_utils
    except ImportError:
        return None
    return getattr(fingerprinting_utils, "write_fingerprint", None)


def signature_probabilities(function, inputs: np.ndarray) -> np.ndarray:
    """The ``probabilities`` output of a one-input SavedModel signature over ``inputs``, in batches."""
    (input_name,) = function.structured_input_signature[1]
    return in_batches(lambda batch: function(**{input_name: tf.constant(batch)})["probabilities"], inputs)


class ServingModel:
    """A run's ``model/`` SavedModel, called through ``serving_default``."""

    def __init__(self, run: Run):
        # A text run's BERT-style preprocessor may need its own ops, as its module may.
        for library in run.op_libraries:
            importlib.import_module(library)
        model_dir = run.serving_model
        if not (model_dir / "saved_model.pb").is_file():
            raise DataError(f"run {run.path} has no model/ SavedModel")
        self._loaded = tf.saved_model.load(str(model_dir))
        self._function = self._loaded.signatures["serving_default"]

    def probabilities(self, inputs: np.ndarray) -> np.ndarray:
        """Class probabilities [n, classes] of model inputs (float images or strings)."""
        return signature_probabilities(self._function, inputs)
