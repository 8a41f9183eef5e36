"""Safe extraction of module archives (``.tar``, ``.tar.gz``, ``.tgz``, whatever the file's name).

A module archive comes from the network and a module is runnable code, so
extraction trusts nothing in it. It refuses, with one
:class:`~hubcli.errors.UnsafeContentError` line (exit 6):

- member names that are absolute, climb out with ``..``, hold a NUL or another
  control character, are not UTF-8, or have a component longer than 255 bytes;
- two members of the same name (a file and then a link, a directory and then a
  file...), and members inside something that is not a directory;
- symbolic links that, resolved against what is already on disk (every link
  followed, as the kernel would), leave the module, dangle or loop; the check
  runs again once everything is extracted, so no order of links can build a
  chain out; hard links whose target is not a file extracted before them;
- device files, FIFOs and anything else that is not a file, directory or link;
- archives that expand past ``max_bytes`` (a decompression bomb): every byte
  written counts, hard-link copies and sparse files included, and every member
  costs at least its 512-byte header, so a million empty files count too;

with :class:`~hubcli.errors.IntegrityError` (exit 5) a gzip stream whose CRC or
length does not match its trailer (a damaged or spliced download), and with
:class:`~hubcli.errors.InvalidModuleError` (exit 7) content that is not a
module at all (no ``saved_model.pb`` or ``saved_model.pbtxt``, nor one ``.tflite`` file, at its root) or
not a tar archive (a zip, an HTML page). On any refusal the destination
directory is removed, so nothing is left behind.

In-module symbolic links are kept as they are; hard links become copies, so
every file in the cache owns its bytes.

Extraction is a single streaming pass that hashes each file as it is written,
which yields the cache manifest without reading the files a second time.

Example:
    >>> import io, tarfile, tempfile
    >>> from pathlib import Path
    >>> work = Path(tempfile.mkdtemp())
    >>> with tarfile.open(work / "m.tar.gz", "w:gz") as tar:
    ...     member = tarfile.TarInfo("saved_model.pb"); member.size = 5
    ...     tar.addfile(member, io.BytesIO(b"model"))
    >>> manifest = extract_module_archive(work / "m.tar.gz", work / "module")
    >>> manifest["saved_model.pb"]["size"], sorted(p.name for p in (work / "module").iterdir())
    (5, ['saved_model.pb'])
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tarfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO

from hubcli.config import env_number
from hubcli.errors import IntegrityError, InvalidModuleError, UnsafeContentError
from hubcli.hub.content import describe_content, sniff
from hubcli.hub.tflite import root_tflite_name
from hubcli.savedmodel.formats import SAVED_MODEL_FILES, is_module_dir

#: Refuse archives that expand to more than this (override with HUBCLI_MAX_EXTRACT_BYTES).
DEFAULT_MAX_BYTES = 20 * 1024**3

_COPY_CHUNK = 1 << 20
#: What each member costs against the size limit before its data: its tar header.
_ENTRY_COST = 512
_NAME_MAX = 255


def max_extract_bytes() -> int:
    """The extraction size limit: ``HUBCLI_MAX_EXTRACT_BYTES`` when set (a usage error if not a number)."""
    return env_number("HUBCLI_MAX_EXTRACT_BYTES", DEFAULT_MAX_BYTES, integer=True, minimum=1)


def extract_module_archive(
    archive: str | os.PathLike,
    dest: str | os.PathLike,
    *,
    max_bytes: int | None = None,
    require_module: bool = True,
    label: str | None = None,
) -> dict[str, dict[str, int | str]]:
    """Extract ``archive`` into the new directory ``dest``; return its manifest.

    The manifest maps each regular file's POSIX relative path to
    ``{"size": bytes, "sha256": hex}``. ``dest`` must not exist yet; on any error
    it is removed before the exception propagates. Error messages call the
    archive ``label`` (default: its file name).
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=False)
    try:
        label = label or Path(archive).name
        limit = max_extract_bytes() if max_bytes is None else max_bytes
        manifest = _Extraction(dest.resolve(), limit).run(Path(archive), label)
        if require_module and not is_module_dir(dest) and root_tflite_name(manifest) is None:
            raise InvalidModuleError(
                f"{label} is not a module: no saved_model.pb or saved_model.pbtxt at its root"
                + _nested_module_hint(manifest)
            )
        return manifest
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise


def _nested_module_hint(manifest: dict) -> str:
    """The common packing mistake, ``tar czf m.tar.gz model/``, named with its fix."""
    nested = sorted((name for name in manifest if PurePosixPath(name).name in SAVED_MODEL_FILES), key=len)
    if not nested:
        return ""
    folder = PurePosixPath(nested[0]).parent
    return f" (found {nested[0]}; pack the module directory's contents, as in `tar czf m.tar.gz -C {folder} .`)"


def check_member_name(name: str, what: str) -> PurePosixPath:
    """Normalise a member or link name; refuse absolute paths, ``..`` and names no file system should see.

    Example:
        >>> check_member_name("./variables/variables.index", "member")
        PurePosixPath('variables/variables.index')
        >>> check_member_name("a\\x00b", "member")
        Traceback (most recent call last):
        ...
        hubcli.errors.UnsafeContentError: archive member 'a\\x00b' has a NUL or control character in its name
    """
    _check_characters(name, what)
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise UnsafeContentError(f"archive {what} {name!r} is an absolute path")
    parts = [p for p in PurePosixPath(name.replace("\\", "/")).parts if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeContentError(f"archive {what} {name!r} points outside the module ('..')")
    return PurePosixPath(*parts) if parts else PurePosixPath(".")


def _check_characters(name: str, what: str) -> None:
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise UnsafeContentError(f"archive {what} {name!r} has a NUL or control character in its name")
    try:
        encoded = [part.encode("utf-8") for part in name.split("/")]
    except UnicodeEncodeError:  # tarfile decodes undecodable bytes to surrogates
        raise UnsafeContentError(f"archive {what} {name!r} is not valid UTF-8") from None
    if any(len(part) > _NAME_MAX for part in encoded):
        raise UnsafeContentError(f"archive {what} {name[:60]!r}... has a name component longer than {_NAME_MAX} bytes")


class _Extraction:
    """One pass over an archive into ``root``, remembering what each extracted path is."""

    def __init__(self, root: Path, max_bytes: int):
        self.root = root
        self.max_bytes = max_bytes
        self.written = 0
        self.kinds: dict[PurePosixPath, str] = {}
        self.links: list[tuple[PurePosixPath, str]] = []
        self.manifest: dict[str, dict[str, int | str]] = {}

    def run(self, archive: Path, label: str) -> dict[str, dict[str, int | str]]:
        kind = sniff(archive)
        if kind in ("zip", "html", "tflite", "empty"):
            raise InvalidModuleError(f"{label} is {describe_content(kind)}, not a tar archive (.tar.gz, .tgz or .tar)")
        try:
            with _open_tar(archive, kind) as (tar, stream):
                for member in tar:
                    self._member(tar, member)
                if stream is not None:
                    # A gzip trailer (CRC32 and length) is only checked at the end of the stream.
                    while stream.read(_COPY_CHUNK):
                        pass
        except tarfile.TarError as err:
            raise InvalidModuleError(f"{label} is not a readable tar archive: {err}") from None
        except EOFError:
            raise InvalidModuleError(f"{label} is truncated") from None
        except (zlib.error, _gzip_errors()) as err:
            raise IntegrityError(f"{label} is damaged: its compressed data does not check out ({err})") from None
        self._check_links_after_extraction()
        return self.manifest

    def _charge(self, size: int) -> None:
        self.written += size
        if self.written > self.max_bytes:
            raise UnsafeContentError(
                f"archive expands past the {self.max_bytes} byte limit (set HUBCLI_MAX_EXTRACT_BYTES to raise it)"
            )

    def _member(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        rel = check_member_name(member.name, "member")
        if str(rel) == ".":
            return
        self._charge(_ENTRY_COST)
        kind = _kind_of(member)
        self._check_place(member.name, rel, kind)
        target = self.root / rel
        if kind == "directory":
            target.mkdir(parents=True, exist_ok=True)
        elif kind == "file":
            target.parent.mkdir(parents=True, exist_ok=True)
            self.manifest[rel.as_posix()] = self._write_file(tar.extractfile(member), target, member.mode)
        elif kind == "symlink":
            self._symlink(member, rel, target)
        else:  # hard link
            self._hard_link(member, rel, target)
        self.kinds[rel] = kind

    def _check_place(self, name: str, rel: PurePosixPath, kind: str) -> None:
        """Refuse duplicates and members inside non-directories; note implicit parent directories."""
        previous = self.kinds.get(rel)
        if previous is not None and not (previous == kind == "directory"):
            raise UnsafeContentError(f"archive has two members named {name!r} (a {previous}, then a {kind})")
        for parent in reversed(rel.parents[:-1]):  # outermost first, without "."
            parent_kind = self.kinds.setdefault(parent, "directory")
            if parent_kind == "symlink":
                # Even a link inside the module would give one file two names (and a later duplicate a way in).
                raise UnsafeContentError(f"archive member {name!r} is written through the link {parent.as_posix()!r}")
            if parent_kind != "directory":
                raise UnsafeContentError(f"archive member {name!r} is inside {parent.as_posix()!r}, which is a {parent_kind}")

    def _write_file(self, source, target: Path, mode: int) -> dict[str, int | str]:
        digest = hashlib.sha256()
        size = 0
        # O_EXCL: duplicates were refused, so anything already there is not ours to write through.
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as out:
            while chunk := source.read(_COPY_CHUNK):
                self._charge(len(chunk))  # The bytes really written, whatever the header claimed.
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
        # Keep the owner's execute bit only; never setuid/setgid/sticky or world-writable.
        os.chmod(target, 0o755 if mode & stat.S_IXUSR else 0o644)
        return {"size": size, "sha256": digest.hexdigest()}

    def _symlink(self, member: tarfile.TarInfo, rel: PurePosixPath, target: Path) -> None:
        link = member.linkname
        if link.startswith("/") or not link:
            raise UnsafeContentError(f"archive symlink {member.name!r} -> {link!r} points outside the module")
        _check_characters(link, "symlink target")  # Where it leads is judged on disk, below.
        target.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(link, target)
        if not _inside(self.root, target):
            raise UnsafeContentError(f"archive symlink {member.name!r} -> {link!r} points outside the module")
        self.links.append((rel, link))

    def _hard_link(self, member: tarfile.TarInfo, rel: PurePosixPath, target: Path) -> None:
        source_rel = check_member_name(member.linkname, "hard link target")
        recorded = self.manifest.get(source_rel.as_posix())
        if recorded is None or self.kinds.get(source_rel) != "file":
            raise UnsafeContentError(
                f"archive hard link {member.name!r} -> {member.linkname!r} names no file extracted before it"
            )
        self._charge(int(recorded["size"]))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.root / source_rel, target, follow_symlinks=False)
        self.manifest[rel.as_posix()] = dict(recorded)

    def _check_links_after_extraction(self) -> None:
        """A later link can turn an earlier one into a way out (``up -> d/..`` before ``d -> .``): look again."""
        for rel, link in self.links:
            path = self.root / rel
            if not _inside(self.root, path):
                raise UnsafeContentError(f"archive symlink {rel.as_posix()!r} -> {link!r} points outside the module")
            if not os.path.exists(path):
                raise UnsafeContentError(f"archive symlink {rel.as_posix()!r} -> {link!r} dangles or loops inside the module")


def _kind_of(member: tarfile.TarInfo) -> str:
    if member.isdir():
        return "directory"
    if member.isreg():
        return "file"
    if member.issym():
        return "symlink"
    if member.islnk():
        return "hard link"
    kind = "device file" if (member.ischr() or member.isblk()) else "FIFO" if member.isfifo() else "special file"
    raise UnsafeContentError(f"archive member {member.name!r} is a {kind}; modules contain only files")


def _inside(root: Path, path: Path) -> bool:
    """Whether ``path``, every link on the way followed, stays under ``root``."""
    real = os.path.realpath(path)
    return real == str(root) or real.startswith(str(root) + os.sep)


@contextmanager
def _open_tar(archive: Path, kind: str) -> Iterator[tuple[tarfile.TarFile, IO[bytes] | None]]:
    """``(tar, gzip stream or None)`` for one forward pass over ``archive``.

    gzip is opened here rather than by tarfile, whose stream mode never checks the
    gzip trailer: a spliced or damaged download would otherwise extract cleanly.
    """
    import gzip

    with open(archive, "rb") as raw:
        stream = gzip.GzipFile(fileobj=raw, mode="rb") if kind == "gzip" else None
        with tarfile.open(fileobj=stream or raw, mode="r|" if stream is not None else "r|*") as tar:
            yield tar, stream


def _gzip_errors() -> type[BaseException]:
    import gzip

    return gzip.BadGzipFile
