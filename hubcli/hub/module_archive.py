"""Hub module archives: deterministic packing, the metadata beside them, and their checks.

Everything here is TensorFlow-free, so ``publish`` and ``pull`` can check and describe an
archive quickly; :mod:`hubcli.export.module` builds archives from runs with it.

Example:
    >>> metadata_path_for("acme-flowers-1.tar.gz").name
    'acme-flowers-1.json'
"""

from __future__ import annotations

import gzip
import os
import stat
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubcli import __version__
from hubcli.errors import UnsafeContentError
from hubcli.hub.archive import extract_module_archive
from hubcli.savedmodel.inspector import inspect_module
from hubcli.savedmodel.report import ModuleInfo

METADATA_SCHEMA = "hubcli.module/1"


@dataclass(frozen=True)
class PackedModule:
    """An archive written by :func:`export_module` and the metadata beside it."""

    archive: Path
    metadata_path: Path
    metadata: dict[str, Any]

    def to_json(self) -> dict:
        return {"archive": str(self.archive), "metadata_path": str(self.metadata_path), "metadata": self.metadata}


def metadata_path_for(archive: str | os.PathLike) -> Path:
    """``flowers-1.tar.gz`` -> ``flowers-1.json`` (the metadata file beside an archive)."""
    archive = Path(archive)
    stem = archive.name[: -len(".tar.gz")] if archive.name.endswith(".tar.gz") else archive.stem
    return archive.with_name(stem + ".json")


def pack_module(module_dir: str | os.PathLike, archive_path: str | os.PathLike) -> None:
    """Write ``module_dir``'s contents as a deterministic ``.tar.gz`` (root = the module).

    Example:
        >>> pack_module("exported/saved_model", "flowers.tar.gz")  # doctest: +SKIP
    """
    module_dir = Path(module_dir)
    entries = sorted(module_dir.rglob("*"), key=lambda p: p.relative_to(module_dir).as_posix())
    with (
        open(archive_path, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for entry in entries:
            mode = entry.lstat().st_mode
            if stat.S_ISLNK(mode) or not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise UnsafeContentError(f"{entry} is not a plain file or directory; modules must not contain links or devices")
            info = tarfile.TarInfo(entry.relative_to(module_dir).as_posix())
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if stat.S_ISDIR(mode):
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.mode, info.size = 0o644, entry.stat().st_size
                with entry.open("rb") as handle:
                    tar.addfile(info, handle)


def check_module_archive(archive: str | os.PathLike) -> ModuleInfo:
    """Run ``pull``'s checks on an archive: safe to extract, a SavedModel at its root, readable; its inspection."""
    with tempfile.TemporaryDirectory(prefix="hubcli-check-") as tmp:
        module_dir = Path(tmp) / "module"
        extract_module_archive(archive, module_dir)
        return inspect_module(module_dir)


def module_metadata(
    info: ModuleInfo,
    *,
    name: str,
    version: str,
    sha256: str,
    size: int,
    provenance: dict,
    task: str | None = None,
    license: str | None = None,
    description: str | None = None,
    as_: str = "module",
) -> dict[str, Any]:
    """The metadata document: catalog fields (task, input, image_size, output_dim) plus inspect's spec.

    ``task`` defaults to what the module is (``image-feature-vector``, ``text-embedding``,
    ``image-classification``...); ``provenance`` gets who made it and when.
    """
    takes_strings = bool(info.takes_strings)
    kind = "classification" if as_ == "classification" else "embedding" if takes_strings else "feature-vector"
    return {
        "schema": METADATA_SCHEMA,
        "name": name,
        "version": str(version),
        "task": task or f"{'text' if takes_strings else 'image'}-{kind}",
        "input": "string" if takes_strings else "image",
        "image_size": list(info.image_size) if info.image_size else None,
        "output_dim": info.output_dim,
        "description": description or "",
        "license": license,
        "sha256": sha256,
        "size": size,
        "module": _module_spec(info),
        "provenance": {**provenance, "created_by": f"hubcli {__version__}", "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
    }


def _module_spec(info: ModuleInfo) -> dict[str, Any]:
    """The parts of inspect's document a consumer needs before pulling: interface and size."""
    document = info.to_json()
    keep = ("format", "tensorflow_version", "signatures", "call_input_specs", "op_libraries", "size_bytes")
    variables = document["variables"]
    return {**{key: document[key] for key in keep}, "params": variables["params"], "trainable_params": variables["trainable_params"]}
