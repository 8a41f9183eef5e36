"""Module registries: versioned module archives in a directory or behind an http(s) URL.

A registry is what ``hubcli publish`` writes and what ``--mirror`` serves
from. The layout is plain files, so any static web server can host one::

    <root>/index.json                      the catalogue of modules and versions
    <root>/<registry_path>/<version>.tar.gz
    <root>/<registry_path>/<version>.json  the version's metadata

``index.json``::

    {"schema": "hubcli.registry/1",
     "modules": {"<registry_path>": {"latest": "<v>",
                                     "versions": {"<v>": {"archive": "<registry_path>/<v>.tar.gz",
                                                          "sha256": "...", "size": 123,
                                                          "metadata": {...}}}}}}

A ``registry_path`` is what :func:`hubcli.hub.handles.parse_handle` returns for a
hub handle (``google/imagenet/mobilenet_v2_100_224/feature_vector`` for a
tfhub.dev URL, ``<owner>/<model>/<framework>/<variation>`` for Kaggle).
Versions are immutable: publishing one that exists is refused. ``latest`` is
the highest version (numeric parts compare as numbers), not the newest upload.

Example:
    >>> import gzip, tempfile
    >>> work = Path(tempfile.mkdtemp())
    >>> _ = (work / "flowers.tar.gz").write_bytes(gzip.compress(b"a module archive"))
    >>> published = add_version(work / "hub", "acme/flowers", "1", work / "flowers.tar.gz", {"task": "image-classification"})
    >>> resolve_latest(work / "hub", "acme/flowers"), published.size
    ('1', 36)
    >>> archive_location("https://models.example/hub", "acme/flowers", "1")
    'https://models.example/hub/acme/flowers/1.tar.gz'
"""

from __future__ import annotations

import difflib
import fcntl
import hashlib
import json
import os
import re
import time
import urllib.parse
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hubcli.errors import HubcliError, IntegrityError, NetworkError, NotFoundError, UsageError
from hubcli.fsio import atomic_write, write_text_atomic

if TYPE_CHECKING:
    from hubcli.hub.http_client import HttpOptions

SCHEMA = "hubcli.registry/1"
INDEX_NAME = "index.json"
LOCK_NAME = ".index.lock"
#: How long a publisher waits for another one to finish updating the index.
LOCK_TIMEOUT_S = 60.0

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class RegistryVersion:
    """One published version: where its archive is and what it must hash to."""

    registry_path: str
    version: str
    archive: str  # URL or local path
    sha256: str
    size: int
    metadata: dict[str, Any] = field(default_factory=dict)


def is_remote(root: str | os.PathLike) -> bool:
    """Whether ``root`` is an http(s) URL rather than a directory."""
    return str(root).lower().startswith(("http://", "https://"))


def read_index(root: str | os.PathLike, offline: bool = False, options: HttpOptions | None = None) -> dict[str, Any]:
    """The registry's ``index.json``, validated.

    Raises:
        NotFoundError: no index at ``root``.
        NetworkError: a remote index could not be fetched (or ``offline`` forbids it).
        IntegrityError: the index is not a hubcli registry index.
    """
    if is_remote(root):
        location = _join_url(str(root), INDEX_NAME)
        text = _http_get_text(location, offline, options)
    else:
        location = str(_local_root(root) / INDEX_NAME)
        try:
            text = Path(location).read_text("utf-8")
        except FileNotFoundError:
            raise NotFoundError(f"{root} is not a module registry (no {INDEX_NAME})") from None
        except (OSError, UnicodeDecodeError) as err:
            raise HubcliError(f"cannot read {location}: {err}") from None
    return _parse_index(text, location)


def archive_location(root: str | os.PathLike, registry_path: str, version: str) -> str:
    """URL or local path of a version's ``.tar.gz`` (whether or not it exists)."""
    return _location(root, registry_path, version, ".tar.gz")


def metadata_location(root: str | os.PathLike, registry_path: str, version: str) -> str:
    """URL or local path of a version's metadata ``.json``."""
    return _location(root, registry_path, version, ".json")


def resolve_latest(
    root: str | os.PathLike, registry_path: str, *, offline: bool = False, options: HttpOptions | None = None
) -> str:
    """The ``latest`` version of ``registry_path`` according to the index."""
    return find_version(root, registry_path, None, offline=offline, options=options).version


def find_version(
    root: str | os.PathLike,
    registry_path: str,
    version: str | None = None,
    *,
    offline: bool = False,
    options: HttpOptions | None = None,
) -> RegistryVersion:
    """Look up one version (``None``: the latest) in the index, with its archive location and sha256.

    Raises:
        NotFoundError: the module or version is not published there (naming the closest ones).
    """
    modules = read_index(root, offline=offline, options=options)["modules"]
    module = modules.get(registry_path)
    if module is None:
        close = difflib.get_close_matches(registry_path, list(modules), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise NotFoundError(f"registry {root} has no module '{registry_path}'{hint}")
    chosen = module["latest"] if version is None else str(version)
    entry = module["versions"].get(chosen)
    if entry is None:
        available = ", ".join(sorted_versions(module["versions"]))
        raise NotFoundError(f"registry {root} has no version {chosen} of '{registry_path}' (published: {available})")
    return RegistryVersion(
        registry_path=registry_path,
        version=chosen,
        archive=archive_location(root, registry_path, chosen),
        sha256=entry["sha256"],
        size=entry["size"],
        metadata=entry.get("metadata", {}),
    )


def add_version(
    root_dir: str | os.PathLike,
    registry_path: str,
    version: str,
    archive_path: str | os.PathLike,
    metadata: dict[str, Any],
) -> RegistryVersion:
    """Publish ``archive_path`` (a ``.tar.gz``) as ``registry_path`` version ``version``.

    Atomic and safe with concurrent publishers: under the registry's lock file,
    the archive and metadata are written to temp files and renamed into place,
    then the index is rewritten the same way. A crash leaves at most an
    unreferenced archive, which a later publish of that version replaces.

    Raises:
        UsageError: the version exists (versions are immutable), the names are
            unsafe, the root is a URL, or the archive is not gzip-compressed.
    """
    if is_remote(root_dir):
        raise UsageError(f"cannot publish to {root_dir}: publish to a directory, then serve that directory")
    root = _local_root(root_dir)
    _check_names(registry_path, version)
    archive_path = Path(archive_path)
    _check_gzip(archive_path)
    try:
        json.dumps(metadata)
    except (TypeError, ValueError) as err:
        raise UsageError(f"metadata for {registry_path} {version} is not JSON-serialisable: {err}") from None

    root.mkdir(parents=True, exist_ok=True)
    with _index_lock(root):
        index_file = root / INDEX_NAME
        index = _parse_index(index_file.read_text("utf-8"), str(index_file)) if index_file.exists() else _empty_index()
        module = index["modules"].setdefault(registry_path, {"latest": version, "versions": {}})
        if version in module["versions"]:
            raise UsageError(
                f"{registry_path} version {version} is already published in {root}; "
                "versions are immutable, publish a new version"
            )

        target = Path(archive_location(root, registry_path, version))
        target.parent.mkdir(parents=True, exist_ok=True)
        sha256, size = _copy_hashed(archive_path, target)
        document = {**metadata, "registry_path": registry_path, "version": version, "sha256": sha256, "size": size}
        write_text_atomic(Path(metadata_location(root, registry_path, version)), _to_json(document))

        module["versions"][version] = {
            "archive": f"{registry_path}/{version}.tar.gz",
            "sha256": sha256,
            "size": size,
            "metadata": metadata,
        }
        module["latest"] = sorted_versions(module["versions"])[-1]
        write_text_atomic(index_file, _to_json(index))
    return RegistryVersion(registry_path, version, str(target), sha256, size, dict(metadata))


def sorted_versions(versions) -> list[str]:
    """Versions oldest first: ``["1", "2", "10"]``, ``["1.2", "1.10"]``."""
    return sorted(versions, key=_version_key)


# --- helpers -----------------------------------------------------------------


def _version_key(version: str) -> tuple:
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"[.\-_]", version))


def _check_names(registry_path: str, version: str) -> None:
    segments = registry_path.split("/")
    if not all(_SAFE_NAME.match(s) for s in segments):
        raise UsageError(
            f"bad registry path '{registry_path}': use '/'-separated names of letters, digits, '.', '_' and '-'"
        )
    if not _SAFE_NAME.match(version):
        raise UsageError(f"bad version '{version}': use letters, digits, '.', '_' and '-'")


def _location(root: str | os.PathLike, registry_path: str, version: str, suffix: str) -> str:
    _check_names(registry_path, version)
    relative = f"{registry_path}/{version}{suffix}"
    if is_remote(root):
        return _join_url(str(root), urllib.parse.quote(relative))
    return str(_local_root(root) / relative)


def _join_url(base: str, relative: str) -> str:
    return base.rstrip("/") + "/" + relative


def _local_root(root: str | os.PathLike) -> Path:
    """A registry directory as an absolute path, so the archive paths it yields survive a ``cd``."""
    text = str(root)
    if text.startswith("file://"):
        text = urllib.parse.unquote(urllib.parse.urlsplit(text).path)
    return Path(text).expanduser().absolute()


def _http_get_text(url: str, offline: bool, options: HttpOptions | None) -> str:
    """A remote index, fetched under the same retry policy as module archives."""
    if offline:
        raise NetworkError(f"offline mode: cannot read the registry index {url}")
    from hubcli.hub import http_client

    try:
        return http_client.fetch_text(url, options)
    except NotFoundError:
        raise NotFoundError(f"{url} not found: the URL is not a module registry") from None
    except NetworkError as err:
        raise NetworkError(f"cannot read the registry index: {err}") from None


def _empty_index() -> dict[str, Any]:
    return {"schema": SCHEMA, "modules": {}}


def _parse_index(text: str, location: str) -> dict[str, Any]:
    try:
        index = json.loads(text)
    except ValueError:
        raise IntegrityError(f"{location} is not valid JSON") from None
    problem = _index_problem(index)
    if problem:
        raise IntegrityError(f"{location} is not a hubcli registry index: {problem}")
    return index


def _index_problem(index: Any) -> str | None:
    if not isinstance(index, dict) or index.get("schema") != SCHEMA:
        return f"expected schema {SCHEMA}"
    if not isinstance(index.get("modules"), dict):
        return "no 'modules' table"
    for name, module in index["modules"].items():
        versions = module.get("versions") if isinstance(module, dict) else None
        if not isinstance(versions, dict) or module.get("latest") not in versions:
            return f"module '{name}' has no versions or a 'latest' that is not one of them"
        for version, entry in versions.items():
            if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str) or not isinstance(entry.get("size"), int):
                return f"'{name}' version {version} lacks sha256 or size"
    return None


@contextmanager
def _index_lock(root: Path):
    """Exclusive flock on ``<root>/.index.lock``; the kernel drops it if the holder dies."""
    path = root / LOCK_NAME
    with open(path, "a") as lock_file:
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        while True:
            try:
                fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise HubcliError(
                        f"registry {root} is locked by another publisher (waited {LOCK_TIMEOUT_S:.0f} s)"
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)


def _check_gzip(archive_path: Path) -> None:
    try:
        with archive_path.open("rb") as handle:
            magic = handle.read(2)
    except FileNotFoundError:
        raise NotFoundError(f"no such archive: {archive_path}") from None
    except IsADirectoryError:
        raise UsageError(f"{archive_path} is a directory; publish a .tar.gz archive") from None
    if magic != _GZIP_MAGIC:
        raise UsageError(f"{archive_path} is not a gzip-compressed archive (.tar.gz)")


def _copy_hashed(source: Path, target: Path) -> tuple[str, int]:
    """Copy via a synced temp file in the target's directory, then rename; returns (sha256, size)."""
    digest = hashlib.sha256()
    size = 0
    with atomic_write(target, "wb") as writer, source.open("rb") as reader:
        for chunk in iter(lambda: reader.read(1 << 20), b""):
            digest.update(chunk)
            size += len(chunk)
            writer.write(chunk)
    return digest.hexdigest(), size


def _to_json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"
