"""The module catalog: short names for well-known hub modules, and how to find them.

The built-in entries (``hubcli/data/catalog.json``) name real tfhub.dev
handles with their task, expected input and output dimension. Users add or
override names in the config file (see :mod:`hubcli.config`)::

    [aliases.my-encoder]
    handle = "https://models.internal.example/hub/encoder/3.tar.gz"
    task = "text-embedding"
    input = "string"
    output_dim = 512

Names match case-insensitively, and ``-`` and ``_`` are interchangeable, so
``efficientnet-lite0`` finds ``efficientnet_lite0``.

Example:
    >>> from hubcli.config import Settings
    >>> entry = find("mobilenet_v2", Settings.load())
    >>> entry.image_size, entry.output_dim
    ((224, 224), 1280)
    >>> [e.name for e in search("swivel", Settings.load())]
    ['gnews-swivel-20dim']
    >>> suggest("mobilnet_v2", Settings.load())[0]
    'mobilenet_v2'
"""

from __future__ import annotations

import difflib
import json
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hubcli.config import AliasTable, Settings
    from hubcli.hub.http_client import HttpOptions

BUILTIN_SOURCE = "builtin"
CONFIG_SOURCE = "config"


@dataclass(frozen=True)
class CatalogEntry:
    """One discoverable module.

    Attributes:
        name: the alias users type (for a registry listing, the registry path).
        handle: what the alias resolves to (any form :func:`hubcli.hub.handles.parse_handle` accepts).
        task: ``"image-feature-vector"``, ``"text-embedding"``... or ``None`` if unknown.
        input: ``"image"`` or ``"string"``, or ``None`` if unknown.
        image_size: ``(height, width)`` the module expects, for image modules.
        output_dim: length of the output vector, if known.
        description: one line for people.
        source: ``"builtin"``, ``"config"``, or the registry the entry was read from.
        versions: published versions, oldest first (registry listings only).
    """

    name: str
    handle: str
    task: str | None = None
    input: str | None = None
    image_size: tuple[int, int] | None = None
    output_dim: int | None = None
    description: str = ""
    source: str = BUILTIN_SOURCE
    versions: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        document = asdict(self)
        document["image_size"] = list(self.image_size) if self.image_size else None
        document["versions"] = list(self.versions)
        return document


def entries(settings: Settings, task: str | None = None) -> list[CatalogEntry]:
    """Built-in entries, then the user's aliases (a user alias replaces a built-in of the same name).

    ``task`` keeps entries whose task is ``task`` or starts with ``task-`` (so ``"image"``
    matches ``"image-feature-vector"``).
    """
    by_key = {_key(e.name): e for e in _builtin_entries()}
    for name, table in settings.user_aliases.items():
        by_key[_key(name)] = _entry_from_config(name, table)
    return filter_task(list(by_key.values()), task)


def filter_task(items: list[CatalogEntry], task: str | None) -> list[CatalogEntry]:
    if not task:
        return items
    wanted = task.lower()
    return [e for e in items if e.task and (e.task.lower() == wanted or e.task.lower().startswith(wanted + "-"))]


def find(name: str, settings: Settings) -> CatalogEntry | None:
    """The entry called ``name`` (case-insensitive, ``-`` == ``_``), or ``None``."""
    wanted = _key(name)
    return next((e for e in entries(settings) if _key(e.name) == wanted), None)


def search(text: str, settings: Settings, items: list[CatalogEntry] | None = None) -> list[CatalogEntry]:
    """Entries whose name, handle, task, input or description contain every word of ``text``.

    Searches the catalog, or ``items`` (such as a registry listing) when given.
    """
    words = [_fold(word) for word in text.split()]
    pool = entries(settings) if items is None else items
    return [e for e in pool if all(word in _haystack(e) for word in words)]


def suggest(name: str, settings: Settings, limit: int = 3) -> list[str]:
    """The catalog names closest to a misspelled ``name``, best first."""
    names = {_key(e.name): e.name for e in entries(settings)}
    close = difflib.get_close_matches(_key(name), list(names), n=limit, cutoff=0.6)
    return [names[key] for key in close]


def registry_entries(root: str, offline: bool = False, options: HttpOptions | None = None) -> list[CatalogEntry]:
    """One entry per module of a registry (directory or http(s) URL), handle = its latest archive.

    Task, input, image size, output dim and description come from the latest
    version's metadata, where the publisher recorded them.
    """
    from hubcli.hub import registry

    found = []
    for registry_path, module in sorted(registry.read_index(root, offline=offline, options=options)["modules"].items()):
        latest = module["latest"]
        metadata = module["versions"][latest].get("metadata", {})
        found.append(
            CatalogEntry(
                name=registry_path,
                handle=registry.archive_location(root, registry_path, latest),
                task=metadata.get("task"),
                input=metadata.get("input"),
                image_size=_lenient_image_size(metadata.get("image_size")),
                output_dim=metadata.get("output_dim") if isinstance(metadata.get("output_dim"), int) else None,
                description=str(metadata.get("description", "")),
                source=str(root),
                versions=tuple(registry.sorted_versions(module["versions"])),
            )
        )
    return found


@lru_cache(maxsize=1)
def _builtin_entries() -> tuple[CatalogEntry, ...]:
    document = json.loads(resources.files("hubcli").joinpath("data/catalog.json").read_text("utf-8"))
    return tuple(
        CatalogEntry(**{**item, "image_size": _image_size(item["image_size"]), "source": BUILTIN_SOURCE})
        for item in document["entries"]
    )


def _entry_from_config(name: str, table: AliasTable) -> CatalogEntry:
    """A user alias; :class:`~hubcli.config.Settings` checked every field when it read the file."""
    return CatalogEntry(
        name=name,
        handle=table["handle"],
        task=table.get("task"),
        input=table.get("input"),
        image_size=_image_size(table.get("image_size")),
        output_dim=table.get("output_dim"),
        description=table.get("description", ""),
        source=CONFIG_SOURCE,
    )


def _image_size(value: Any) -> tuple[int, int] | None:
    """``224`` or ``[224, 224]`` -> ``(224, 224)``."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value, value]
    height, width = value
    if not all(isinstance(v, int) and v > 0 for v in (height, width)):
        raise ValueError(f"bad image size {value!r}")
    return (height, width)


def _lenient_image_size(value: Any) -> tuple[int, int] | None:
    # Registry metadata is written by other tools; a malformed size is just unknown.
    try:
        return _image_size(value)
    except (TypeError, ValueError):
        return None


def _key(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def _fold(text: str) -> str:
    return text.lower().replace("-", "_")


def _haystack(entry: CatalogEntry) -> str:
    return _fold(" ".join(str(part) for part in (entry.name, entry.handle, entry.task, entry.input, entry.description)))


# --- what `list` and `search` show ---------------------------------------------------

CATALOG_LISTING = "catalog"


@dataclass(frozen=True)
class Listing:
    """What ``list`` or ``search`` found in the catalog or a registry, and hints for an empty result.

    Attributes:
        source: the registry that was read, or ``"catalog"``.
        entries: the entries that match.
        tasks: every task the source knows (what a task filter can match), sorted.
        suggestions: catalog names close to a search that matched nothing.
    """

    source: str
    entries: tuple[CatalogEntry, ...]
    tasks: tuple[str, ...] = ()
    suggestions: tuple[str, ...] = ()
    #: catalog name -> what of it is on this machine (hub module cached, local conversion); catalog listings only.
    local: dict[str, dict[str, Any]] | None = None


def list_modules(settings: Settings, *, task: str | None = None, registry: str | None = None) -> Listing:
    """The catalog's entries (built-ins and the user's aliases), or a registry's, with ``task``.

    Example:
        >>> from hubcli.config import Settings
        >>> listing = list_modules(Settings.load(), task="image-clasification")
        >>> listing.entries, "image-feature-vector" in listing.tasks
        ((), True)
    """
    from hubcli.hub import local_modules

    every = _source_entries(settings, registry)
    tasks = tuple(sorted({entry.task for entry in every if entry.task}))
    found = tuple(filter_task(every, task))
    local = None if registry else {entry.name: local_modules.availability(entry.name, entry.handle, settings) for entry in found}
    return Listing(registry or CATALOG_LISTING, found, tasks=tasks, local=local)


def search_modules(text: str, settings: Settings, *, registry: str | None = None) -> Listing:
    """Catalog (or registry) entries matching every word of ``text``; catalog names close to it if none.

    Example:
        >>> from hubcli.config import Settings
        >>> search_modules("mobilnet_v2", Settings.load()).suggestions[0]
        'mobilenet_v2'
    """
    found = tuple(search(text, settings, _source_entries(settings, registry)))
    close = () if found or registry else tuple(suggest(text, settings))
    return Listing(registry or CATALOG_LISTING, found, suggestions=close)


def _source_entries(settings: Settings, registry: str | None) -> list[CatalogEntry]:
    # A registry, when one is named, replaces the catalog rather than adding to it.
    if not registry:
        return entries(settings)
    from hubcli.hub.http_client import HttpOptions

    return registry_entries(registry, settings.offline, HttpOptions.from_env(settings))
