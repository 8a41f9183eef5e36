"""A small protobuf wire-format reader: enough to walk SavedModel files without TensorFlow.

Protobuf messages are sequences of ``(field number, wire type, value)``
records. This module decodes those records lazily over a ``memoryview``, so
callers walk only the fields they need and skip the rest (large constant
tensors, attrs) by length without copying them. It knows nothing about any
schema; the readers beside it (:mod:`hubcli.savedmodel.messages`,
:mod:`hubcli.savedmodel.metagraph`...) name the fields.

Wire types handled: 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32.
Groups (3, 4) are obsolete proto2 features that TensorFlow's proto3 files
never use, so they are treated as corruption.

Example:
    >>> data = memoryview(bytes([0x08, 0x96, 0x01, 0x12, 0x02, 0x68, 0x69]))
    >>> [(number, wire_type, value if wire_type != LEN else text(value)) for number, wire_type, value in fields(data)]
    [(1, 0, 150), (2, 2, 'hi')]
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Union

VARINT, FIXED64, LEN, FIXED32 = 0, 1, 2, 5

Buffer = Union[bytes, bytearray, memoryview]


class DecodeError(ValueError):
    """The bytes are not a well-formed protobuf message (truncated or corrupt)."""


def read_varint(data: Buffer, pos: int, end: int) -> tuple[int, int]:
    """Decode one base-128 varint at ``pos``; return ``(value, next position)``.

    Example:
        >>> read_varint(bytes([0x96, 0x01, 0x07]), 0, 3)
        (150, 2)
        >>> read_varint(bytes([0x96]), 0, 1)
        Traceback (most recent call last):
        ...
        hubcli.savedmodel.protowire.DecodeError: truncated varint at byte 1
    """
    if pos >= end:
        raise DecodeError(f"truncated varint at byte {pos}")
    byte = data[pos]
    if byte < 0x80:  # the common one-byte case, kept fast
        return byte, pos + 1
    value = byte & 0x7F
    shift = 7
    pos += 1
    while True:
        if pos >= end:
            raise DecodeError(f"truncated varint at byte {pos}")
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift >= 70:  # a varint never exceeds 10 bytes
            raise DecodeError(f"varint too long at byte {pos}")


def fields(data: Buffer, start: int = 0, end: int | None = None) -> Iterator[tuple[int, int, object]]:
    """Yield ``(field number, wire type, value)`` for each record of one message.

    ``value`` is an ``int`` for varint, fixed64 and fixed32 records (raw,
    unsigned; see :func:`signed64`, :func:`float32`, :func:`float64`) and a
    zero-copy ``memoryview`` for length-delimited ones (sub-messages, strings,
    bytes, packed repeated scalars).
    """
    view = data if isinstance(data, memoryview) else memoryview(data)
    end = len(view) if end is None else end
    pos = start
    while pos < end:
        key = view[pos]
        if key < 0x80:
            pos += 1
        else:
            key, pos = read_varint(view, pos, end)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise DecodeError(f"field number 0 at byte {pos}")
        if wire_type == LEN:
            length = view[pos] if pos < end else -1
            if 0 <= length < 0x80:
                pos += 1
            else:
                length, pos = read_varint(view, pos, end)
            stop = pos + length
            if stop > end:
                raise DecodeError(f"length-delimited field {number} runs past the end ({stop} > {end})")
            yield number, LEN, view[pos:stop]
            pos = stop
        elif wire_type == VARINT:
            value, pos = read_varint(view, pos, end)
            yield number, VARINT, value
        elif wire_type == FIXED64:
            if pos + 8 > end:
                raise DecodeError(f"truncated fixed64 field {number}")
            yield number, FIXED64, int.from_bytes(view[pos : pos + 8], "little")
            pos += 8
        elif wire_type == FIXED32:
            if pos + 4 > end:
                raise DecodeError(f"truncated fixed32 field {number}")
            yield number, FIXED32, int.from_bytes(view[pos : pos + 4], "little")
            pos += 4
        else:
            raise DecodeError(f"unsupported wire type {wire_type} for field {number}")


def first(data: Buffer, number: int, default=None):
    """The value of the first record with field ``number``, stopping there (cheap for leading fields).

    Serializers write fields in number order, so asking for field 1 or 2 of a
    large message touches only its first bytes.

    Example:
        >>> first(bytes([0x08, 0x03, 0x10, 0x04]), 2), first(b"", 2, "absent")
        (4, 'absent')
    """
    for found, _, value in fields(data):
        if found == number:
            return value
    return default


def collect(data: Buffer, wanted: tuple[int, ...] | frozenset[int]) -> dict[int, list]:
    """Group the values of the ``wanted`` field numbers: ``{number: [value, ...]}``; others skipped.

    Example:
        >>> collect(bytes([0x08, 0x01, 0x10, 0x02, 0x08, 0x03]), (1, 5))
        {1: [1, 3], 5: []}
    """
    grouped: dict[int, list] = {number: [] for number in wanted}
    for number, _, value in fields(data):
        bucket = grouped.get(number)
        if bucket is not None:
            bucket.append(value)
    return grouped


def packed_varints(data: Buffer) -> list[int]:
    """Decode a packed ``repeated`` varint field (int32/int64/enum/bool).

    Example:
        >>> packed_varints(bytes([0x01, 0x96, 0x01, 0x00]))
        [1, 150, 0]
    """
    view = data if isinstance(data, memoryview) else memoryview(data)
    values, pos, end = [], 0, len(view)
    while pos < end:
        value, pos = read_varint(view, pos, end)
        values.append(value)
    return values


def text(data: Buffer) -> str:
    """A ``string`` field; undecodable bytes are replaced rather than fatal (names are for display).

    Example:
        >>> text("café".encode()), text(bytes([0x66, 0xFF]))
        ('café', 'f�')
    """
    return str(data, "utf-8", "replace")


def signed64(value: int) -> int:
    """Reinterpret a raw varint as ``int64``/``int32`` (negative numbers are 10-byte two's complement).

    Example:
        >>> signed64(read_varint(bytes([0xFF] * 9 + [0x01]), 0, 10)[0]), signed64(5)
        (-1, 5)
    """
    value &= 0xFFFFFFFFFFFFFFFF
    return value - (1 << 64) if value >= 1 << 63 else value


def zigzag(value: int) -> int:
    """Decode a ``sint32``/``sint64`` varint.

    Example:
        >>> [zigzag(v) for v in (0, 1, 2, 3)]
        [0, -1, 1, -2]
    """
    return (value >> 1) ^ -(value & 1)


def float32(value: int) -> float:
    """Reinterpret a fixed32 record as an IEEE ``float``.

    Example:
        >>> float32(0x3FA00000)
        1.25
    """
    return struct.unpack("<f", value.to_bytes(4, "little"))[0]


def float64(value: int) -> float:
    """Reinterpret a fixed64 record as an IEEE ``double``.

    Example:
        >>> float64(0xC004000000000000)
        -2.5
    """
    return struct.unpack("<d", value.to_bytes(8, "little"))[0]
