"""A small declarative FlatBuffers codec: tables described as field lists, read and written as dicts.

A :class:`Schema` names each table's fields in declaration order, exactly as
the ``.fbs`` file does (the order fixes each field's vtable slot; a union takes
two slots, its type byte and its value). :func:`encode` builds a buffer from a
dict with the ``flatbuffers`` package's Builder; :func:`decode` walks a buffer
back into a dict, bounds-checking every offset, so a damaged file is one
:class:`FlatBufferError` rather than an ``IndexError`` deep inside.

The dict form follows ``flatc --json``: enums by name, a union field ``x`` as
``x_type`` (the member table's name) plus ``x`` (its fields); absent fields
are left out. ``[ubyte]`` vectors decode as zero-copy ``memoryview`` slices, so
reading a model's metadata never copies its weights.

Example:
    >>> schema = Schema(
    ...     tables={"Pet": [Field("name", "string"), Field("legs", "uint"), Field("kind", "byte", enum="Kind")]},
    ...     enums={"Kind": ("CAT", "DOG")},
    ... )
    >>> data = encode(schema, "Pet", {"name": "Rex", "legs": 4, "kind": "DOG"}, identifier=b"PET1")
    >>> data[4:8], decode(schema, "Pet", data, identifier=b"PET1")
    (b'PET1', {'name': 'Rex', 'legs': 4, 'kind': 'DOG'})
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field

import flatbuffers

#: scalar kind -> (struct format, size, Builder slot method)
_SCALARS = {
    "bool": ("<?", 1, "PrependBoolSlot"),
    "byte": ("<b", 1, "PrependInt8Slot"),
    "ubyte": ("<B", 1, "PrependUint8Slot"),
    "int": ("<i", 4, "PrependInt32Slot"),
    "uint": ("<I", 4, "PrependUint32Slot"),
    "long": ("<q", 8, "PrependInt64Slot"),
    "ulong": ("<Q", 8, "PrependUint64Slot"),
    "float": ("<f", 4, "PrependFloat32Slot"),
}
#: element kind of a scalar vector -> Builder element method
_VECTOR_ELEMENTS = {"float": "PrependFloat32", "uint": "PrependUint32", "int": "PrependInt32", "ubyte": "PrependUint8"}


class FlatBufferError(ValueError):
    """The bytes are not a well-formed buffer of the expected schema (truncated, corrupt or another type)."""


@dataclass(frozen=True)
class Field:
    """One field of a table.

    ``kind`` is a scalar (``bool``, ``byte``, ``ubyte``, ``int``, ``uint``,
    ``long``, ``ulong``, ``float``), ``string``, ``table``, ``union``, or a
    vector of one of those written ``[kind]``. ``ref`` names the table or union;
    ``enum`` names the enum a ``byte``/``ubyte`` scalar holds. ``skip`` keeps
    the slot of a field a reader does not need (never decoded, never written).
    """

    name: str
    kind: str
    ref: str | None = None
    enum: str | None = None

    @property
    def slots(self) -> int:
        return 2 if self.kind == "union" else 1


@dataclass(frozen=True)
class Schema:
    """Tables (name -> fields in declaration order), unions (name -> member tables, type 1 first) and enums."""

    tables: Mapping[str, list[Field]]
    unions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    enums: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def slots(self, table: str) -> list[tuple[int, Field]]:
        """``(first vtable slot, field)`` for each field of ``table``."""
        placed, slot = [], 0
        for item in self.tables[table]:
            placed.append((slot, item))
            slot += item.slots
        return placed


# -- writing ---------------------------------------------------------------------------------


def encode(schema: Schema, root: str, value: Mapping, identifier: bytes | None = None) -> bytes:
    """A finished buffer whose root table ``root`` holds ``value``; unknown keys are refused."""
    builder = flatbuffers.Builder(1024)
    offset = _build_table(builder, schema, root, value)
    builder.Finish(offset, file_identifier=identifier)
    return bytes(builder.Output())


def _build_table(builder, schema: Schema, table: str, value: Mapping) -> int:
    placed = schema.slots(table)
    known = {item.name for _, item in placed} | {f"{item.name}_type" for _, item in placed if item.kind == "union"}
    unknown = sorted(set(value) - known) or sorted(item.name for _, item in placed if item.kind == "skip" and item.name in value)
    if unknown:
        raise ValueError(f"{table} has no field {', '.join(unknown)}")
    # Children first: FlatBuffers builds back to front, and a table cannot be open while they are built.
    children = {}
    for _, item in placed:
        if item.name in value and value[item.name] is not None and not _is_scalar(item.kind):
            children[item.name] = _build_child(builder, schema, item, value)
    builder.StartObject(sum(item.slots for _, item in placed))
    for slot, item in placed:
        if item.name not in value or value[item.name] is None:
            continue
        if item.kind == "union":
            members = schema.unions[item.ref]
            builder.PrependUint8Slot(slot, members.index(value[f"{item.name}_type"]) + 1, 0)
            builder.PrependUOffsetTRelativeSlot(slot + 1, children[item.name], 0)
        elif item.name in children:
            builder.PrependUOffsetTRelativeSlot(slot, children[item.name], 0)
        else:
            raw = value[item.name]
            if item.enum:
                raw = schema.enums[item.enum].index(raw) if isinstance(raw, str) else int(raw)
            getattr(builder, _SCALARS[item.kind][2])(slot, raw, None)
    return builder.EndObject()


def _build_child(builder, schema: Schema, item: Field, value: Mapping) -> int:
    content = value[item.name]
    if item.kind == "string":
        return builder.CreateString(content)
    if item.kind == "table":
        return _build_table(builder, schema, item.ref, content)
    if item.kind == "union":
        return _build_table(builder, schema, value[f"{item.name}_type"], content)
    element = item.kind[1:-1]
    if element == "ubyte":
        return builder.CreateByteVector(bytes(content))
    if element in ("string", "table"):
        offsets = [builder.CreateString(v) if element == "string" else _build_table(builder, schema, item.ref, v) for v in content]
        builder.StartVector(4, len(offsets), 4)
        for offset in reversed(offsets):
            builder.PrependUOffsetTRelative(offset)
        return builder.EndVector()
    size = _SCALARS[element][1]
    builder.StartVector(size, len(content), size)
    for number in reversed(list(content)):
        getattr(builder, _VECTOR_ELEMENTS[element])(number)
    return builder.EndVector()


def _is_scalar(kind: str) -> bool:
    return kind in _SCALARS


# -- reading ---------------------------------------------------------------------------------


def decode(schema: Schema, root: str, data, identifier: bytes | None = None, offset: int = 0) -> dict:
    """The root table of the buffer at ``data[offset:]`` as a dict (see the module doc for its form).

    Raises FlatBufferError when the identifier differs or an offset leaves the buffer.
    """
    view = memoryview(data).cast("B")[offset:]
    if identifier is not None and bytes(view[4:8]) != identifier:
        raise FlatBufferError(f"expected file identifier {identifier.decode()!r}, found {bytes(view[4:8])!r}")
    return _Reader(schema, view).table(root, _Reader.uoffset(view, 0))


class _Reader:
    """Decodes tables of one buffer; every position is checked against its length."""

    def __init__(self, schema: Schema, view: memoryview):
        self.schema, self.view, self.size = schema, view, len(view)

    @staticmethod
    def uoffset(view: memoryview, position: int) -> int:
        if position < 0 or position + 4 > len(view):
            raise FlatBufferError(f"offset at byte {position} lies outside the {len(view)}-byte buffer")
        return position + struct.unpack_from("<I", view, position)[0]

    def _check(self, position: int, length: int) -> None:
        if position < 0 or position + length > self.size:
            raise FlatBufferError(f"{length} bytes at byte {position} lie outside the {self.size}-byte buffer")

    def _scalar(self, kind: str, position: int):
        fmt, size, _ = _SCALARS[kind]
        self._check(position, size)
        return struct.unpack_from(fmt, self.view, position)[0]

    def _field_position(self, table_pos: int, slot: int) -> int | None:
        """Absolute position of a field's value, or None when the field is absent."""
        self._check(table_pos, 4)
        vtable = table_pos - struct.unpack_from("<i", self.view, table_pos)[0]
        self._check(vtable, 4)
        vtable_size = struct.unpack_from("<H", self.view, vtable)[0]
        entry = 4 + 2 * slot
        if entry + 2 > vtable_size:
            return None
        self._check(vtable + entry, 2)
        relative = struct.unpack_from("<H", self.view, vtable + entry)[0]
        return table_pos + relative if relative else None

    def table(self, name: str, table_pos: int) -> dict:
        result = {}
        for slot, item in self.schema.slots(name):
            if item.kind == "skip":
                continue
            if item.kind == "union":
                type_pos = self._field_position(table_pos, slot)
                value_pos = self._field_position(table_pos, slot + 1)
                kind = self._scalar("ubyte", type_pos) if type_pos is not None else 0
                if kind and value_pos is not None:
                    members = self.schema.unions[item.ref]
                    if kind > len(members):
                        raise FlatBufferError(f"{name}.{item.name} has unknown union type {kind}")
                    result[f"{item.name}_type"] = members[kind - 1]
                    result[item.name] = self.table(members[kind - 1], self.uoffset(self.view, value_pos))
                continue
            position = self._field_position(table_pos, slot)
            if position is not None:
                result[item.name] = self._value(item, position)
        return result

    def _value(self, item: Field, position: int):
        if item.kind in _SCALARS:
            raw = self._scalar(item.kind, position)
            names = self.schema.enums.get(item.enum or "", ())
            return names[raw] if 0 <= raw < len(names) else raw
        if item.kind == "string":
            return self._string(self.uoffset(self.view, position))
        if item.kind == "table":
            return self.table(item.ref, self.uoffset(self.view, position))
        return self._vector(item, self.uoffset(self.view, position))

    def _string(self, position: int) -> str:
        start, length = self._vector_bounds(position, 1)
        try:
            return bytes(self.view[start : start + length]).decode("utf-8")
        except UnicodeDecodeError as err:
            raise FlatBufferError(f"string at byte {position} is not UTF-8: {err}") from None

    def _vector_bounds(self, position: int, element_size: int) -> tuple[int, int]:
        length = self._scalar("uint", position)
        self._check(position + 4, length * element_size)
        return position + 4, length

    def _vector(self, item: Field, position: int):
        element = item.kind[1:-1]
        if element == "ubyte":
            start, length = self._vector_bounds(position, 1)
            return self.view[start : start + length]
        if element in ("string", "table"):
            start, length = self._vector_bounds(position, 4)
            targets = [self.uoffset(self.view, start + 4 * i) for i in range(length)]
            return [self._string(t) if element == "string" else self.table(item.ref, t) for t in targets]
        size = _SCALARS[element][1]
        start, length = self._vector_bounds(position, size)
        return [self._scalar(element, start + size * i) for i in range(length)]
