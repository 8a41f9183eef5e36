"""File-system mechanics every part of hubcli shares: atomic writes, swaps, hashing, full disks.

Readers of the cache, a registry or a run directory must never see half a file or half a
directory, and a full disk must read as one line rather than a traceback. Each mechanism
lives here once.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> target = Path(tempfile.mkdtemp()) / "index.json"
    >>> write_text_atomic(target, '{"modules": []}\\n')
    >>> target.read_text()
    '{"modules": []}\\n'
    >>> sha256_file(target)[:12]
    '0c7d0952938a'
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from hubcli.errors import HubcliError

#: errno values of writes that no retry cures: the disk, the quota or the file-size limit is full.
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})

_HASH_CHUNK = 1 << 20


class DiskFullError(HubcliError):
    """A write failed because the disk, the quota or the file-size limit is full."""

    exit_code = 1


@contextmanager
def atomic_write(target: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """Yield a file that replaces ``target`` only once written and synced to disk.

    On any failure (a full disk, Ctrl-C) the temp file vanishes and ``target`` is left as it
    was. The new file gets the mode an ordinary new file would get under the umask, because
    registries and caches are read by other users and web servers.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> target = Path(tempfile.mkdtemp()) / "labels.txt"
        >>> with atomic_write(target) as out:
        ...     _ = out.write("daisy\\n")
        >>> target.read_text()
        'daisy\\n'
    """
    target = Path(target)
    temp = _temp_beside(target)
    try:
        with open(temp, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as writer:
            yield writer
            writer.flush()
            os.fsync(writer.fileno())
        os.replace(temp, target)
    except BaseException:
        _remove_quietly(temp)
        raise


def write_text_atomic(target: str | os.PathLike, text: str) -> None:
    """Replace ``target`` with ``text`` (UTF-8) atomically; see :func:`atomic_write`."""
    with atomic_write(target, "w") as writer:
        writer.write(text)


def write_bytes_atomic(target: str | os.PathLike, data: bytes) -> None:
    """Replace ``target`` with ``data`` atomically; see :func:`atomic_write`."""
    with atomic_write(target, "wb") as writer:
        writer.write(data)


def swap_into_place(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Move the finished file or directory ``source`` to ``target``, replacing what is there.

    ``os.replace`` cannot replace a non-empty directory, so an old one is renamed aside first
    and removed only once the new one is in place: at every moment ``target`` is either the
    complete old content or the complete new one (or, for an instant, absent).
    """
    source, target = Path(source), Path(target)
    retired = None
    if target.is_dir() and not target.is_symlink():
        retired = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(target, retired)
    os.replace(source, target)
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in large chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while chunk := source.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def disk_full_reason(err: BaseException) -> str | None:
    """Why a write failed for lack of space (``"No space left on device"``), else None.

    Python's writes raise OSError with an errno; ``shutil.copytree`` (an OSError without one)
    and TensorFlow's file ops (``tf.errors.OpError``) fold the OS message into a longer text,
    so those are matched by the messages of the same errno values.

    Example:
        >>> disk_full_reason(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
        'No space left on device'
        >>> disk_full_reason(ValueError("no")) is None
        True
    """
    if isinstance(err, OSError) and err.errno in DISK_FULL_ERRNOS:
        return err.strerror or os.strerror(err.errno)
    if isinstance(err, OSError) or type(err).__module__.startswith("tensorflow"):
        text = str(err)
        return next((os.strerror(code) for code in sorted(DISK_FULL_ERRNOS) if os.strerror(code) in text), None)
    return None


def raise_if_disk_full(err: BaseException, what: str) -> None:
    """Raise :class:`DiskFullError` naming ``what`` could not be written, if ``err`` means a full disk.

    Example:
        >>> try:
        ...     raise_if_disk_full(OSError(errno.ENOSPC, "No space left on device"), "the run directory runs/a")
        ... except DiskFullError as err:
        ...     print(err)
        cannot write the run directory runs/a: No space left on device; nothing was changed there
    """
    reason = disk_full_reason(err)
    if reason:
        raise DiskFullError(f"cannot write {what}: {reason}; nothing was changed there") from None


def _temp_beside(target: Path) -> str:
    descriptor, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    # mkstemp makes the file 0600; give it the mode an ordinary new file would get.
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(descriptor, 0o666 & ~umask)
    os.close(descriptor)
    return temp


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
