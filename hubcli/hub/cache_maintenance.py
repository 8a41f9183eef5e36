"""What ``cache verify`` and ``cache rm`` act on and report: entries named by the user, checks, removals.

:mod:`hubcli.hub.cache` defines an entry and the primitives on one; this module applies them to
the entries a user names (by handle, alias or entry name) and returns records the CLI renders.

Example:
    >>> from hubcli.config import Settings  # doctest: +SKIP
    >>> settings = Settings.load()  # doctest: +SKIP
    >>> reports = verify_entries(find_entries(["mobilenet_v2"], settings))  # doctest: +SKIP
    >>> [(r.entry.handle, r.status) for r in reports]  # doctest: +SKIP
    [('https://tfhub.dev/google/imagenet/mobilenet_v2_100_224/feature_vector/5', 'ok')]
    >>> [removal.bytes for removal in remove_entries([reports[0].entry], dry_run=True)]  # doctest: +SKIP
    [14246374]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hubcli.errors import IntegrityError, NotFoundError
from hubcli.hub.cache import CacheEntry, looks_like_entry_name, read_entry, remove_entry_locked, resolve_entry_name, verify_entry
from hubcli.hub.handles import parse_handle

if TYPE_CHECKING:
    from hubcli.config import Settings


def find_entries(targets: Sequence[str], settings: Settings) -> list[CacheEntry]:
    """The entries named by handles, aliases or entry names (a sha1, or a unique prefix of 6+ digits).

    Raises:
        NotFoundError: a target names nothing in the cache (or is an unknown alias).

    Example:
        >>> [e.name[:8] for e in find_entries(["mobilenet_v2"], Settings.load())]  # doctest: +SKIP
        ['1d6f5c0a']
    """
    chosen = []
    for target in targets:
        absent = NotFoundError(f"{target} is not in the cache ({settings.cache_dir})")
        name = resolve_entry_name(settings.cache_dir, target)
        if name is None:
            try:
                name = parse_handle(target, settings).cache_dir_name
            except NotFoundError:
                if looks_like_entry_name(target):
                    raise absent from None  # An entry name that matched nothing, not a misspelt alias.
                raise
        entry = read_entry(settings.cache_dir, name) if name else None
        if entry is None:
            raise absent
        chosen.append(entry)
    return chosen


@dataclass(frozen=True)
class VerifyReport:
    """What a full check of one entry found: ``ok``, ``damaged``, or ``unverified`` (no manifest)."""

    entry: CacheEntry
    problems: tuple[str, ...]

    @property
    def status(self) -> str:
        if self.problems:
            return "damaged"
        return "ok" if self.entry.files is not None else "unverified"

    def to_json(self) -> dict[str, Any]:
        return {**self.entry.to_json(), "status": self.status, "problems": list(self.problems)}


def verify_entries(entries: Sequence[CacheEntry]) -> list[VerifyReport]:
    """:func:`verify_entry` for each entry, as reports.

    Example:
        >>> reports = verify_entries(list_entries(Settings.load().cache_dir))  # doctest: +SKIP
        >>> [(r.entry.handle, r.status) for r in reports]  # doctest: +SKIP
        [('https://tfhub.dev/google/nnlm-en-dim50/2', 'ok')]
    """
    return [VerifyReport(entry, tuple(verify_entry(entry))) for entry in entries]


def raise_if_damaged(reports: Sequence[VerifyReport]) -> None:
    """Fail with one line naming the first damaged entries, if any report is damaged.

    Raises:
        IntegrityError: some entry is damaged; the message says how to reinstall it.
    """
    damaged = [report for report in reports if report.status == "damaged"]
    if damaged:
        names = ", ".join(report.entry.handle or report.entry.name for report in damaged[:3])
        raise IntegrityError(
            f"{len(damaged)} of {len(reports)} cache entries damaged ({names}); `hubcli pull --force HANDLE` reinstalls one"
        )


@dataclass(frozen=True)
class Removal:
    """One entry ``cache rm`` removed (or would remove): its bytes freed (or held)."""

    name: str
    handle: str | None
    path: Path
    bytes: int

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "handle": self.handle, "path": str(self.path), "bytes": self.bytes}


def remove_entries(entries: Sequence[CacheEntry], *, dry_run: bool = False) -> list[Removal]:
    """Remove each entry under its lock (:func:`remove_entry_locked`); with ``dry_run`` only say what would go.

    Example:
        >>> [r.bytes for r in remove_entries(find_entries(["mobilenet_v2"], Settings.load()), dry_run=True)]  # doctest: +SKIP
        [14246374]
    """
    return [
        Removal(entry.name, entry.handle, entry.path, entry.disk_bytes if dry_run else remove_entry_locked(entry.paths))
        for entry in entries
    ]
