"""Settings: where the cache lives, offline and mirror modes, trusted hosts, user aliases.

Precedence, highest first: command-line option, environment variable, config
file, built-in default. The config file is TOML at ``$HUBCLI_CONFIG`` or
``$XDG_CONFIG_HOME/hubcli/config.toml`` (``~/.config/hubcli/config.toml``)::

    cache_dir = "/data/hub-cache"
    mirror = "https://models.internal.example/hub"
    trusted_hosts = ["models.internal.example"]

    [aliases.my-encoder]
    handle = "https://models.internal.example/hub/encoder/3.tar.gz"
    task = "text-embedding"
    output_dim = 512

Example:
    >>> settings = Settings.load(cache_dir="/tmp/hub", offline=True)
    >>> settings.cache_dir, settings.offline
    (PosixPath('/tmp/hub'), True)
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hubcli.errors import UsageError

#: Hosts that serve official modules; anything else gets a warning before use.
DEFAULT_TRUSTED_HOSTS = (
    "tfhub.dev",
    "hub.tensorflow.google.cn",
    "gcs.tensorflow.google.cn",
    "kaggle.com",
    "www.kaggle.com",
    "storage.googleapis.com",
    "kaggle-models-data.storage.googleapis.com",
)

_TRUE = {"1", "true", "yes", "on"}


def _env_flag(name: str) -> bool | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    return value.strip().lower() in _TRUE


def config_path() -> Path:
    explicit = os.environ.get("HUBCLI_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "hubcli" / "config.toml"


def default_cache_dir() -> Path:
    """A per-user cache that temp cleaners leave alone (unlike tensorflow_hub's /tmp default)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "hubcli" / "modules"


def read_config_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise UsageError(f"config file {path} is not valid TOML: {err}") from None
    except OSError as err:
        raise UsageError(f"cannot read config file {path}: {err.strerror}") from None


@dataclass(frozen=True)
class Settings:
    """Everything that decides where modules come from and where they are kept."""

    cache_dir: Path
    offline: bool = False
    mirror: str | None = None
    trusted_hosts: tuple[str, ...] = DEFAULT_TRUSTED_HOSTS
    user_aliases: dict[str, dict[str, Any]] = field(default_factory=dict)
    config_file: Path | None = None

    @classmethod
    def load(
        cls,
        cache_dir: str | os.PathLike | None = None,
        offline: bool | None = None,
        mirror: str | None = None,
    ) -> Settings:
        """Resolve settings from arguments, then environment, then config file, then defaults."""
        path = config_path()
        file_values = read_config_file(path)

        chosen_cache = (
            cache_dir
            or os.environ.get("HUBCLI_CACHE_DIR")
            or os.environ.get("TFHUB_CACHE_DIR")
            or file_values.get("cache_dir")
            or default_cache_dir()
        )
        if offline is None:
            offline = _env_flag("HUBCLI_OFFLINE")
        if offline is None:
            offline = bool(file_values.get("offline", False))
        chosen_mirror = mirror or os.environ.get("HUBCLI_MIRROR") or file_values.get("mirror") or None

        extra_hosts = file_values.get("trusted_hosts", [])
        env_hosts = os.environ.get("HUBCLI_TRUSTED_HOSTS", "")
        extra_hosts = [*extra_hosts, *(h.strip() for h in env_hosts.split(",") if h.strip())]
        if not all(isinstance(h, str) for h in extra_hosts):
            raise UsageError(f"config file {path}: trusted_hosts must be a list of host names")

        aliases = file_values.get("aliases", {})
        if not isinstance(aliases, dict) or not all(isinstance(v, dict) and "handle" in v for v in aliases.values()):
            raise UsageError(f"config file {path}: each [aliases.NAME] table needs a 'handle'")

        return cls(
            cache_dir=Path(chosen_cache).expanduser(),
            offline=bool(offline),
            mirror=chosen_mirror,
            trusted_hosts=tuple(dict.fromkeys([*DEFAULT_TRUSTED_HOSTS, *extra_hosts])),
            user_aliases=aliases,
            config_file=path if file_values else None,
        )
