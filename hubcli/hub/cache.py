"""The shared module cache: tensorflow_hub's layout plus a verifiable manifest.

Layout, for a handle whose ``cache_key`` has sha1 ``<name>``::

    <cache>/<name>/                    the module, exactly as published (what hub.load reads)
    <cache>/<name>.descriptor.txt      tensorflow_hub's descriptor ("Module: <handle>" ...)
    <cache>/<name>.hubcli.json         hubcli's sidecar: handle, URLs, archive sha256 and size,
                                       and a manifest of every file (size, sha256, mtime)
    <cache>/<name>.lock                the entry's lock while someone installs it (see lock.py)
    <cache>/<name>.part                an interrupted download, resumed by the next pull
    <cache>/<name>.part.json           what the .part is a part of (ETag, Last-Modified, size), see partfile.py
    <cache>/<name>.<uid>.tmp/          an extraction in progress (renamed into place when done)

tensorflow_hub 0.16.1 names ``<name>`` and the descriptor the same way, so
either tool finds what the other installed. An entry without a sidecar was
installed by tensorflow_hub: it is served and listed, but has no manifest to
verify against.

Installs are atomic: the archive is verified, extracted into a temp dir beside
the entry and renamed into place, so a reader sees either no entry or a
whole one (the gap tensorflow_hub's bugs #850/#882/#896 fall into). The last
use of an entry is the mtime of its sidecar (or descriptor), refreshed by
every pull; a timestamp is cheaper and safer to update than JSON that a
concurrent installer may be rewriting.

Example:
    >>> import tempfile
    >>> cache_dir = Path(tempfile.mkdtemp())
    >>> list_entries(cache_dir), find_prunable(cache_dir)
    ([], [])
    >>> for entry in list_entries(Path("~/.cache/hubcli/modules").expanduser()):  # doctest: +SKIP
    ...     print(entry.handle, entry.disk_bytes, verify_entry(entry))
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hubcli import __version__
from hubcli.errors import HubcliError
from hubcli.fsio import sha256_file, write_text_atomic
from hubcli.hub import partfile
from hubcli.hub.filelock import holder_is_alive
from hubcli.savedmodel.formats import is_module_dir

SIDECAR_SCHEMA = "hubcli.hub.cache-entry/1"
_NAME = re.compile(r"^[0-9a-f]{40}$")
_LEFTOVER = re.compile(r"^([0-9a-f]{40})\.([0-9a-f]+)\.(tmp|old)$")


@dataclass(frozen=True)
class EntryPaths:
    """Every path that belongs to one cache entry."""

    cache_dir: Path
    name: str

    @property
    def module_dir(self) -> Path:
        return self.cache_dir / self.name

    @property
    def descriptor(self) -> Path:
        return self.cache_dir / f"{self.name}.descriptor.txt"

    @property
    def sidecar(self) -> Path:
        return self.cache_dir / f"{self.name}.hubcli.json"

    @property
    def lock(self) -> Path:
        return self.cache_dir / f"{self.name}.lock"

    @property
    def part(self) -> Path:
        return self.cache_dir / f"{self.name}.part"

    def scratch_dir(self, kind: str) -> Path:
        """A fresh ``<name>.<uid>.tmp`` (extraction) or ``.old`` (being replaced) path."""
        return self.cache_dir / f"{self.name}.{uuid.uuid4().hex}.{kind}"


@dataclass
class CacheEntry:
    """One installed module, as read from disk."""

    paths: EntryPaths
    origin: str  # "hubcli" or "tensorflow_hub"
    handle: str | None
    resolved_url: str | None = None
    sha256: str | None = None
    size: int | None = None
    installed_at: str | None = None
    files: dict[str, dict[str, Any]] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.paths.module_dir

    @property
    def name(self) -> str:
        return self.paths.name

    @property
    def last_used(self) -> float:
        """Seconds since the epoch of the last pull that used this entry."""
        for marker in (self.paths.sidecar, self.paths.descriptor, self.paths.module_dir):
            try:
                return marker.stat().st_mtime
            except FileNotFoundError:
                continue
        return 0.0

    @property
    def disk_bytes(self) -> int:
        if self.files is not None:
            return sum(int(f["size"]) for f in self.files.values())
        return _tree_bytes(self.path)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "handle": self.handle,
            "origin": self.origin,
            "path": str(self.path),
            "resolved_url": self.resolved_url,
            "sha256": self.sha256,
            "archive_size": self.size,
            "disk_bytes": self.disk_bytes,
            "files": len(self.files) if self.files is not None else None,
            "installed_at": self.installed_at,
            "last_used": _iso(self.last_used),
        }


def _iso(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).isoformat(timespec="seconds")


def _tree_bytes(root: Path) -> int:
    total = 0
    for folder, _, names in os.walk(root):
        for name in names:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                pass
    return total


def read_entry(cache_dir: Path, name: str) -> CacheEntry | None:
    """The entry called ``name`` (sha1 hex), or None when there is neither module dir nor sidecar."""
    paths = EntryPaths(Path(cache_dir), name)
    try:
        data = json.loads(paths.sidecar.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):  # No sidecar, or no cache directory at all.
        data = None
    except (OSError, ValueError):
        data = {}  # A sidecar we cannot read: the entry is damaged, and pull will reinstall it.
    if data is None:
        if not paths.module_dir.is_dir():
            return None
        return CacheEntry(paths, "tensorflow_hub", _descriptor_handle(paths.descriptor))
    return CacheEntry(
        paths,
        "hubcli",
        data.get("handle"),
        resolved_url=data.get("resolved_url"),
        sha256=data.get("sha256"),
        size=data.get("size"),
        installed_at=data.get("installed_at"),
        files=data.get("files") if isinstance(data.get("files"), dict) else {},
        metadata=data,
    )


def _descriptor_handle(descriptor: Path) -> str | None:
    """The ``Module: <handle>`` line tensorflow_hub writes."""
    try:
        for line in descriptor.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("Module: "):
                return line[len("Module: ") :].strip()
    except OSError:
        pass
    return None


def list_entries(cache_dir: Path) -> list[CacheEntry]:
    """All entries, hubcli's and tensorflow_hub's, oldest use first."""
    cache_dir = Path(cache_dir)
    if not cache_dir.is_dir():
        return []
    names = set()
    for child in cache_dir.iterdir():
        stem = child.name.split(".", 1)[0]
        if _NAME.match(stem) and (child.name == stem or child.name.endswith(".hubcli.json")):
            names.add(stem)
    entries = [e for e in (read_entry(cache_dir, n) for n in sorted(names)) if e is not None]
    return sorted(entries, key=lambda e: e.last_used)


# --- checking ----------------------------------------------------------------


def quick_problems(entry: CacheEntry) -> list[str]:
    """Damage visible from ``stat`` alone: missing, resized or rewritten files. Cheap; run on every pull.

    A file whose mtime changed is hashed, so a ``touch`` is not damage but a byte
    flipped through the file system is. For tensorflow_hub entries (no manifest)
    only the presence of a SavedModel is checked.
    """
    if not entry.path.is_dir():
        return ["module directory is missing"]
    if entry.files is None:
        return [] if is_module_dir(entry.path) else ["no saved_model.pb in the module directory"]
    if not entry.files:
        return ["the hubcli sidecar is unreadable or has no manifest"]
    problems = []
    for relative, recorded in entry.files.items():
        try:
            info = os.stat(entry.path / relative)
        except OSError:
            problems.append(f"missing {relative}")
            continue
        if info.st_size != recorded["size"]:
            problems.append(f"{relative} has {info.st_size} bytes, expected {recorded['size']}")
        elif info.st_mtime_ns != recorded.get("mtime_ns") and sha256_file(entry.path / relative) != recorded["sha256"]:
            problems.append(f"{relative} content changed")
    return problems


def verify_entry(entry: CacheEntry) -> list[str]:
    """Full check: every manifest file exists with its size and sha256, and nothing else is there.

    Returns the problems found (empty: intact). Raises nothing for damage.
    """
    if entry.files is None:
        return quick_problems(entry)
    if not entry.path.is_dir():
        return ["module directory is missing"]
    if not entry.files:
        return ["the hubcli sidecar is unreadable or has no manifest"]
    problems = []
    for relative, recorded in entry.files.items():
        file = entry.path / relative
        if not file.is_file():
            problems.append(f"missing {relative}")
        elif file.stat().st_size != recorded["size"]:
            problems.append(f"{relative} has {file.stat().st_size} bytes, expected {recorded['size']}")
        elif sha256_file(file) != recorded["sha256"]:
            problems.append(f"{relative} content changed (sha256 mismatch)")
    for folder, _, names in os.walk(entry.path):
        for name in names:
            relative = Path(folder, name).relative_to(entry.path).as_posix()
            if relative not in entry.files and not os.path.islink(os.path.join(folder, name)):
                problems.append(f"unexpected file {relative}")
    return problems


def touch(entry: CacheEntry) -> None:
    """Record a use of ``entry`` (its sidecar's, or tensorflow_hub descriptor's, mtime)."""
    for marker in (entry.paths.sidecar, entry.paths.descriptor):
        try:
            os.utime(marker)
            return
        except OSError:
            continue


# --- installing ----------------------------------------------------------------


def install_entry(
    paths: EntryPaths,
    extracted_dir: Path,
    manifest: dict[str, dict[str, Any]],
    record: dict[str, Any],
) -> CacheEntry:
    """Move the extracted module ``extracted_dir`` into place as the entry; the caller holds its lock.

    The sidecar and descriptor are written first, then the directory is renamed
    in; a damaged entry being replaced is first renamed aside, then deleted.
    """
    for relative, info in manifest.items():
        info["mtime_ns"] = os.stat(extracted_dir / relative).st_mtime_ns
    now = datetime.datetime.now(datetime.UTC)
    sidecar = {
        "schema": SIDECAR_SCHEMA,
        **record,
        "installed_at": now.isoformat(timespec="seconds"),
        "hubcli_version": __version__,
        "files": manifest,
    }
    write_text_atomic(paths.sidecar, json.dumps(sidecar, indent=1) + "\n")
    # tensorflow_hub's descriptor format, so its users can tell what the directory holds.
    descriptor = (
        f"Module: {record.get('cache_key') or record.get('handle')}\n"
        f"Download Time: {now.astimezone().replace(tzinfo=None)}\n"
        f"Downloader Hostname: {socket.gethostname()} (PID:{os.getpid()})"
    )
    write_text_atomic(paths.descriptor, descriptor)
    old = None
    if paths.module_dir.exists() or paths.module_dir.is_symlink():
        old = paths.scratch_dir("old")
        os.rename(paths.module_dir, old)
    os.rename(extracted_dir, paths.module_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    entry = read_entry(paths.cache_dir, paths.name)
    assert entry is not None
    return entry


def remove_entry(paths: EntryPaths) -> int:
    """Delete an entry's directory, sidecar, descriptor and partial download; returns bytes freed.

    The caller holds the entry's lock. The directory is renamed aside first so no
    reader ever sees it half deleted.
    """
    freed = 0
    if paths.module_dir.exists():
        aside = paths.scratch_dir("old")
        os.rename(paths.module_dir, aside)
        freed += _tree_bytes(aside)
        shutil.rmtree(aside, ignore_errors=True)
    for file in (paths.part, partfile.record_path(paths.part), paths.sidecar, paths.descriptor):
        try:
            freed += file.stat().st_size
            file.unlink()
        except FileNotFoundError:
            pass
    return freed


# --- pruning ---------------------------------------------------------------------


@dataclass(frozen=True)
class PruneItem:
    """Something ``cache prune`` removes (or would remove, with ``--dry-run``)."""

    path: Path
    kind: str  # "entry", "temp dir", "temp file", "partial download", "orphan lock", "orphan metadata"
    bytes: int
    reason: str
    name: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "kind": self.kind, "bytes": self.bytes, "reason": self.reason}


def find_prunable(cache_dir: Path, older_than_days: float | None = None, part_max_age_days: float = 7.0) -> list[PruneItem]:
    """Leftovers of crashed or abandoned work, plus entries unused for ``older_than_days``.

    Nothing guarded by a live lock holder is listed: a download in progress
    keeps its ``.part``, temp dir and lock.
    """
    cache_dir = Path(cache_dir)
    if not cache_dir.is_dir():
        return []
    now = time.time()
    items: list[PruneItem] = []
    busy = {p.name[: -len(".lock")] for p in cache_dir.glob("*.lock") if holder_is_alive(p)}
    for child in sorted(cache_dir.iterdir()):
        if child.name.startswith(".") and child.name.endswith(".tmp") and now - child.lstat().st_mtime > 3600:
            # A metadata file that write_text_atomic never renamed (its writer died).
            items.append(PruneItem(child, "temp file", child.lstat().st_size, "left by an interrupted write"))
            continue
        stem = child.name.split(".", 1)[0]
        if not _NAME.match(stem) or stem in busy:
            continue
        age_days = (now - child.lstat().st_mtime) / 86400
        leftover = _LEFTOVER.match(child.name)
        if leftover and child.is_dir():
            items.append(PruneItem(child, "temp dir", _tree_bytes(child), "left by an interrupted install", stem))
        elif child.name.endswith(".part") and age_days > part_max_age_days:
            items.append(
                PruneItem(child, "partial download", child.stat().st_size, f"untouched for {age_days:.0f} days", stem)
            )
        elif child.name.endswith(".part.json") and not child.with_name(child.name[: -len(".json")]).exists():
            items.append(PruneItem(child, "orphan metadata", child.stat().st_size, "its partial download is gone", stem))
        elif child.name.endswith((".lock", ".lock.break")):
            items.append(PruneItem(child, "orphan lock", child.stat().st_size, "its holder is gone", stem))
        elif child.name.endswith((".hubcli.json", ".descriptor.txt")) and not (cache_dir / stem).is_dir():
            items.append(PruneItem(child, "orphan metadata", child.stat().st_size, "its module directory is gone", stem))
    if older_than_days is not None:
        for entry in list_entries(cache_dir):
            idle_days = (now - entry.last_used) / 86400
            if entry.name not in busy and idle_days > older_than_days:
                reason = f"unused for {idle_days:.0f} days"
                items.append(PruneItem(entry.path, "entry", entry.disk_bytes, reason, entry.name))
    return items


def remove_entry_locked(paths: EntryPaths, timeout: float = 60) -> int:
    """:func:`remove_entry` under the entry's lock, so no pull is mid-install; returns bytes freed.

    Raises:
        HubcliError: the cache cannot be changed (read-only, not ours), in one line.
    """
    from hubcli.hub.filelock import FileLock

    with _deleting(paths.cache_dir), FileLock(paths.lock, description=f"cache entry {paths.name}", timeout=timeout):
        return remove_entry(paths)


def prune(items: list[PruneItem]) -> int:
    """Delete what :func:`find_prunable` listed; returns bytes freed. Entries go under their lock."""
    freed = 0
    for item in items:
        if item.kind == "entry":
            freed += remove_entry_locked(EntryPaths(item.path.parent, item.name), timeout=30)
        elif item.path.is_dir() and not item.path.is_symlink():
            shutil.rmtree(item.path, ignore_errors=True)
            freed += item.bytes
        elif item.kind == "partial download":
            with _deleting(item.path.parent):
                partfile.discard(item.path)
            freed += item.bytes
        else:
            with _deleting(item.path.parent):
                try:
                    item.path.unlink()
                    freed += item.bytes
                except FileNotFoundError:
                    pass
    return freed


@contextmanager
def _deleting(cache_dir: Path) -> Iterator[None]:
    try:
        yield
    except OSError as err:  # A read-only or foreign-owned cache: one line, not a traceback.
        raise HubcliError(f"cannot delete from {cache_dir}: {err.strerror or err}") from None


def looks_like_entry_name(text: str) -> bool:
    """Whether ``text`` is written like an entry name: a sha1, or a prefix of at least 6 hex digits."""
    return re.fullmatch(r"[0-9a-f]{6,40}", text.strip().lower()) is not None


def resolve_entry_name(cache_dir: Path, text: str) -> str | None:
    """An entry name from a full sha1 or a unique prefix of at least 6 hex digits; None if not one."""
    text = text.strip().lower()
    if not looks_like_entry_name(text):
        return None
    matches = sorted({e.name for e in list_entries(cache_dir) if e.name.startswith(text)})
    if len(matches) > 1:
        raise HubcliError(f"'{text}' matches {len(matches)} cache entries; give more digits")
    return matches[0] if matches else None
