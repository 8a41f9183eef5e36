"""The module a run trains on: what the user typed, where it lies, its content digest and inspection.

Resolving reads only the SavedModel's protobufs (no TensorFlow), so a wrong module is
reported before TensorFlow starts.

Example:
    >>> module = ModuleRef.resolve("efficientnet_lite0", Settings.load())  # doctest: +SKIP
    >>> module.info.image_size, module.sha256[:12]  # doctest: +SKIP
    ((224, 224), '5be1c0a2f3d4')
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hubcli.config import Settings
from hubcli.hub.local_modules import describe_artifact
from hubcli.hub.pull import resolve_module_path
from hubcli.savedmodel.inspector import ModuleInfo, content_digest, inspect_module


@dataclass
class ModuleRef:
    """A resolved module; ``settings`` resolved it and resolve any layer built on it."""

    handle: str
    path: Path
    #: Hex content digest (``content_digest`` without its ``sha256:`` prefix): the feature-cache key.
    sha256: str
    info: ModuleInfo
    settings: Settings

    @classmethod
    def resolve(cls, handle: str, settings: Settings) -> ModuleRef:
        path = Path(resolve_module_path(handle, settings))
        digest = content_digest(path).split(":")[-1]
        return cls(handle=handle, path=path, sha256=digest, info=inspect_module(path), settings=settings)

    @property
    def layer_handle(self) -> str:
        """The handle a saved HubLayer keeps: an absolute path for local modules, else the handle."""
        local = Path(self.handle).expanduser()
        return str(local.resolve()) if local.exists() else self.handle

    def to_json(self) -> dict:
        """The module record of ``run.json`` and ``metrics.json``."""
        return {
            "handle": self.handle,
            "path": str(self.path),
            "sha256": self.sha256,
            "op_libraries": list(self.info.op_libraries or []),
            # Hub module or local conversion: which artifact the name resolved to.
            "artifact": describe_artifact(self.path, self.settings),
        }
