"""HubLayer: a TF Hub module as a native Keras 3 layer (no tf_keras).

``tensorflow_hub.KerasLayer`` is a tf_keras layer and does not work in Keras 3
models (tensorflow/hub#903). HubLayer loads the module with
``tf.saved_model.load`` and wraps each module variable as a Keras variable
that *shares the module's own tf.Variable*, so:

- the optimizer updates the very variables the module's functions read
  (fine-tuning works);
- ``model.save("model.keras")`` stores them, and ``keras.models.load_model``
  reloads the module from its handle and restores them (the layer is registered
  as ``hubcli>HubLayer``: no ``custom_objects`` needed);
- a run's serving SavedModel (``hubcli.train.serving``) stores one copy of each.

Frozen layers call the module with ``training=False`` (batch norm uses its
moving statistics) and add no regularisation losses; trainable layers pass
Keras' ``training`` flag through, when the module's ``__call__`` accepts one,
and add the module's ``regularization_losses``. TF1 Hub format modules work
frozen, through a signature (``"default"`` unless told otherwise).

Example:
    >>> import keras
    >>> from hubcli.train.layer import HubLayer  # doctest: +SKIP
    >>> encoder = HubLayer("efficientnet_lite0", trainable=False)  # doctest: +SKIP
    >>> inputs = keras.Input(encoder.input_shape_hint)  # doctest: +SKIP
    >>> outputs = keras.layers.Dense(5, activation="softmax")(encoder(inputs))  # doctest: +SKIP
    >>> model = keras.Model(inputs, outputs)  # doctest: +SKIP
"""

from __future__ import annotations

import contextvars
import importlib
import inspect
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path
from types import MappingProxyType
from typing import Any

import keras
import tensorflow as tf

from hubcli.errors import InvalidModuleError
from hubcli.savedmodel.formats import TF1_HUB

#: ``output_key`` that returns a module's whole output dict (a BERT preprocessor's tensors).
ALL_OUTPUTS = "*"

#: handle -> module directory already on disk, consulted before resolving (see known_module_paths).
_KNOWN_PATHS: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar("hubcli_known_module_paths", default=MappingProxyType({}))


@contextmanager
def known_module_paths(paths: dict[str, str]):
    """HubLayers created inside (e.g. by ``keras.models.load_model``) use these directories for these handles.

    A saved layer keeps only its handle. A run records where its handles were resolved
    (with the run's --cache-dir and --mirror), which the default settings of a later
    process, say ``hubcli export``, may not reach.

    Example:
        >>> with known_module_paths({"acme/flowers/1": "/cache/3f2a..."}):  # doctest: +SKIP
        ...     model = keras.models.load_model("runs/flowers/model.keras")
    """
    token = _KNOWN_PATHS.set({**_KNOWN_PATHS.get(), **paths})
    try:
        yield
    finally:
        _KNOWN_PATHS.reset(token)


def _module_callable(module, signature: str | None, format_name: str):
    """The function to call and whether it takes ``training``; signatures return dicts."""
    if signature is None and format_name == TF1_HUB:
        signature = "default"
    if signature is not None:
        signatures = getattr(module, "signatures", {})
        if signature not in signatures:
            raise InvalidModuleError(
                f"module has no signature {signature!r}; it has: {', '.join(sorted(signatures)) or 'none'}"
            )
        return signatures[signature], False
    if not callable(module):
        raise InvalidModuleError(
            "module has no __call__ (not a Reusable SavedModel); pass signature='serving_default' or another signature"
        )
    try:
        parameters = inspect.signature(module.__call__).parameters
    except (TypeError, ValueError):
        parameters = {}
    return module.__call__, "training" in parameters


def _layer_name(variable_name: str) -> str:
    """``blocks_15/project_bn/beta:0`` -> ``blocks_15/project_bn``; a name without a path is its own layer."""
    name = variable_name.split(":")[0]
    return name.rsplit("/", 1)[0] if "/" in name else name


class _SharedVariable(keras.Variable):
    """A Keras variable whose storage *is* an existing ``tf.Variable`` (no copy, same handle)."""

    def _initialize_with_initializer(self, initializer):
        # The initializer hands back the tf.Variable itself, which the TF backend's _initialize
        # adopts as is. The inherited path would first allocate and fill a variable of its own.
        self._initialize(initializer(self._shape, dtype=self._dtype))


def _share_variable(tf_variable: tf.Variable, trainable: bool) -> keras.Variable:
    """A Keras variable sharing ``tf_variable``'s storage, named after it."""
    return _SharedVariable(
        initializer=lambda shape, dtype: tf_variable,
        shape=tf_variable.shape,
        dtype=tf_variable.dtype.name,
        trainable=trainable,
        name=tf_variable.name.split(":")[0].replace("/", "_"),
    )


@keras.saving.register_keras_serializable(package="hubcli")
class HubLayer(keras.layers.Layer):
    """A hub module (handle, alias, URL, archive or local directory) as a Keras layer.

    Args:
        handle: anything ``hubcli.hub.pull.resolve_module_path`` accepts; stored in the config.
        trainable: fine-tune the module's variables (TF2 Reusable SavedModels only).
        signature: call this signature instead of ``__call__`` (TF1 Hub format: "default").
        output_key: which output to return when the module returns a dict
            (default: "default", else "pooled_output", else the only one);
            ``ALL_OUTPUTS`` returns the whole dict.
        arguments: extra keyword arguments for every call (e.g. ``{"as_dict": False}``).
        settings: a ``hubcli.Settings`` for resolving the handle (not serialised).
    """

    def __init__(
        self,
        handle: str,
        *,
        trainable: bool = False,
        signature: str | None = None,
        output_key: str | None = None,
        arguments: dict[str, Any] | None = None,
        settings=None,
        **kwargs,
    ):
        kwargs.setdefault("autocast", False)
        super().__init__(trainable=trainable, **kwargs)
        from hubcli.config import Settings
        from hubcli.hub.pull import resolve_module_path
        from hubcli.savedmodel.inspector import inspect_module

        self.handle = str(handle)
        self.signature = signature
        self.output_key = output_key
        self.arguments = dict(arguments or {})
        known = _KNOWN_PATHS.get().get(self.handle)
        self.module_path = Path(known) if known else Path(resolve_module_path(self.handle, settings or Settings.load()))
        self.info = inspect_module(self.module_path)
        for library in self.info.op_libraries or ():
            # Registers the custom ops (e.g. tensorflow_text) the graph needs before loading.
            importlib.import_module(library)

        is_tf1 = self.info.format == TF1_HUB
        if is_tf1 and trainable:
            raise InvalidModuleError("TF1 Hub format modules can only be used frozen (trainable=False)")
        with tf.init_scope():
            self._module = tf.saved_model.load(str(self.module_path), tags=[] if is_tf1 else None)
        self._function, self._takes_training = _module_callable(self._module, signature, self.info.format)

        trainable_ids = {id(v) for v in getattr(self._module, "trainable_variables", ())}
        #: (Keras variable, the module's own variable name), in the module's order: input side first.
        self._module_variables = []
        for variable in getattr(self._module, "variables", ()):
            shared = _share_variable(variable, trainable=id(variable) in trainable_ids)
            self._track_variable(shared)
            self._module_variables.append((shared, variable.name))
        #: Set when only part of the module is fine-tuned: the rest, batch-norm statistics included, stays as pretrained.
        self._inference_only = False
        self._output_dim = self.info.output_dim or self._traced_output_dim()
        self.built = True

    def _traced_output_dim(self) -> int | None:
        """The last output dimension recorded in the module's traced functions, if static."""
        concrete = getattr(self._function, "concrete_functions", None) or [self._function]
        outputs = self._select_output(concrete[0].structured_outputs)
        if isinstance(outputs, dict):
            return None
        return outputs.shape[-1] if outputs.shape.rank else None

    # -- facts read from the module -------------------------------------------------
    @property
    def module(self):
        """The loaded module object, sharing its variables with this layer (for its other functions)."""
        return self._module

    @property
    def image_size(self) -> tuple[int, int] | None:
        return tuple(self.info.image_size) if self.info.image_size else None

    @property
    def takes_strings(self) -> bool:
        return bool(self.info.takes_strings)

    @property
    def output_dim(self) -> int:
        if self._output_dim is None:
            raise InvalidModuleError(f"cannot tell the output size of module {self.handle}")
        return int(self._output_dim)

    @property
    def input_shape_hint(self) -> tuple:
        """Shape of one example for ``keras.Input``: ``(h, w, 3)`` for images, ``()`` for strings."""
        if self.takes_strings:
            return ()
        if self.image_size is None:
            raise InvalidModuleError(f"module {self.handle} does not say its image size; give --image-size")
        return (*self.image_size, 3)

    # -- Keras ----------------------------------------------------------------------
    def call(self, inputs, training=None):
        kwargs = dict(self.arguments)
        if self._takes_training:
            # Frozen means inference mode all the way down (batch norm keeps its moving statistics).
            kwargs["training"] = bool(training) and self.trainable and not self._inference_only
        if self.signature is not None or self.info.format == TF1_HUB:
            input_name = next(iter(self._function.structured_input_signature[1]))
            outputs = self._function(**{input_name: inputs}, **kwargs)
        else:
            outputs = self._function(inputs, **kwargs)
        if self.trainable:
            for loss_fn in getattr(self._module, "regularization_losses", ()):
                self.add_loss(loss_fn())
        return self._select_output(outputs)

    def _select_output(self, outputs):
        if not isinstance(outputs, dict) or self.output_key == ALL_OUTPUTS:
            return outputs
        key = self.output_key
        if key is None:
            # BERT-style encoders name their sentence embedding "pooled_output" (often also "default").
            preferred = next((k for k in ("default", "pooled_output") if k in outputs), None)
            key = preferred or (next(iter(outputs)) if len(outputs) == 1 else None)
        if key not in outputs:
            raise InvalidModuleError(
                f"module returns several outputs ({', '.join(sorted(outputs))}); choose one with output_key"
            )
        return outputs[key]

    def train_top_layers(self, count: int) -> int:
        """Make only the module's top ``count`` layers trainable; returns how many it has.

        A layer is the variables that share a name up to their last part (``blocks_15/project_bn/beta``
        belongs to ``blocks_15/project_bn``), in the module's order, so the top layers are the
        ones nearest the output. The module then runs in inference mode while training: the
        frozen layers' batch-norm statistics must not drift under weights they were not made for.

        Example:
            >>> encoder = HubLayer(".modules/efficientnet_lite0_feature_vector", trainable=True)  # doctest: +SKIP
            >>> encoder.train_top_layers(2), [v.name for v in encoder.trainable_weights]  # doctest: +SKIP
            (82, ['head_conv_kernel', 'head_bn_gamma', 'head_bn_beta'])
        """
        layers = list(dict.fromkeys(_layer_name(name) for variable, name in self._module_variables if variable.trainable))
        top = set(layers[-count:])
        for variable, name in self._module_variables:
            if variable.trainable and _layer_name(name) not in top:
                variable.trainable = False
        self._inference_only = True
        return len(layers)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            handle=self.handle,
            signature=self.signature,
            output_key=self.output_key,
            arguments=self.arguments,
        )
        return config


@keras.saving.register_keras_serializable(package="hubcli")
class PreprocessedEncoder(keras.layers.Layer):
    """A BERT-style pair of hub modules as one layer: strings -> preprocessor -> encoder.

    TF Hub ships BERT-like text models as two handles: a preprocessor
    (``tf.string [batch]`` -> a dict of ``input_word_ids``/``input_mask``/
    ``input_type_ids``, usually made of tensorflow-text ops) and an encoder (that
    dict -> ``pooled_output``, ``sequence_output`` and often ``default``). The
    preprocessor is always frozen (it holds lookup tables, not weights);
    ``trainable`` fine-tunes the encoder.

    Args:
        preprocessor: handle of the preprocessing module.
        encoder: handle of the encoder module.
        trainable: fine-tune the encoder's variables.
        output_key: the encoder output to use (default: "default", else "pooled_output").
        settings: a ``hubcli.Settings`` for resolving the handles (not serialised).

    Example:
        >>> encoder = PreprocessedEncoder("bert_en_uncased_preprocess", "bert_en_uncased_L-2_H-128")  # doctest: +SKIP
        >>> features = encoder(keras.Input((), dtype="string"))  # [None, 128] pooled output  # doctest: +SKIP
    """

    def __init__(self, preprocessor: str, encoder: str, *, trainable: bool = False, output_key: str | None = None, settings=None, **kwargs):
        kwargs.setdefault("autocast", False)
        super().__init__(trainable=trainable, **kwargs)
        self.preprocessor = HubLayer(preprocessor, trainable=False, output_key=ALL_OUTPUTS, settings=settings, name="preprocessor")
        self.encoder = HubLayer(encoder, trainable=trainable, output_key=output_key, settings=settings, name="encoder")
        self.built = True

    @property
    def output_dim(self) -> int:
        return self.encoder.output_dim

    @property
    def takes_strings(self) -> bool:
        return True

    def train_top_layers(self, count: int) -> int:
        """Fine-tune only the encoder's top ``count`` layers (see :meth:`HubLayer.train_top_layers`)."""
        return self.encoder.train_top_layers(count)

    def call(self, inputs, training=None):
        return self.encoder(self.preprocessor(inputs), training=training)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_dim)

    def get_config(self):
        config = super().get_config()
        config.update(preprocessor=self.preprocessor.handle, encoder=self.encoder.handle, output_key=self.encoder.output_key)
        return config
