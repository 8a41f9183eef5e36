"""``pull``: put a module in the shared cache (or find it there) and return its path.

The whole story of one pull, and where each step lives:

1. parse the handle (:mod:`hubcli.hub.handles`); a Kaggle handle without a version
   asks Kaggle (or the mirror) for the latest;
2. serve an intact cache entry at once, without any request (:mod:`hubcli.hub.cache`;
   a ``stat``-level check, so a file a temp cleaner deleted or a rewritten byte
   triggers a repair);
3. otherwise take the entry's lock (:mod:`hubcli.hub.filelock`), look again (another
   process may have just installed it), then download into a resumable ``.part``
   (:mod:`hubcli.hub.download`), from the mirror (:mod:`hubcli.hub.registry`) when one is set;
4. check the archive's sha256 against ``--sha256``, ``hubcli.lock`` and the
   mirror's index (:mod:`hubcli.hub.lockfile`, :mod:`hubcli.hub.registry`);
5. extract it safely into a temp dir (:mod:`hubcli.hub.archive`) and rename it into
   place with its manifest.

Offline mode never touches the network: it serves the cache (entries that
tensorflow_hub installed included) or fails with one line naming the handle.

Example:
    >>> result = pull("https://tfhub.dev/google/nnlm-en-dim50/2")  # doctest: +SKIP
    >>> result.path, result.sha256, result.from_cache  # doctest: +SKIP
    (PosixPath('/home/me/.cache/hubcli/modules/6c8a...'), '0f0e...', False)
    >>> resolve_module_path("./my_module")  # a local directory is used in place  # doctest: +SKIP
    PosixPath('/work/my_module')
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
import types
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hubcli import console
from hubcli.errors import (
    HubcliError,
    IntegrityError,
    InvalidModuleError,
    NetworkError,
    UnsafeContentError,
    UsageError,
)
from hubcli.fsio import disk_full_reason, sha256_file
from hubcli.hub import cache, partfile
from hubcli.hub.tflite import entry_model_file
from hubcli.savedmodel.formats import is_module_dir, module_format

if TYPE_CHECKING:
    from hubcli.config import Settings
    from hubcli.hub.handles import Handle
    from hubcli.hub.http_client import HttpOptions


@dataclass(frozen=True)
class PullResult:
    """Where a pulled module is, and what it is.

    Attributes:
        handle: the handle as given.
        resolved_url: where the archive really came from (after redirects; a
            local path for local archives and directory mirrors), or None for a
            local directory and for cache hits on entries tensorflow_hub installed.
        path: the module directory, ready for ``hub.load`` or :func:`hubcli.inspect_module`.
        sha256: sha256 of the archive (None for local directories and tensorflow_hub entries).
        size: archive size in bytes (same caveat).
        from_cache: True when nothing was downloaded.
    """

    handle: str
    resolved_url: str | None
    path: Path
    sha256: str | None
    size: int | None
    from_cache: bool

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "path": str(self.path)}


@dataclass(frozen=True)
class _Source:
    """Where to fetch an archive from, the sha256 that source itself vouches for, and the HTTP policy."""

    location: str
    kind: str  # "http", "gcs" or "file"
    expected_sha256: str | None = None
    options: HttpOptions | None = None


def pull(
    handle: str,
    settings: Settings | None = None,
    sha256: str | None = None,
    locked: bool = False,
    lockfile: str | Path | None = None,
    force: bool = False,
    progress: bool = True,
    update_lock: bool = False,
    tflite: bool = False,
) -> PullResult:
    """Make ``handle`` available in the cache and return where it is.

    Args:
        handle: anything :func:`hubcli.hub.handles.parse_handle` accepts.
        settings: cache dir, offline and mirror modes, trusted hosts (default: ``Settings.load()``).
        sha256: the archive must hash to this (hex).
        locked: the handle must be in the lock file, and its archive must match it.
        lockfile: the lock file (default ``./hubcli.lock``).
        force: download and reinstall even if an intact entry is cached.
        progress: draw a progress bar (only on a TTY; see :mod:`hubcli.console`).
        update_lock: record the archive's sha256 in the lock file.
        tflite: fetch the model's ``.tflite`` file (``?lite-format=tflite``) instead of its
            SavedModel; the result's ``path`` is then that file.

    Raises:
        NotFoundError, NetworkError, IntegrityError, UnsafeContentError,
        InvalidModuleError, UsageError: each with a one-line message.
    """
    from hubcli.config import Settings
    from hubcli.hub.handles import parse_handle
    from hubcli.hub.http_client import HttpOptions

    settings = settings or Settings.load()
    options = HttpOptions.from_env(settings)  # One deadline for the whole pull.
    if locked and update_lock:
        raise UsageError("--locked checks the lock file and --update-lock rewrites it; use one of them")
    parsed = parse_handle(handle, settings)
    if tflite and parsed.kind != "local_dir":
        parsed = parsed.for_tflite()
    from hubcli.hub import local_modules

    if not tflite and local_modules.takes_over(parsed, settings):  # Catalog names may fall back on a local conversion.
        return local_modules.pull_catalog_name(parsed, settings, sha256=sha256, locked=locked, lockfile=lockfile,
                                               force=force, progress=progress, update_lock=update_lock)
    pin = _pinned_sha256(parsed, sha256, locked, lockfile)

    if parsed.kind == "local_dir":
        if pin is not None or update_lock:
            raise UsageError(f"{handle} is a local directory, used in place: it has no archive sha256 to pin or lock")
        _require_module_dir(parsed.path)
        return PullResult(handle, None, parsed.path, None, None, from_cache=True)

    if settings.cache_dir.exists() and not settings.cache_dir.is_dir():
        # Otherwise every entry looks damaged, and the install fails with a bare "File exists".
        raise UsageError(f"cache directory {settings.cache_dir} is a file, not a directory")
    parsed = _pin_version(parsed, settings, options)
    paths = cache.EntryPaths(settings.cache_dir, parsed.cache_dir_name)
    entry = None if force else _usable_entry(paths, pin, settings.offline)
    if entry is None:
        source = _source(parsed, settings, options)
        if settings.offline and source.kind != "file":
            if force:
                raise NetworkError(f"offline mode: --force would download {parsed.raw} again")
            raise NetworkError(
                f"offline mode: {parsed.raw} is not in the cache ({settings.cache_dir}); "
                "pull it online first, or point --cache-dir at a cache that has it"
            )
        try:
            entry = _install(parsed, source, paths, pin, settings, force, progress)
        except OSError as err:  # Disk full, read-only or foreign-owned cache: one line, not a traceback.
            reason = disk_full_reason(err) or err.strerror or err
            raise HubcliError(f"cannot install {parsed.raw} into {settings.cache_dir}: {reason}") from None
        from_cache = False
    else:
        cache.touch(entry)
        from_cache = True

    if update_lock:
        _record_in_lockfile(lockfile, parsed.cache_key, entry.sha256)
    resolved = entry.resolved_url if entry.origin == "hubcli" else None
    return PullResult(handle, resolved, entry_model_file(entry.path, entry.metadata), entry.sha256, entry.size, from_cache)


def resolve_module_path(handle_or_path: str | Path, settings: Settings | None = None) -> Path:
    """The local directory of a module: a local directory as is, anything else pulled into the cache.

    Example:
        >>> resolve_module_path("mobilenet_v2")  # doctest: +SKIP
        PosixPath('/home/me/.cache/hubcli/modules/...')
    """
    return pull(str(handle_or_path), settings=settings).path


# --- steps -----------------------------------------------------------------------


def _pinned_sha256(parsed: Handle, sha256: str | None, locked: bool, lockfile) -> str | None:
    """The sha256 the archive must have: ``--sha256`` and/or the lock file's entry (which must agree)."""
    if sha256 is not None:
        sha256 = sha256.strip().lower()
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise UsageError(f"--sha256 {sha256!r} is not a 64-digit hex sha256")
    if not locked:
        return sha256
    from hubcli.hub.lockfile import Lockfile

    lock = Lockfile.load(lockfile, must_exist=True)
    key = parsed.cache_key or parsed.raw
    recorded = lock.get(key)
    if recorded is None:
        raise IntegrityError(f"--locked: {lock.path} has no entry for {key}; add it with `hubcli pull --update-lock`")
    if sha256 is not None and sha256 != recorded:
        raise IntegrityError(f"--sha256 {sha256} disagrees with {lock.path}, which pins {key} to {recorded}")
    return recorded


def _pin_version(parsed: Handle, settings: Settings, options: HttpOptions) -> Handle:
    """A Kaggle handle without a version becomes its latest version (mirror index, Kaggle, or offline: the cache)."""
    if not parsed.needs_version_lookup:
        return parsed
    from hubcli.hub import http_client, registry

    mirror_usable = settings.mirror and not (settings.offline and registry.is_remote(settings.mirror))
    if mirror_usable:
        latest = registry.resolve_latest(settings.mirror, parsed.registry_path, offline=settings.offline, options=options)
        return parsed.with_version(latest)
    if settings.offline:
        return _latest_cached_version(parsed, settings)
    return parsed.with_version(kaggle_version_number(http_client.fetch_json(parsed.url, options), parsed.url))


def kaggle_version_number(answer: object, url: str) -> int:
    """The ``versionNumber`` of Kaggle's model-instance answer; anything else is the server's fault (exit 4).

    Example:
        >>> kaggle_version_number({"versionNumber": 3}, "https://www.kaggle.com/api/v1/models/a/b/tensorflow2/c/get")
        3
        >>> kaggle_version_number({"versionNumber": "latest"}, "https://kaggle.example/get")
        Traceback (most recent call last):
        ...
        hubcli.errors.NetworkError: https://kaggle.example/get: the server's answer names no version number: {"versionNumber": "latest"}
    """
    version = answer.get("versionNumber") if isinstance(answer, dict) else None
    if isinstance(version, str) and version.isdigit():
        version = int(version)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        import json

        shown = json.dumps(answer)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        raise NetworkError(f"{url}: the server's answer names no version number: {shown}")
    return version


def _source(parsed: Handle, settings: Settings, options: HttpOptions) -> _Source:
    """Where a cache miss is fetched from: the mirror, a local file, GCS, or the handle's URL.

    Offline, a remote source is named but never contacted (the caller refuses it).
    """
    from hubcli.hub import registry

    if settings.mirror and parsed.registry_path:
        remote = registry.is_remote(settings.mirror)
        if settings.offline and remote:
            return _Source(settings.mirror, "http")
        found = registry.find_version(
            settings.mirror, parsed.registry_path, parsed.version, offline=settings.offline, options=options
        )
        return _Source(found.archive, "http" if remote else "file", found.sha256, options)
    if parsed.kind == "local_archive":
        return _Source(str(parsed.path), "file")
    if parsed.kind == "gcs":
        return _Source(parsed.url, "gcs")
    return _Source(parsed.url, "http", options=options)


def _latest_cached_version(parsed: Handle, settings: Settings) -> Handle:
    """Offline, "latest" means the highest version of this model in the cache."""
    prefix = parsed.with_version(1).cache_key.rsplit("/", 1)[0] + "/"
    versions = []
    for entry in cache.list_entries(settings.cache_dir):
        key = entry.metadata.get("cache_key") or entry.handle or ""
        if key.startswith(prefix) and key[len(prefix) :].isdigit():
            versions.append(int(key[len(prefix) :]))
    if not versions:
        raise NetworkError(f"offline mode: no version of {parsed.raw} is in the cache ({settings.cache_dir})")
    return parsed.with_version(max(versions))


def _usable_entry(
    paths: cache.EntryPaths, pin: str | None, offline: bool, report_damage: bool = True
) -> cache.CacheEntry | None:
    """The cached entry if intact and matching the pin; None when it must be (re)installed."""
    entry = cache.read_entry(paths.cache_dir, paths.name)
    if entry is None:
        return None
    problems = cache.quick_problems(entry)
    if problems and offline:
        raise NetworkError(
            f"offline mode: the cached copy of {entry.handle or paths.name} is damaged ({problems[0]}); pull it again online"
        )
    if problems:
        if report_damage:
            console.warn(f"cache entry {paths.module_dir} is damaged ({problems[0]}); reinstalling")
        return None
    if pin is None:
        return entry
    if entry.sha256 is None:
        if offline:
            raise IntegrityError(
                f"{entry.handle or paths.name} was cached by tensorflow_hub without a sha256; "
                "it cannot be checked against the pin offline"
            )
        return None  # Download once to learn (and record) its sha256.
    if entry.sha256 != pin:
        raise IntegrityError(
            f"cached {entry.handle} has sha256 {entry.sha256}, but {pin} is pinned; "
            "`hubcli pull --force` downloads it again"
        )
    return entry


def _install(parsed, source: _Source, paths, pin, settings, force: bool, progress: bool) -> cache.CacheEntry:
    from hubcli.hub.filelock import FileLock

    def waiting(holder: str) -> None:
        console.info(f"waiting for {holder} to finish installing {parsed.raw}")

    with FileLock(paths.lock, description=parsed.raw, on_wait=waiting):
        if not force:
            # Another process may have installed it while we waited for the lock (damage was reported before).
            entry = _usable_entry(paths, pin, settings.offline, report_damage=False)
            if entry is not None:
                return entry
        expected = {name: value for name, value in (("pinned", pin), ("mirror index", source.expected_sha256)) if value}
        if len(set(expected.values())) > 1:
            raise IntegrityError(f"{parsed.raw}: pinned sha256 {pin} differs from the mirror's {source.expected_sha256}")
        try:
            return _fetch_and_install(parsed, source, paths, expected, settings, progress)
        except OSError as err:
            if disk_full_reason(err):
                # Kept for a resume, a partial (or complete) archive would only keep the disk full.
                partfile.discard(paths.part)
            raise


def _fetch_and_install(parsed, source: _Source, paths, expected: dict[str, str], settings, progress: bool):
    while True:
        archive, resolved_url, digest, size, resumed = _fetch(parsed, source, paths, progress)
        try:
            _check_digest(parsed, digest, expected)
            _warn_untrusted(parsed, resolved_url, settings)
            return _extract_and_install(parsed, source, paths, archive, resolved_url, digest, size)
        except (IntegrityError, InvalidModuleError, UnsafeContentError):
            if archive == paths.part:
                partfile.discard(paths.part)  # Bad bytes must never be resumed.
            if not resumed:
                raise
            # The kept prefix may belong to another build of the file: start from zero, once.
            console.info(f"{parsed.raw}: resumed download is not valid; downloading it from scratch")


def _fetch(parsed, source: _Source, paths, progress: bool) -> tuple[Path, str, str, int, bool]:
    """Get the archive: (file, resolved URL, sha256, size, whether a kept .part was resumed)."""
    from hubcli.hub import download

    if source.kind == "file":
        archive = Path(source.location)
        if not archive.is_file():
            raise InvalidModuleError(f"{source.location}: no such archive")
        return archive, str(archive), sha256_file(archive), archive.stat().st_size, False
    from hubcli.hub.handles import gcs_object_url

    location = gcs_object_url(source.location) if source.kind == "gcs" else source.location
    result = download.download(location, paths.part, source.options, progress=progress, description=_label(parsed), name=parsed.raw)
    return paths.part, result.resolved_url, result.sha256, result.size, result.resumed_from > 0


def _label(parsed) -> str:
    """A short progress-bar label: the alias, or the handle's last two path segments."""
    return parsed.alias or "/".join(parsed.raw.rstrip("/").split("/")[-2:])


def _check_digest(parsed, digest: str, expected: dict[str, str]) -> None:
    for name, value in expected.items():
        if digest != value:
            raise IntegrityError(f"{parsed.raw}: archive sha256 is {digest}, but the {name} sha256 is {value}")


def _warn_untrusted(parsed, resolved_url: str, settings) -> None:
    from hubcli.hub.handles import is_trusted_host

    urls = [u for u in (parsed.url, resolved_url) if u and "://" in u]
    hosts = sorted({urllib.parse.urlsplit(u).netloc for u in urls if not is_trusted_host(u, settings)})
    if hosts:
        console.warn(
            f"{parsed.raw} comes from {', '.join(hosts)}, which is not a trusted host; modules are runnable code "
            "(add the host to trusted_hosts in the config file if you trust it)"
        )


def _extract_and_install(parsed, source: _Source, paths, archive: Path, resolved_url, digest, size):
    from hubcli.hub.archive import extract_module_archive, max_extract_bytes
    from hubcli.hub.content import sniff
    from hubcli.hub.tflite import model_file_name, place_tflite, root_tflite_name

    temp = paths.scratch_dir("tmp")
    # Errors name what the user pulled, not the cache's <sha1>.part file.
    if sniff(archive) == "tflite":
        name = model_file_name(resolved_url if archive == paths.part else str(archive))
        manifest = place_tflite(archive, temp, name=name, max_bytes=max_extract_bytes(), label=parsed.raw)
    else:
        manifest = extract_module_archive(archive, temp, label=parsed.raw)
    record = {
        "handle": parsed.raw,
        "cache_key": parsed.cache_key,
        "kind": parsed.kind,
        "source_url": source.location,
        "resolved_url": resolved_url,
        "sha256": digest,
        "size": size,
    }
    model_file = root_tflite_name(manifest)
    if model_file is not None:
        record.update(artifact="tflite", model_file=model_file)
    elif parsed.artifact == "tflite":
        shutil.rmtree(temp, ignore_errors=True)
        raise InvalidModuleError(f"{parsed.raw}: a TFLite model was asked for, but the archive holds no .tflite file at its root")
    try:
        entry = cache.install_entry(paths, temp, manifest, record)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    if archive == paths.part:
        partfile.discard(archive)
    return entry


def _record_in_lockfile(lockfile, key: str, digest: str | None) -> None:
    from hubcli.hub.filelock import FileLock
    from hubcli.hub.lockfile import Lockfile

    if digest is None:
        raise IntegrityError(f"{key} was cached by tensorflow_hub without a sha256; `hubcli pull --force --update-lock` records one")
    path = Path(lockfile) if lockfile else Lockfile.load().path
    # Concurrent `pull --update-lock` runs must not lose each other's entries.
    with FileLock(path.with_name(path.name + ".writing"), description=str(path), timeout=60):
        lock = Lockfile.load(path)
        lock.set(key, digest)
        lock.save()


def _require_module_dir(path: Path) -> None:
    if not is_module_dir(path):
        raise InvalidModuleError(f"{path} is not a module directory: no saved_model.pb or saved_model.pbtxt")


class _CallableModule(types.ModuleType):
    """Lets ``hubcli.hub.pull(...)`` work after ``import hubcli.hub.pull``.

    Importing the submodule rebinds the package attribute ``hubcli.hub.pull`` from
    the function to this module; calling the module calls the function, so
    both spellings keep working whatever was imported first.
    """

    def __call__(self, *args, **kwargs) -> PullResult:
        return pull(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule


def local_module_path(text: str | Path) -> Path | None:
    """The module ``text`` names on this machine, read in place rather than pulled; else None.

    A directory (in any format ``inspect`` reads, TF1 Hub format included) or a ``.keras`` file
    (or a ``.tflite`` model) is used as it is; anything else is a handle for :func:`resolve_module_path`.

    Example:
        >>> local_module_path("mobilenet_v2") is None
        True
        >>> local_module_path("~/models/encoder")  # doctest: +SKIP
        PosixPath('/home/me/models/encoder')
    """
    local = Path(text).expanduser()
    # Any directory is inspected in place, so a broken one is told what it lacks.
    if local.is_dir() or module_format(local) is not None or (local.is_file() and local.suffix == ".tflite"):
        return local
    return None
