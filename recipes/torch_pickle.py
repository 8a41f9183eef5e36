"""Read a legacy (pre-zip) ``torch.save`` state dict into numpy, without torch.

Weight files are untrusted input: a pickle can name any Python callable, so the
unpickler here resolves only the handful of globals a plain state dict needs
(an ``OrderedDict`` of tensors rebuilt from typed storages) and refuses every
other one before anything runs.

The legacy layout, as ``torch.save(..., _use_new_zipfile_serialization=False)``
writes it, is a sequence of pickles followed by raw bytes:

1. the magic number ``0x1950a86a20f9469cfc6c``;
2. the protocol version ``1001``;
3. a dict of system information (byte order, C type sizes);
4. the object itself, in which each storage appears as a persistent id
   ``("storage", <StorageType>, key, location, numel, view_metadata)``;
5. the list of storage keys, in the order their data follows;
6. per key: the element count as a little-endian int64, then the raw elements.

Example:
    >>> from recipes.torch_pickle import load_legacy_state_dict
    >>> weights = load_legacy_state_dict("efficientnet-lite0-57934424.pth")  # doctest: +SKIP
    >>> weights["_conv_stem.weight"].shape  # doctest: +SKIP
    (32, 3, 3, 3)
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hubcli.errors import IntegrityError, UnsafeContentError

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001

# Storage classes a state dict of ordinary tensors uses, by their pickled name.
_STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class TorchPickleError(IntegrityError):
    """The file is not a readable legacy torch state dict."""


@dataclass(frozen=True)
class _StorageType:
    name: str

    @property
    def dtype(self) -> np.dtype:
        return _STORAGE_DTYPES[self.name]


@dataclass
class _Storage:
    """A storage named by the pickle; its bytes are filled in after the pickle ends."""

    key: str
    dtype: np.dtype
    numel: int
    data: np.ndarray | None = None


@dataclass(frozen=True)
class _TensorRef:
    """What ``_rebuild_tensor_v2`` received: a view into a storage."""

    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, *extra):
    # The view is resolved later: the storage bytes come after the pickle in the file.
    if not isinstance(storage, _Storage):
        raise TorchPickleError("tensor is not backed by a storage")
    return _TensorRef(storage, int(storage_offset), tuple(int(s) for s in size), tuple(int(s) for s in stride))


def _ordered_dict(*args):
    return collections.OrderedDict(*args)


class _StateDictUnpickler(pickle.Unpickler):
    """Allows only the globals of a plain tensor state dict; storages come by persistent id."""

    def __init__(self, file, storages: dict[str, _Storage]):
        super().__init__(file)
        self._storages = storages

    def find_class(self, module: str, name: str):
        if module == "collections" and name == "OrderedDict":
            return _ordered_dict
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise UnsafeContentError(f"weights file names a Python global this loader refuses: {module}.{name}")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise TorchPickleError(f"unsupported persistent id in weights file: {pid!r:.80}")
        _, storage_type, key, _location, numel, view_metadata = pid
        if not isinstance(storage_type, _StorageType) or view_metadata is not None:
            raise TorchPickleError("unsupported storage record in weights file")
        if key not in self._storages:
            self._storages[key] = _Storage(str(key), storage_type.dtype, int(numel))
        return self._storages[key]


def _read_header_pickle(stream: io.BufferedIOBase):
    # The header pickles hold only ints and a dict of ints; no global is ever allowed.
    return _StateDictUnpickler(stream, {}).load()


def load_legacy_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Load a legacy-format torch state dict as ``{name: numpy array}``.

    Raises:
        UnsafeContentError: the pickle names a global outside the allow list.
        TorchPickleError: the file is truncated, zip-format, or otherwise not a
            legacy state dict.
    """
    path = Path(path)
    with path.open("rb") as stream:
        if stream.read(4) == b"PK\x03\x04":
            raise TorchPickleError(f"{path.name} is a zip-format torch file, not the legacy format")
        stream.seek(0)
        try:
            if _read_header_pickle(stream) != LEGACY_MAGIC_NUMBER:
                raise TorchPickleError(f"{path.name}: not a torch legacy file (bad magic number)")
            version = _read_header_pickle(stream)
            if version != LEGACY_PROTOCOL_VERSION:
                raise TorchPickleError(f"{path.name}: unsupported torch protocol version {version}")
            sys_info = _read_header_pickle(stream)
            if not (isinstance(sys_info, dict) and sys_info.get("little_endian", False)):
                raise TorchPickleError(f"{path.name}: only little-endian torch files are supported")
            storages: dict[str, _Storage] = {}
            state = _StateDictUnpickler(stream, storages).load()
            storage_keys = _read_header_pickle(stream)
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError) as err:
            raise TorchPickleError(f"{path.name}: damaged torch pickle ({type(err).__name__})") from None
        if not isinstance(state, dict) or not isinstance(storage_keys, list):
            raise TorchPickleError(f"{path.name}: does not hold a state dict")
        for key in storage_keys:
            storage = storages.get(key)
            if storage is None:
                raise TorchPickleError(f"{path.name}: data for unknown storage {key!r}")
            count_bytes = stream.read(8)
            numel = struct.unpack("<q", count_bytes)[0] if len(count_bytes) == 8 else -1
            nbytes = max(numel, 0) * storage.dtype.itemsize
            raw = stream.read(nbytes)
            if numel != storage.numel or len(raw) != nbytes:
                raise TorchPickleError(f"{path.name}: truncated or inconsistent storage {key!r}")
            storage.data = np.frombuffer(raw, dtype=storage.dtype)
    return {str(name): _materialise(name, ref, path) for name, ref in state.items()}


def _materialise(name, ref, path: Path) -> np.ndarray:
    if not isinstance(ref, _TensorRef):
        raise TorchPickleError(f"{path.name}: entry {name!r} is not a tensor")
    data = ref.storage.data
    if data is None:
        raise TorchPickleError(f"{path.name}: storage of {name!r} has no data")
    count = int(np.prod(ref.shape, dtype=np.int64))
    if count == 0:
        return np.zeros(ref.shape, dtype=data.dtype)
    # The last element reachable through the view must lie inside the storage.
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.shape, ref.stride, strict=True))
    if ref.offset < 0 or min(ref.stride, default=0) < 0 or last >= data.size:
        raise TorchPickleError(f"{path.name}: tensor {name!r} reaches outside its storage")
    item = data.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        data[ref.offset:], shape=ref.shape, strides=tuple(s * item for s in ref.stride), writeable=False
    )
    return np.array(view)  # a contiguous copy the caller owns
