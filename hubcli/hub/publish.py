"""``hubcli publish``: add a module archive to a registry directory that ``pull --mirror`` serves.

:func:`publish_module` checks an archive exactly as ``pull`` would (safe
extraction, a module at the root, a module ``inspect`` can read) and adds it to a
registry directory with :func:`hubcli.hub.registry.add_version` (immutable
versions, atomic index update). Archives and their metadata come from
``export-module`` (:mod:`hubcli.export.module`).

Example:
    >>> publish_module("acme-flowers-1.tar.gz", "/srv/hub")  # doctest: +SKIP
    >>> # now: hubcli pull https://tfhub.dev/acme/flowers/1 --mirror /srv/hub
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubcli.errors import IntegrityError, InvalidModuleError, NotFoundError, UnsafeContentError, UsageError
from hubcli.fsio import sha256_file
from hubcli.hub.module_archive import check_module_archive, metadata_path_for, module_metadata


@dataclass(frozen=True)
class Published:
    """Where a publish put a module, and the handle that pulls it back."""

    registry: str
    registry_path: str
    version: str
    archive: Path
    sha256: str
    size: int

    @property
    def handle(self) -> str:
        """A handle that ``hubcli pull --mirror <registry>`` resolves to this version."""
        return f"https://tfhub.dev/{self.registry_path}/{self.version}"

    def to_json(self) -> dict:
        return {
            "registry": self.registry,
            "name": self.registry_path,
            "version": self.version,
            "archive": str(self.archive),
            "sha256": self.sha256,
            "size": self.size,
            "handle": self.handle,
        }


def publish_module(
    archive: str | os.PathLike, registry_root: str, name: str | None = None, version: str | None = None
) -> Published:
    """Check ``archive`` as ``pull`` would and add it to the registry directory ``registry_root``.

    ``name`` and ``version`` default to those in the metadata file beside the
    archive (written by ``export-module``); given, they override it.
    """
    from hubcli.hub import registry

    if registry.is_remote(registry_root):
        raise UsageError(
            f"cannot publish to {registry_root}: registries over http(s) are read-only; "
            "publish into the directory that server serves (hubcli publish ARCHIVE --registry /path/to/dir)"
        )
    archive = Path(archive)
    if not archive.is_file():
        raise NotFoundError(f"no archive at {archive}")
    metadata_file = metadata_path_for(archive)
    metadata: dict[str, Any] = {}
    if metadata_file.is_file():
        try:
            metadata = json.loads(metadata_file.read_text(encoding="utf-8"))
        except ValueError:
            raise UsageError(f"{metadata_file} is not valid JSON") from None
    name = name or metadata.get("name")
    version = str(version or metadata.get("version") or "")
    if not name or not version:
        raise UsageError(f"{archive.name} has no metadata file ({metadata_file.name}); give --name OWNER/MODEL and --version N")
    if "/" not in name:
        # Hub handles (https://tfhub.dev/<owner>/<model>/<version>) need an owner part.
        raise UsageError(f"a published module needs a name of the form owner/model, not {name!r}; pass --name")
    if metadata.get("sha256") and sha256_file(archive) != metadata["sha256"]:
        raise IntegrityError(f"{archive.name} does not match the sha256 in {metadata_file.name}; re-run export-module")
    try:
        info = check_module_archive(archive)
    except (InvalidModuleError, UnsafeContentError) as err:
        raise type(err)(f"refusing to publish {archive.name}: {err}") from None
    if not metadata:
        metadata = module_metadata(
            info, name=name, version=version, sha256=sha256_file(archive), size=archive.stat().st_size,
            provenance={"source": str(archive.resolve())},
        )
    metadata = {**metadata, "name": name, "version": version}
    entry = registry.add_version(registry_root, name, version, archive, metadata)
    return Published(str(registry_root), name, version, Path(entry.archive), entry.sha256, entry.size)
