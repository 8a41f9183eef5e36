"""Safe extraction of module archives (``.tar``, ``.tar.gz``, ``.tgz``).

A module archive comes from the network and a module is runnable code, so
extraction trusts nothing in it. It refuses, with one
:class:`~hubcli.errors.UnsafeContentError` line:

- member names that are absolute or climb out with ``..``;
- symlinks and hard links whose target lies outside the module;
- device files, FIFOs and anything else that is not a file, directory or link;
- archives that expand past ``max_bytes`` (a decompression bomb);

and, with :class:`~hubcli.errors.InvalidModuleError`, content that is not a
module at all (no ``saved_model.pb`` or ``saved_model.pbtxt`` at its root) or
not a tar archive. On any refusal the destination directory is removed, so
nothing is left behind.

Extraction is a single streaming pass that hashes each file as it is written,
which yields the cache manifest without reading the files a second time.

Example:
    >>> manifest = extract_module_archive("model.tar.gz", "/cache/abc.tmp")  # doctest: +SKIP
    >>> manifest["saved_model.pb"]  # doctest: +SKIP
    {'size': 1234, 'sha256': '...'}
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tarfile
from pathlib import Path, PurePosixPath

from hubcli.config import env_number
from hubcli.errors import InvalidModuleError, UnsafeContentError

#: Refuse archives that expand to more than this (override with HUBCLI_MAX_EXTRACT_BYTES).
DEFAULT_MAX_BYTES = 20 * 1024**3
#: Files at a module's root that make it a SavedModel.
MODULE_MARKERS = ("saved_model.pb", "saved_model.pbtxt")

_COPY_CHUNK = 1 << 20


def max_extract_bytes() -> int:
    """The extraction size limit: ``HUBCLI_MAX_EXTRACT_BYTES`` when set (a usage error if not a number)."""
    return env_number("HUBCLI_MAX_EXTRACT_BYTES", DEFAULT_MAX_BYTES, integer=True, minimum=1)


def _safe_relative(name: str, what: str) -> PurePosixPath:
    """Normalise a member or link name; refuse absolute paths and ``..``."""
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise UnsafeContentError(f"archive {what} {name!r} is an absolute path")
    parts = [p for p in PurePosixPath(name.replace("\\", "/")).parts if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeContentError(f"archive {what} {name!r} points outside the module ('..')")
    return PurePosixPath(*parts) if parts else PurePosixPath(".")


def _link_target(member: tarfile.TarInfo, rel: PurePosixPath) -> PurePosixPath:
    """Where a symlink lands, relative to the module root; refuse targets outside it."""
    target = member.linkname
    if target.startswith("/"):
        raise UnsafeContentError(f"archive symlink {member.name!r} -> {target!r} points outside the module")
    resolved: list[str] = list(rel.parent.parts) if str(rel.parent) != "." else []
    for part in PurePosixPath(target).parts:
        if part in ("", "."):
            continue
        if part == "..":
            if not resolved:
                raise UnsafeContentError(f"archive symlink {member.name!r} -> {target!r} points outside the module")
            resolved.pop()
        else:
            resolved.append(part)
    return PurePosixPath(*resolved) if resolved else PurePosixPath(".")


def _inside(root: Path, path: Path) -> bool:
    """Whether ``path`` (through any symlinks already extracted) stays under ``root``."""
    real = os.path.realpath(path)
    return real == str(root) or real.startswith(str(root) + os.sep)


def extract_module_archive(
    archive: str | os.PathLike,
    dest: str | os.PathLike,
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
        manifest = _extract(Path(archive), label, dest.resolve(), max_extract_bytes() if max_bytes is None else max_bytes)
        if require_module and not any((dest / marker).is_file() for marker in MODULE_MARKERS):
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
    nested = sorted((name for name in manifest if PurePosixPath(name).name in MODULE_MARKERS), key=len)
    if not nested:
        return ""
    folder = PurePosixPath(nested[0]).parent
    return f" (found {nested[0]}; pack the module directory's contents, as in `tar czf m.tar.gz -C {folder} .`)"


def _extract(archive: Path, label: str, root: Path, max_bytes: int) -> dict[str, dict[str, int | str]]:
    manifest: dict[str, dict[str, int | str]] = {}
    written = 0
    try:
        # "r|*": one forward pass, gzip or plain; members are checked before anything is written.
        with tarfile.open(archive, mode="r|*") as tar:
            for member in tar:
                rel = _safe_relative(member.name, "member")
                if str(rel) == ".":
                    continue
                target = root / rel
                if not _inside(root, target.parent):
                    raise UnsafeContentError(f"archive member {member.name!r} is written through a link outside the module")
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                elif member.isreg():
                    written += member.size
                    if written > max_bytes:
                        raise UnsafeContentError(
                            f"archive expands past the {max_bytes} byte limit (set HUBCLI_MAX_EXTRACT_BYTES to raise it)"
                        )
                    source = tar.extractfile(member)
                    manifest[rel.as_posix()] = _write_file(source, target, member.mode)
                elif member.issym():
                    link_rel = _link_target(member, rel)
                    if not _inside(root, root / link_rel):
                        raise UnsafeContentError(f"archive symlink {member.name!r} -> {member.linkname!r} points outside the module")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.symlink(member.linkname, target)
                elif member.islnk():
                    # A hard link names an earlier member; copy it so the module owns its bytes.
                    link_rel = _safe_relative(member.linkname, "hard link target")
                    source_path = root / link_rel
                    if link_rel.as_posix() not in manifest or not _inside(root, source_path):
                        raise UnsafeContentError(
                            f"archive hard link {member.name!r} -> {member.linkname!r} points outside the module"
                        )
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(source_path, target)
                    manifest[rel.as_posix()] = dict(manifest[link_rel.as_posix()])
                else:
                    kind = "device file" if (member.ischr() or member.isblk()) else "FIFO" if member.isfifo() else "special file"
                    raise UnsafeContentError(f"archive member {member.name!r} is a {kind}; modules contain only files")
    except tarfile.TarError as err:
        import zipfile

        if zipfile.is_zipfile(archive):  # A zipped SavedModel renamed, or a Keras file: a common mix-up.
            raise InvalidModuleError(f"{label} is a zip file, not a tar archive (.tar.gz, .tgz or .tar)") from None
        raise InvalidModuleError(f"{label} is not a readable tar archive: {err}") from None
    except EOFError:
        raise InvalidModuleError(f"{label} is truncated") from None
    return manifest


def _write_file(source, target: Path, mode: int) -> dict[str, int | str]:
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    # A later member with the name of an earlier symlink replaces the link, never writes through it.
    if target.is_symlink():
        target.unlink()
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as out:
        while chunk := source.read(_COPY_CHUNK):
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
    # Keep the owner's execute bit only; never setuid/setgid/sticky or world-writable.
    os.chmod(target, 0o755 if mode & stat.S_IXUSR else 0o644)
    return {"size": size, "sha256": digest.hexdigest()}
