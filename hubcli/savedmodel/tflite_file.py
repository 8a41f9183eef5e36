"""A TFLite model's inputs, outputs, signatures and metadata, read from its flatbuffer without TensorFlow.

A ``.tflite`` file is a FlatBuffer whose root table is ``tflite.Model`` (file
identifier ``TFL3``). Only the fields this reader needs are decoded, by their field
numbers in TensorFlow Lite's ``schema.fbs``:

- Model: 0 version, 2 subgraphs, 3 description, 4 buffers, 6 metadata, 7 signature_defs;
- SubGraph: 0 tensors, 1 inputs, 2 outputs, 4 name;
- Tensor: 0 shape, 1 type, 3 name, 4 quantization, 7 shape_signature;
- QuantizationParameters: 2 scale, 3 zero_point;
- Metadata: 0 name, 1 buffer; Buffer: 0 data, 1 offset, 2 size (offset and size: data stored after the flatbuffer);
- SignatureDef: 0 inputs, 1 outputs, 2 signature_key, 4 subgraph_index; TensorMap: 0 name, 1 tensor_index.

Every offset is bounds-checked, so a damaged or hostile file is one
:class:`~hubcli.errors.InvalidModuleError` line, never a crash.

Example:
    >>> info = read_tflite("tests/data/tiny.tflite")  # doctest: +SKIP
    >>> [(t.name, t.dtype, t.shape_signature) for t in info.inputs]  # doctest: +SKIP
    [('serving_default_image:0', 'float32', [-1, 4, 4, 3])]
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hubcli.errors import InvalidModuleError

FILE_IDENTIFIER = b"TFL3"

#: TensorType enum values of schema.fbs.
TENSOR_TYPES = (
    "float32", "float16", "int32", "uint8", "int64", "string", "bool", "int16", "complex64", "int8",
    "float64", "complex128", "uint64", "resource", "variant", "uint32", "uint16", "int4", "bfloat16", "int2", "uint4",
)  # fmt: skip


@dataclass(frozen=True)
class TfliteTensor:
    """One input or output tensor."""

    name: str
    dtype: str
    shape: list[int]
    #: The shape with -1 for dimensions fixed only at run time (the batch, usually).
    shape_signature: list[int]
    #: Quantisation scales and zero points (empty for float tensors).
    scale: list[float] = field(default_factory=list)
    zero_point: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class TfliteSignature:
    key: str
    inputs: dict[str, str]  # signature name -> tensor name
    outputs: dict[str, str]


@dataclass(frozen=True)
class TfliteInfo:
    """What :func:`read_tflite` found."""

    path: Path
    size_bytes: int
    version: int
    description: str
    inputs: list[TfliteTensor]
    outputs: list[TfliteTensor]
    signatures: list[TfliteSignature]
    #: Metadata entries by name, with their size in bytes (``min_runtime_version``, ``TFLITE_METADATA``...).
    metadata: dict[str, int]
    subgraphs: int

    def to_json(self) -> dict[str, Any]:
        document = asdict(self)
        return {"format": "tflite", **document, "path": str(self.path)}


def is_tflite_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a file that starts like a TFLite flatbuffer."""
    try:
        with open(path, "rb") as source:
            return source.read(8)[4:8] == FILE_IDENTIFIER
    except OSError:
        return False


def find_tflite(path: str | os.PathLike) -> Path | None:
    """``path`` if it is a TFLite file, or the one ``.tflite`` file of a directory without a SavedModel."""
    path = Path(path)
    if path.is_file():
        return path if is_tflite_file(path) else None
    if not path.is_dir() or any((path / name).exists() for name in ("saved_model.pb", "saved_model.pbtxt", "tfhub_module.pb")):
        return None
    found = sorted(p for p in path.glob("*.tflite") if is_tflite_file(p))
    return found[0] if len(found) == 1 else None


def read_tflite(path: str | os.PathLike) -> TfliteInfo:
    """Inputs, outputs, signatures and metadata of the TFLite model at ``path``.

    Raises:
        InvalidModuleError: the file is not a readable TFLite flatbuffer.
    """
    path = Path(path).absolute()
    with open(path, "rb") as source:
        size = os.fstat(source.fileno()).st_size
        if size < 8:
            raise InvalidModuleError(f"{path} is not a TFLite model: too short")
        with mmap.mmap(source.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return read_tflite_bytes(data, path=path)


def read_tflite_bytes(data, *, path: Path | None = None) -> TfliteInfo:
    """:func:`read_tflite` of a model already in memory (``path`` names it in messages and the result)."""
    where = path or Path("<model>")
    if len(data) < 8 or data[4:8] != FILE_IDENTIFIER:
        raise InvalidModuleError(f"{where} is not a TFLite model (no TFL3 identifier)")
    try:
        return _read_model(_Table.root(data), where, len(data))
    except (struct.error, IndexError, ValueError, UnicodeDecodeError) as err:
        raise InvalidModuleError(f"{where} is not a readable TFLite model: damaged flatbuffer ({err})") from None


def metadata_buffer(data, name: str) -> bytes | None:
    """The bytes of the model's metadata entry ``name`` (e.g. ``TFLITE_METADATA``), or None without one.

    Raises:
        InvalidModuleError: the flatbuffer is damaged or the entry points outside it.
    """
    try:
        model = _Table.root(data)
        buffers = model.tables(4)
        for entry in model.tables(6):
            if entry.string(0) != name:
                continue
            index = entry.scalar(1, "<I", 0)
            if index >= len(buffers):
                raise ValueError(f"metadata {name!r} names buffer {index} of {len(buffers)}")
            buffer = buffers[index]
            offset, size = buffer.scalar(1, "<Q", 0), buffer.scalar(2, "<Q", 0)
            if offset > 1:  # stored after the flatbuffer (models over 2 GB)
                if offset + size > len(data):
                    raise ValueError(f"metadata {name!r} runs past the end of the file")
                return bytes(data[offset : offset + size])
            return buffer.bytes(0)
    except (struct.error, IndexError, ValueError) as err:
        raise InvalidModuleError(f"not a readable TFLite model: damaged flatbuffer ({err})") from None
    return None


def _read_model(model: _Table, path: Path, size: int) -> TfliteInfo:
    subgraphs = model.tables(2)
    if not subgraphs:
        raise ValueError("no subgraphs")
    main = subgraphs[0]
    tensors = main.tables(0)

    def tensor(index: int) -> TfliteTensor:
        if not 0 <= index < len(tensors):
            raise ValueError(f"tensor index {index} out of range")
        table = tensors[index]
        quantization = table.table(4)
        return TfliteTensor(
            name=table.string(3),
            dtype=_dtype(table.scalar(1, "<b", 0)),
            shape=table.numbers(0, "<i"),
            shape_signature=table.numbers(7, "<i") or table.numbers(0, "<i"),
            scale=quantization.numbers(2, "<f") if quantization else [],
            zero_point=quantization.numbers(3, "<q") if quantization else [],
        )

    buffers = model.tables(4)
    metadata = {}
    for entry in model.tables(6):
        index = entry.scalar(1, "<I", 0)
        buffer = buffers[index] if index < len(buffers) else None
        metadata[entry.string(0)] = (buffer.vector_length(0) or buffer.scalar(2, "<Q", 0)) if buffer else 0
    signatures = []
    for signature in model.tables(7):
        graph_tensors = subgraphs[signature.scalar(4, "<I", 0)].tables(0)

        def named(maps, graph_tensors=graph_tensors):
            return {m.string(0): graph_tensors[m.scalar(1, "<I", 0)].string(3) for m in maps}

        signatures.append(TfliteSignature(signature.string(2), named(signature.tables(0)), named(signature.tables(1))))
    return TfliteInfo(
        path=path,
        size_bytes=size,
        version=model.scalar(0, "<I", 0),
        description=model.string(3),
        inputs=[tensor(i) for i in main.numbers(1, "<i")],
        outputs=[tensor(i) for i in main.numbers(2, "<i")],
        signatures=signatures,
        metadata=metadata,
        subgraphs=len(subgraphs),
    )


def _dtype(code: int) -> str:
    return TENSOR_TYPES[code] if 0 <= code < len(TENSOR_TYPES) else f"type {code}"


class _Table:
    """One flatbuffer table: its position and its vtable, with bounds-checked field access."""

    def __init__(self, data, position: int):
        self.data = data
        self.position = position
        self.vtable = position - struct.unpack_from("<i", data, position)[0]
        self.vtable_size = struct.unpack_from("<H", data, self.vtable)[0]

    @classmethod
    def root(cls, data) -> _Table:
        return cls(data, struct.unpack_from("<I", data, 0)[0])

    def _field(self, number: int) -> int | None:
        """Absolute position of field ``number``, or None when it is absent (its default applies)."""
        slot = 4 + 2 * number
        if slot + 2 > self.vtable_size:
            return None
        relative = struct.unpack_from("<H", self.data, self.vtable + slot)[0]
        return self.position + relative if relative else None

    def _target(self, number: int) -> int | None:
        """Where the offset stored in field ``number`` points."""
        at = self._field(number)
        return None if at is None else at + struct.unpack_from("<I", self.data, at)[0]

    def scalar(self, number: int, fmt: str, default):
        at = self._field(number)
        return default if at is None else struct.unpack_from(fmt, self.data, at)[0]

    def string(self, number: int) -> str:
        at = self._target(number)
        if at is None:
            return ""
        length = struct.unpack_from("<I", self.data, at)[0]
        raw = self.data[at + 4 : at + 4 + length]
        if len(raw) != length:
            raise ValueError("string runs past the end of the file")
        return raw.decode("utf-8")

    def bytes(self, number: int) -> bytes:
        """A ``[ubyte]`` field's content (empty when absent)."""
        at = self._target(number)
        if at is None:
            return b""
        length = struct.unpack_from("<I", self.data, at)[0]
        if at + 4 + length > len(self.data):
            raise ValueError("byte vector runs past the end of the file")
        return bytes(self.data[at + 4 : at + 4 + length])

    def vector_length(self, number: int) -> int:
        at = self._target(number)
        return 0 if at is None else struct.unpack_from("<I", self.data, at)[0]

    def numbers(self, number: int, fmt: str) -> list:
        at = self._target(number)
        if at is None:
            return []
        length = struct.unpack_from("<I", self.data, at)[0]
        return list(struct.unpack_from(f"<{length}{fmt[1:]}", self.data, at + 4))

    def table(self, number: int) -> _Table | None:
        at = self._target(number)
        return None if at is None else _Table(self.data, at)

    def tables(self, number: int) -> list[_Table]:
        at = self._target(number)
        if at is None:
            return []
        length = struct.unpack_from("<I", self.data, at)[0]
        if at + 4 + 4 * length > len(self.data):
            raise ValueError("table vector runs past the end of the file")
        return [_Table(self.data, at + 4 + 4 * i + struct.unpack_from("<I", self.data, at + 4 + 4 * i)[0]) for i in range(length)]
