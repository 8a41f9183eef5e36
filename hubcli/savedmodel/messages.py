"""Readers for the small TensorFlow messages every part of a SavedModel uses.

``types.proto`` DataType numbers, ``tensor_shape.proto`` shapes, protobuf map
entries and ``graph.proto`` NodeDefs (name, op, attrs, the functions a node
calls), each read from its encoded bytes with :mod:`hubcli.savedmodel.protowire`.

Example:
    >>> dtype_name(1), dtype_name(7), dtype_name(101)
    ('float32', 'string', 'float32_ref')
    >>> node_of("^init"), node_of("images:0")
    ('init', 'images')
"""

from __future__ import annotations

from hubcli.savedmodel import protowire as pw

# types.proto DataType numbers -> numpy-style names. Values above 100 are the legacy *_REF types.
_DTYPES = {
    0: "invalid", 1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8", 7: "string",
    8: "complex64", 9: "int64", 10: "bool", 11: "qint8", 12: "quint8", 13: "qint32", 14: "bfloat16",
    15: "qint16", 16: "quint16", 17: "uint16", 18: "complex128", 19: "float16", 20: "resource",
    21: "variant", 22: "uint32", 23: "uint64", 24: "float8_e5m2", 25: "float8_e4m3fn",
    26: "float8_e4m3fnuz", 27: "float8_e4m3b11fnuz", 28: "float8_e5m2fnuz", 29: "int4", 30: "uint4",
    31: "int2", 32: "uint2", 33: "float4_e2m1fn",
}
FLOAT_DTYPES = frozenset({"float16", "bfloat16", "float32", "float64"})

Shape = tuple[int | None, ...]
"""A tensor shape: one entry per dimension, None where the size is unknown."""


def dtype_name(number: int) -> str:
    """The name of a DataType number; unknown numbers keep theirs (``dtype_99``)."""
    if number > 100:
        return _DTYPES.get(number - 100, f"dtype_{number - 100}") + "_ref"
    return _DTYPES.get(number, f"dtype_{number}")


def shape(raw: pw.Buffer) -> Shape | None:
    """A TensorShapeProto (dim = 2 with size = 1, -1 unknown; unknown_rank = 3); None for unknown rank.

    Example:
        >>> shape(bytes([0x12, 0x0B, 0x08, *[0xFF] * 9, 0x01, 0x12, 0x02, 0x08, 0x03]))
        (None, 3)
        >>> shape(bytes([0x18, 0x01])) is None
        True
    """
    dims = []
    for number, _, value in pw.fields(raw):
        if number == 2:
            size = pw.signed64(pw.first(value, 1, 0))
            dims.append(None if size < 0 else size)
        elif number == 3 and value:
            return None
    return tuple(dims)


def map_entry(entry: pw.Buffer) -> tuple[memoryview, memoryview]:
    """A ``map<K, V>`` entry: key = 1, value = 2 (absent fields are the empty default).

    Example:
        >>> [bytes(part) for part in map_entry(bytes([0x0A, 0x01, 0x6B, 0x12, 0x01, 0x76]))]
        [b'k', b'v']
    """
    key = value = memoryview(b"")
    for number, _, field in pw.fields(entry):
        if number == 1:
            key = field
        elif number == 2:
            value = field
    return key, value


def has_field(message: pw.Buffer, wanted: int) -> bool:
    """Whether ``message`` holds a record with field number ``wanted``."""
    return any(number == wanted for number, _, _ in pw.fields(message))


def node_of(tensor: str) -> str:
    """The node behind a tensor or control-input name: ``"^init"`` / ``"images:0"`` -> the node name."""
    return tensor.lstrip("^").split(":")[0]


def name_and_op(node: pw.Buffer) -> tuple[str, str]:
    """A NodeDef's name = 1 and op = 2: they lead the message, so reading stops once both are seen.

    Example:
        >>> name_and_op(bytes([0x0A, 0x01, 0x78, 0x12, 0x05, *b"Const"]))
        ('x', 'Const')
    """
    # Fast path for the layout every serializer writes: tag 0x0A (name), then tag 0x12 (op).
    end = len(node)
    if end > 3 and node[0] == 0x0A:
        length, start = pw.read_varint(node, 1, end)
        stop = start + length
        if stop < end and node[stop] == 0x12:
            op_length, op_start = pw.read_varint(node, stop + 1, end)
            if op_start + op_length <= end:
                return pw.text(node[start:stop]), pw.text(node[op_start : op_start + op_length])
    name = op = ""
    for number, _, value in pw.fields(node):
        if number == 1:
            name = pw.text(value)
        elif number == 2:
            op = pw.text(value)
            break
    return name, op


def node_attrs(node: pw.Buffer) -> dict[str, memoryview]:
    """A NodeDef's attr = 5 (``map<string, AttrValue>``), values left encoded."""
    return {pw.text(k): v for number, _, entry in pw.fields(node) if number == 5 for k, v in [map_entry(entry)]}


def function_refs(node: pw.Buffer) -> set[str]:
    """Names of the functions a node calls: AttrValue func = 10, or list = 1 with ListValue func = 9."""
    names = set()
    for value in node_attrs(node).values():
        for number, _, field in pw.fields(value):
            if number == 10:
                names.add(pw.text(pw.first(field, 1, b"")))
            elif number == 1:
                names.update(pw.text(pw.first(f, 1, b"")) for n, _, f in pw.fields(field) if n == 9)
    return names
