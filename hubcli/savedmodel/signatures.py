"""A module's interface: its SignatureDefs, the traced variants of its ``__call__``, and what they imply.

``image_size``, ``output_dim`` and ``takes_strings`` in the inspect report are
read from these: the call variants first (what ``hub.load(...)(x)`` runs),
then the default signature.

Example:
    >>> images = TensorSpec("images", "float32", (None, 224, 224, 3))
    >>> call = CallVariant("__call__", (images, False), {}, TensorSpec("output_0", "float32", (None, 1280)), ("images", "training"))
    >>> call.describe()
    '(images=float32[None,224,224,3], training=False) -> float32[None,1280]'
    >>> image_size((call,), []), output_dim((call,), [])
    ((224, 224), 1280)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from hubcli.savedmodel import protowire as pw
from hubcli.savedmodel.messages import FLOAT_DTYPES, dtype_name, map_entry, node_of, shape
from hubcli.savedmodel.specs import TensorSpec, Value, describe, leaves, to_jsonable, type_spec_kind

# Output keys that name "the" embedding or feature vector, in order of preference.
_OUTPUT_KEYS = ("default", "feature_vector", "embedding", "embeddings", "pooled_output", "output", "outputs", "output_0")


@dataclass(frozen=True)
class Signature:
    """One SignatureDef of one meta graph (identified by its ``tags``)."""

    key: str
    tags: tuple[str, ...]
    method_name: str
    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "tags": list(self.tags),
            "method_name": self.method_name,
            "inputs": {k: v.to_json() for k, v in self.inputs.items()},
            "outputs": {k: v.to_json() for k, v in self.outputs.items()},
        }


@dataclass(frozen=True)
class CallVariant:
    """One traced variant of the restored ``__call__``: positional args (named by ``arg_names``
    where the function spec records them), keyword args, and the output structure."""

    function: str
    args: tuple[Value, ...]
    kwargs: dict[str, Value]
    output: Value
    arg_names: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "arg_names": list(self.arg_names),
            "args": to_jsonable(self.args),
            "kwargs": to_jsonable(self.kwargs),
            "output": to_jsonable(self.output),
        }

    def describe(self) -> str:
        """``(images=float32[None,32,32,3], training=True) -> float32[None,8]``."""
        names = list(self.arg_names) + [""] * (len(self.args) - len(self.arg_names))
        args = [f"{n}={describe(a)}" if n else describe(a) for n, a in zip(names, self.args, strict=False)]
        args += [f"{k}={describe(v)}" for k, v in self.kwargs.items()]
        return f"({', '.join(args)}) -> {describe(self.output)}"


def tensor_info_map(entries: list[memoryview]) -> dict[str, TensorSpec]:
    """A SignatureDef's ``map<string, TensorInfo>`` as specs named by their keys, sorted by key."""
    specs = {}
    for entry in entries:
        key, value = map_entry(entry)
        # TensorInfo: name = 1, dtype = 2, tensor_shape = 3, coo_sparse = 4, composite_tensor = 5
        info = pw.collect(value, (2, 3, 4, 5))
        kind = "sparse" if info[4] else _composite_kind(info[5][-1]) if info[5] else "tensor"
        specs[pw.text(key)] = TensorSpec(
            name=pw.text(key),
            dtype=dtype_name(info[2][-1] if info[2] else 0),
            shape=shape(info[3][-1]) if info[3] else None,
            kind=kind,
        )
    return dict(sorted(specs.items()))


def tensor_info_nodes(raw: pw.Buffer) -> set[str]:
    """Graph nodes behind a TensorInfo: name = 1, coo_sparse = 4 (three tensor names), composite_tensor = 5
    (components = 2, each a TensorInfo)."""
    nodes = set()
    for number, _, value in pw.fields(raw):
        if number == 1:
            nodes.add(node_of(pw.text(value)))
        elif number == 4:
            nodes.update(node_of(pw.text(v)) for _, _, v in pw.fields(value))
        elif number == 5:
            for n, _, component in pw.fields(value):
                if n == 2:
                    nodes.update(tensor_info_nodes(component))
    return nodes


def _composite_kind(raw: memoryview) -> str:
    # CompositeTensor: type_spec = 1 (TypeSpecProto)
    return type_spec_kind(pw.first(raw, 1, b""))


def default_signatures(signatures: Iterable[Signature], tags: tuple[str, ...]) -> list[Signature]:
    """The signatures of the meta graph tagged ``tags``, the conventional default first."""
    own = [s for s in signatures if s.tags == tags]
    return sorted(own, key=lambda s: (s.key not in ("serving_default", "default"), s.key))


def input_specs(call_variants: Iterable[CallVariant], signatures: Iterable[Signature]) -> list[TensorSpec]:
    """Every input spec: the call variants' arguments, then the signatures' inputs."""
    specs = [spec for v in call_variants for spec in leaves((v.args, v.kwargs))]
    return specs + [spec for s in signatures for spec in s.inputs.values()]


def takes_strings(call_variants: Iterable[CallVariant], signatures: Iterable[Signature]) -> bool:
    """Whether any input is a string tensor (a text module)."""
    return any(spec.dtype == "string" for spec in input_specs(call_variants, signatures))


def image_size(call_variants: Iterable[CallVariant], signatures: Iterable[Signature]) -> tuple[int, int] | None:
    """(height, width) of the first float [batch, H, W, 3] input: the call specs first, then signatures."""
    for spec in input_specs(call_variants, signatures):
        dims = spec.shape
        if spec.dtype in FLOAT_DTYPES and dims and len(dims) == 4 and dims[3] == 3 and dims[1] and dims[2]:
            return dims[1], dims[2]
    return None


def output_dim(call_variants: Iterable[CallVariant], signatures: Iterable[Signature]) -> int | None:
    """Last dimension of the [batch, D] output: ``__call__``'s output, then the default signature's."""
    candidates = [v.output for v in call_variants] + [s.outputs for s in signatures]
    for output in candidates:
        if isinstance(output, dict):
            named = [output[k] for k in _OUTPUT_KEYS if k in output]
            rank2 = [s for s in leaves(output) if s.shape is not None and len(s.shape) == 2]
            output = named[0] if named else rank2[0] if len(rank2) == 1 else None
        if isinstance(output, TensorSpec) and output.shape and len(output.shape) == 2 and output.shape[1]:
            return output.shape[1]
    return None
