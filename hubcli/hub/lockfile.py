"""``hubcli.lock``: pin each module handle to the sha256 of its archive, for reproducible CI.

A TOML file, usually committed next to the code that loads the modules::

    # hubcli.lock: module handle -> sha256 of its archive. Written by `hubcli pull --update-lock`.
    version = 1

    [modules]
    "https://tfhub.dev/google/nnlm-en-dim50/2" = "0f0e6d1c..."

Keys are handles in canonical form (the tensorflow_hub cache key: an alias is
recorded as the handle it stands for). ``hubcli pull --locked`` refuses a
handle that is missing from the file or whose archive hashes differently.

Example:
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "hubcli.lock"
    >>> lock = Lockfile.load(path)
    >>> lock.set("https://tfhub.dev/google/nnlm-en-dim50/2", "0f" * 32)
    >>> lock.save()
    >>> Lockfile.load(path, must_exist=True).get("https://tfhub.dev/google/nnlm-en-dim50/2") == "0f" * 32
    True
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from hubcli.errors import UsageError
from hubcli.fsio import raise_if_disk_full, write_text_atomic

DEFAULT_NAME = "hubcli.lock"
FORMAT_VERSION = 1
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class Lockfile:
    """The handle -> sha256 table of one lock file."""

    path: Path
    modules: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, must_exist: bool = False) -> Lockfile:
        """Read ``path`` (default ``./hubcli.lock``); a missing file is empty unless ``must_exist``."""
        path = Path(path).absolute() if path else Path.cwd() / DEFAULT_NAME
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            if must_exist:
                raise UsageError(f"--locked needs a lock file, and {path} does not exist (create it with --update-lock)") from None
            return cls(path)
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
            raise UsageError(f"lock file {path} is not valid TOML: {err}") from None
        modules = data.get("modules", {})
        if data.get("version") != FORMAT_VERSION or not isinstance(modules, dict):
            raise UsageError(f"lock file {path} is not a hubcli.lock version {FORMAT_VERSION} file")
        for handle, digest in modules.items():
            if not isinstance(digest, str) or not _SHA256.match(digest):
                raise UsageError(f"lock file {path}: the entry for {handle} is not a sha256 hex digest")
        return cls(path, dict(modules))

    def get(self, handle: str) -> str | None:
        return self.modules.get(handle)

    def set(self, handle: str, sha256: str) -> None:
        self.modules[handle] = sha256

    def save(self) -> None:
        """Write the file atomically, handles sorted so diffs stay small."""
        lines = [
            "# hubcli.lock: module handle -> sha256 of its archive. Written by `hubcli pull --update-lock`.",
            f"version = {FORMAT_VERSION}",
            "",
            "[modules]",
        ]
        # A JSON string literal is a valid TOML basic string (same escapes).
        lines += [f"{json.dumps(handle)} = {json.dumps(digest)}" for handle, digest in sorted(self.modules.items())]
        try:
            write_text_atomic(self.path, "\n".join(lines) + "\n")
        except OSError as err:
            raise_if_disk_full(err, f"lock file {self.path}")
            raise UsageError(f"cannot write lock file {self.path}: {err.strerror}") from None
