"""Tensor specs and the structured values (``struct.proto``) that record a function's inputs and outputs.

A traced function's input and output structures are nested lists, tuples,
dicts and namedtuples with :class:`TensorSpec` leaves and plain Python
constants (``training=True``); :func:`structured_value` decodes them, and
:func:`to_jsonable` / :func:`describe` render them.

Example:
    >>> spec = TensorSpec("images", "float32", (None, 224, 224, 3))
    >>> str(spec)
    'float32[None,224,224,3]'
    >>> describe((spec, True))
    '(float32[None,224,224,3], True)'
    >>> to_jsonable({"training": True})
    {'training': True}
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Union

from hubcli.savedmodel import protowire as pw
from hubcli.savedmodel.messages import Shape, dtype_name, map_entry, shape

_MAX_DEPTH = 64  # nesting limit for structured values: a corrupt file must not exhaust the stack


@dataclass(frozen=True)
class TensorSpec:
    """A tensor the module takes or returns. ``shape`` is None for unknown rank; None dims are unknown.

    ``kind`` is ``"tensor"`` for dense tensors, ``"sparse"`` for COO sparse ones, otherwise the
    composite type (``"ragged"``...).

    Example:
        >>> TensorSpec("ids", "int32", None, kind="ragged").to_json()
        {'name': 'ids', 'dtype': 'int32', 'shape': None, 'kind': 'ragged'}
    """

    name: str | None
    dtype: str
    shape: Shape | None
    kind: str = "tensor"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": None if self.shape is None else list(self.shape), "kind": self.kind}

    def __str__(self) -> str:
        dims = "?" if self.shape is None else "[" + ",".join("None" if d is None else str(d) for d in self.shape) + "]"
        kind = "" if self.kind == "tensor" else f" {self.kind}"
        return f"{self.dtype}{dims}{kind}"


@dataclass(frozen=True)
class NamedTuple:
    """A Python namedtuple recorded in a function's input or output structure."""

    name: str
    fields: dict[str, Value]


Value = Union[TensorSpec, NamedTuple, list["Value"], tuple["Value", ...], dict[str, "Value"], bool, int, float, str, None]
"""One decoded StructuredValue: a spec, a container of values, or a Python constant (a shape is a tuple of ints)."""


def structured_value(raw: pw.Buffer, depth: int = 0) -> Value:
    """Decode a StructuredValue (``struct.proto``) into Python values with TensorSpec leaves.

    Example:
        >>> structured_value(bytes([0x70, 0x01]))  # bool_value = 14
        True
    """
    if depth > _MAX_DEPTH:
        raise pw.DecodeError("structured value nested too deeply")
    for number, _, value in pw.fields(raw):
        if number == 1:  # none_value
            return None
        if number == 11:  # float64_value
            return pw.float64(value)
        if number == 12:  # int64_value (sint64)
            return pw.zigzag(value)
        if number == 13:  # string_value
            return pw.text(value)
        if number == 14:  # bool_value
            return bool(value)
        if number == 31:  # tensor_shape_value
            return shape(value)
        if number == 32:  # tensor_dtype_value
            return dtype_name(value)
        if number in (33, 35):  # tensor_spec_value, bounded_tensor_spec_value: name = 1, shape = 2, dtype = 3
            spec = pw.collect(value, (1, 2, 3))
            return TensorSpec(
                name=pw.text(spec[1][-1]) if spec[1] else None,
                dtype=dtype_name(spec[3][-1] if spec[3] else 0),
                shape=shape(spec[2][-1]) if spec[2] else (),
            )
        if number == 34:  # type_spec_value
            return TensorSpec(name=None, dtype="composite", shape=None, kind=type_spec_kind(value))
        if number == 51:  # list_value: values = 1
            return [structured_value(v, depth + 1) for n, _, v in pw.fields(value) if n == 1]
        if number == 52:  # tuple_value: values = 1
            return tuple(structured_value(v, depth + 1) for n, _, v in pw.fields(value) if n == 1)
        if number == 53:  # dict_value: fields = 1 (map<string, StructuredValue>)
            entries = (map_entry(e) for n, _, e in pw.fields(value) if n == 1)
            return {pw.text(k): structured_value(v, depth + 1) for k, v in entries}
        if number == 54:  # named_tuple_value: name = 1, values = 2 (PairValue: key = 1, value = 2)
            parts = pw.collect(value, (1, 2))
            pairs = (map_entry(p) for p in parts[2])
            return NamedTuple(pw.text(parts[1][-1]) if parts[1] else "", {pw.text(k): structured_value(v, depth + 1) for k, v in pairs})
    return None


def type_spec_kind(raw: pw.Buffer) -> str:
    """The composite kind of a TypeSpecProto: type_spec_class = 1, type_spec_class_name = 3 (``"RaggedTensorSpec"``)."""
    parts = pw.collect(raw, (1, 3))
    if parts[3]:
        name = pw.text(parts[3][-1])
        return name.removesuffix("Spec").removesuffix("Tensor").lower() or name
    return {1: "sparse", 2: "indexed_slices", 3: "ragged"}.get(parts[1][-1] if parts[1] else 0, "composite")


def to_jsonable(value: Value) -> Any:
    """The JSON form of a value: specs and namedtuples become tagged objects, tuples become lists."""
    if isinstance(value, TensorSpec):
        return {"type": "tensor_spec", **value.to_json()}
    if isinstance(value, NamedTuple):
        return {"type": "namedtuple", "name": value.name, "fields": to_jsonable(value.fields)}
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


def describe(value: Value) -> str:
    """A compact, Python-like rendering of a value for people (``Point(x=float32[])``)."""
    if isinstance(value, TensorSpec):
        return str(value)
    if isinstance(value, NamedTuple):
        return f"{value.name}({', '.join(f'{k}={describe(v)}' for k, v in value.fields.items())})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {describe(v)}" for k, v in value.items()) + "}"
    if isinstance(value, tuple):
        return "(" + ", ".join(describe(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, list):
        return "[" + ", ".join(describe(v) for v in value) + "]"
    return repr(value)


def leaves(value: Value) -> Iterator[TensorSpec]:
    """Every TensorSpec inside ``value``, in order.

    Example:
        >>> [spec.name for spec in leaves({"a": TensorSpec("a", "float32", ()), "b": [1, TensorSpec("b", "int32", ())]})]
        ['a', 'b']
    """
    if isinstance(value, TensorSpec):
        yield value
    elif isinstance(value, NamedTuple):
        yield from leaves(value.fields)
    elif isinstance(value, dict):
        for item in value.values():
            yield from leaves(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from leaves(item)
