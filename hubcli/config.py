"""Settings: where the cache lives, offline and mirror modes, trusted hosts, TLS, user aliases.

Precedence, highest first: command-line option, environment variable, config
file, built-in default. The config file is TOML at ``$HUBCLI_CONFIG`` or
``$XDG_CONFIG_HOME/hubcli/config.toml`` (``~/.config/hubcli/config.toml``)::

    cache_dir = "/data/hub-cache"
    offline = false
    mirror = "https://models.internal.example/hub"
    trusted_hosts = ["models.internal.example"]
    ca_bundle = "/etc/ssl/corporate-ca.pem"

    [aliases.my-encoder]
    handle = "https://models.internal.example/hub/encoder/3.tar.gz"
    task = "text-embedding"
    output_dim = 512

Every key is checked for its type when the file is read, and so is every
environment variable hubcli reads: a wrong one is one
:class:`~hubcli.errors.UsageError` line (exit 2) naming the key and the type it
needs. Unknown keys are errors too (a misspelt ``offline`` must not silently
let a CI job reach the network). Relative paths in the file are relative to
the file's directory; relative paths given on the command line or in the
environment are relative to the working directory; both are made absolute, so
every path hubcli prints survives a ``cd``.

Example:
    >>> settings = Settings.load(cache_dir="/tmp/hub", offline=True)
    >>> settings.cache_dir, settings.offline
    (PosixPath('/tmp/hub'), True)
    >>> Settings(cache_dir=Path("relative/cache")).cache_dir.is_absolute()
    True
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Required, TypedDict

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
_FALSE = {"0", "false", "no", "off"}
_HOST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9])?")


class AliasTable(TypedDict, total=False):
    """One ``[aliases.NAME]`` table of the config file (see :mod:`hubcli.hub.catalog`)."""

    handle: Required[str]
    task: str
    input: str
    image_size: int | list[int]
    output_dim: int
    description: str


_ALIAS_KEYS = ("handle", "task", "input", "image_size", "output_dim", "description")
_FILE_KEYS = ("cache_dir", "offline", "mirror", "trusted_hosts", "ca_bundle", "aliases")


@dataclass(frozen=True)
class Settings:
    """Everything that decides where modules come from and where they are kept.

    Attributes:
        cache_dir: the module cache (always absolute).
        offline: never touch the network.
        mirror: a registry (http(s) URL or directory) that serves hub handles.
        trusted_hosts: hosts whose modules are pulled without a warning.
        user_aliases: the config file's ``[aliases.NAME]`` tables, checked.
        config_file: the config file read, if there was one.
        ca_bundle: PEM file of the certificate authorities to trust for HTTPS, or None
            for the default store.
        timeout: seconds one pull may take in all, or None for no limit.
    """

    cache_dir: Path
    offline: bool = False
    mirror: str | None = None
    trusted_hosts: tuple[str, ...] = DEFAULT_TRUSTED_HOSTS
    user_aliases: dict[str, AliasTable] = field(default_factory=dict)
    config_file: Path | None = None
    ca_bundle: Path | None = None
    timeout: float | None = None

    def __post_init__(self) -> None:
        # Paths are printed and recorded; a relative one would mean something else after a `cd`.
        object.__setattr__(self, "cache_dir", Path(self.cache_dir).expanduser().absolute())
        if self.ca_bundle is not None:
            object.__setattr__(self, "ca_bundle", Path(self.ca_bundle).expanduser().absolute())

    @classmethod
    def load(
        cls,
        *,
        cache_dir: str | os.PathLike | None = None,
        offline: bool | None = None,
        mirror: str | None = None,
        ca_bundle: str | os.PathLike | None = None,
        timeout: float | None = None,
    ) -> Settings:
        """Resolve settings from arguments, then environment, then config file, then defaults.

        Raises:
            UsageError: the config file, an environment variable or an argument has the wrong type.
        """
        path = config_path()
        file_values = _checked_file_values(read_config_file(path), path)
        base = path.parent

        chosen_cache = (
            cache_dir
            or os.environ.get("HUBCLI_CACHE_DIR")
            or os.environ.get("TFHUB_CACHE_DIR")
            or _from_file(file_values.get("cache_dir"), base)
            or default_cache_dir()
        )
        if offline is None:
            offline = env_flag("HUBCLI_OFFLINE")
        if offline is None:
            offline = file_values.get("offline", False)
        chosen_mirror = mirror or os.environ.get("HUBCLI_MIRROR") or file_values.get("mirror") or None

        env_hosts = [h.strip() for h in os.environ.get("HUBCLI_TRUSTED_HOSTS", "").split(",") if h.strip()]
        for host in env_hosts:
            _check_host_name(host, "HUBCLI_TRUSTED_HOSTS")
        extra_hosts = [*file_values.get("trusted_hosts", []), *env_hosts]

        chosen_bundle = _chosen_ca_bundle(ca_bundle, file_values.get("ca_bundle"), base, path)
        if timeout is None:
            timeout = env_number("HUBCLI_TIMEOUT", None, minimum=0.0, exclusive=True)
        elif timeout <= 0:
            raise UsageError(f"--timeout must be a positive number of seconds, not {timeout}")

        return cls(
            cache_dir=Path(chosen_cache),
            offline=bool(offline),
            mirror=chosen_mirror,
            trusted_hosts=tuple(dict.fromkeys([*DEFAULT_TRUSTED_HOSTS, *extra_hosts])),
            user_aliases=file_values.get("aliases", {}),
            config_file=path if file_values else None,
            ca_bundle=chosen_bundle,
            timeout=timeout,
        )


def config_path() -> Path:
    explicit = os.environ.get("HUBCLI_CONFIG")
    if explicit:
        return Path(explicit).expanduser().absolute()
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base).absolute() / "hubcli" / "config.toml"


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


# --- environment -------------------------------------------------------------------


def env_flag(name: str) -> bool | None:
    """A boolean environment variable: None when unset or empty.

    Example:
        >>> os.environ["HUBCLI_EXAMPLE_FLAG"] = "yes"
        >>> env_flag("HUBCLI_EXAMPLE_FLAG")
        True
        >>> os.environ["HUBCLI_EXAMPLE_FLAG"] = "maybe"
        >>> env_flag("HUBCLI_EXAMPLE_FLAG")
        Traceback (most recent call last):
        ...
        hubcli.errors.UsageError: HUBCLI_EXAMPLE_FLAG='maybe' is not a boolean; use 1 or 0 (or true/false, yes/no, on/off)
        >>> del os.environ["HUBCLI_EXAMPLE_FLAG"]
    """
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return None
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise UsageError(f"{name}={os.environ[name]!r} is not a boolean; use 1 or 0 (or true/false, yes/no, on/off)")


def env_number(name: str, default: float | None, *, integer: bool = False, minimum: float = 0.0, exclusive: bool = False):
    """A numeric environment variable (``default`` when unset), at least ``minimum``.

    Example:
        >>> os.environ["HUBCLI_EXAMPLE_RETRIES"] = "three"
        >>> env_number("HUBCLI_EXAMPLE_RETRIES", 5, integer=True)
        Traceback (most recent call last):
        ...
        hubcli.errors.UsageError: HUBCLI_EXAMPLE_RETRIES='three' must be a whole number of at least 0
        >>> del os.environ["HUBCLI_EXAMPLE_RETRIES"]
        >>> env_number("HUBCLI_EXAMPLE_RETRIES", 5, integer=True)
        5
    """
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    kind = "a whole number" if integer else "a number"
    bound = f"greater than {minimum:g}" if exclusive else f"of at least {minimum:g}"
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        value = None
    if value is None or value != value or value < minimum or (exclusive and value == minimum):  # value != value: NaN
        raise UsageError(f"{name}={text!r} must be {kind} {bound}")
    return value


def _chosen_ca_bundle(argument: str | os.PathLike | None, file_value: str | None, base: Path, path: Path) -> Path | None:
    """The CA bundle to trust, checked to exist, with the option or variable it came from named on failure."""
    # REQUESTS_CA_BUNDLE is what requests-based tools read; SSL_CERT_FILE what OpenSSL-based ones read.
    candidates = [
        ("--ca-bundle", argument),
        ("REQUESTS_CA_BUNDLE", os.environ.get("REQUESTS_CA_BUNDLE")),
        ("SSL_CERT_FILE", os.environ.get("SSL_CERT_FILE")),
        (f"config file {path}: ca_bundle", _from_file(file_value, base)),
    ]
    source, value = next(((source, value) for source, value in candidates if value), (None, None))
    if value is None:
        return None
    bundle = Path(value).expanduser()
    if not bundle.is_file():
        raise UsageError(f"{source} {bundle}: no such file (it must name a PEM file of certificate authorities)")
    return bundle


# --- the config file ------------------------------------------------------------------


def _checked_file_values(values: dict[str, Any], path: Path) -> dict[str, Any]:
    """The config file's values, each checked for its type; raises one line naming the first bad key."""
    where = f"config file {path}"
    for key in values:
        if key not in _FILE_KEYS:
            close = difflib.get_close_matches(key, _FILE_KEYS, n=1)
            hint = f"; did you mean {close[0]}?" if close else f" (known keys: {', '.join(_FILE_KEYS)})"
            raise UsageError(f"{where}: unknown key {key!r}{hint}")
    for key in ("cache_dir", "mirror", "ca_bundle"):
        if key in values and not (isinstance(values[key], str) and values[key].strip()):
            raise UsageError(f"{where}: {key} must be a non-empty string, not {_toml_type(values[key])}")
    if "offline" in values and not isinstance(values["offline"], bool):
        raise UsageError(f"{where}: offline must be true or false (a TOML boolean, unquoted), not {_toml_type(values['offline'])}")
    hosts = values.get("trusted_hosts", [])
    if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
        raise UsageError(f"{where}: trusted_hosts must be a list of host names, as in [\"models.example.com\"], not {_toml_type(hosts)}")
    for host in hosts:
        _check_host_name(host, f"{where}: trusted_hosts")
    aliases = values.get("aliases", {})
    if not isinstance(aliases, dict):
        raise UsageError(f"{where}: aliases must be tables, as in [aliases.my-encoder], not {_toml_type(aliases)}")
    for name, table in aliases.items():
        _check_alias(name, table, f"{where}: [aliases.{name}]")
    return values


def _check_alias(name: str, table: Any, where: str) -> None:
    if not isinstance(table, dict):
        raise UsageError(f"{where} must be a table with a handle, not {_toml_type(table)}")
    if "/" in name or not name.strip():
        raise UsageError(f"{where}: an alias is a bare name, without '/'")
    unknown = set(table) - set(_ALIAS_KEYS)
    if unknown:
        raise UsageError(f"{where} has unknown keys: {', '.join(sorted(unknown))}")
    if "handle" not in table:
        raise UsageError(f"{where} needs a 'handle'")
    for key in ("handle", "task", "input", "description"):
        if key in table and not isinstance(table[key], str):
            raise UsageError(f"{where}: {key} must be a string, not {_toml_type(table[key])}")
    output_dim = table.get("output_dim")
    if output_dim is not None and not (_is_int(output_dim) and output_dim > 0):
        raise UsageError(f"{where}: output_dim must be a positive integer, not {_toml_type(output_dim)}")
    size = table.get("image_size")
    sizes = [size] if _is_int(size) else size if isinstance(size, list) and len(size) == 2 else None
    if size is not None and not (sizes and all(_is_int(s) and s > 0 for s in sizes)):
        raise UsageError(f"{where}: image_size must be an integer or [height, width], not {_toml_type(size)}")


def _check_host_name(host: str, where: str) -> None:
    """A trusted host is matched against URL host names: a scheme, port or path would never match."""
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    if not _HOST_NAME.fullmatch(host):
        raise UsageError(f"{where}: {host!r} is not a host name; give names such as models.example.com, without scheme, port or path")


def _from_file(value: str | None, base: Path) -> Path | None:
    """A path from the config file: relative to the file's directory, not to wherever hubcli runs."""
    return None if value is None else base / Path(value).expanduser()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _toml_type(value: Any) -> str:
    """How a TOML value reads in an error: ``the integer 5``, ``the string "false"``."""
    kinds = ((bool, "boolean"), (int, "integer"), (float, "float"), (str, "string"), (list, "array"), (dict, "table"))
    kind = next((name for python_type, name in kinds if isinstance(value, python_type)), type(value).__name__)
    shown = repr(value) if not isinstance(value, str) else '"' + value.replace('"', '\\"') + '"'
    if isinstance(value, bool):
        shown = str(value).lower()
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return f"the {kind} {shown}"
