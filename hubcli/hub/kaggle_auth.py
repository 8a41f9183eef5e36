"""Kaggle credentials for gated and private models, read the way Kaggle's own clients read them.

Sources, first found wins:

1. ``KAGGLE_API_TOKEN``: an API token, sent as ``Authorization: Bearer <token>``;
2. ``<config dir>/access_token``: the same, from a file;
3. ``KAGGLE_USERNAME`` and ``KAGGLE_KEY``: sent as HTTP Basic auth;
4. ``<config dir>/kaggle.json`` (``{"username": ..., "key": ...}``): the same, from a file.

The config dir is ``$KAGGLE_CONFIG_DIR``, else ``~/.kaggle``. A credentials file other
users can read is refused with one line (as Kaggle's client warns: ``chmod 600`` it).

Credentials go only to Kaggle itself: a request gets them only when its own URL has
the Kaggle API's scheme, host and port (``https://www.kaggle.com``, or
``HUBCLI_KAGGLE_ENDPOINT``), so they never follow a redirect to tfhub.dev, to signed
storage or anywhere else, and they never appear in a message or a JSON document
(:class:`KaggleCredentials` shows only where it came from).

Example:
    >>> import os
    >>> os.environ["KAGGLE_API_TOKEN"] = "secret-token"
    >>> found = find_credentials()
    >>> found.source, "secret" in repr(found)
    ('KAGGLE_API_TOKEN', False)
    >>> sends_credentials("https://www.kaggle.com/api/v1/models/a/b/tensorflow2/c/1/download")
    True
    >>> sends_credentials("https://storage.googleapis.com/kaggle-models-data/1.tar.gz")
    False
    >>> del os.environ["KAGGLE_API_TOKEN"]
"""

from __future__ import annotations

import base64
import json
import os
import stat
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from hubcli.errors import UsageError

#: Every place a credential may come from, in the order they are tried (for messages).
SOURCES_TRIED = "KAGGLE_API_TOKEN, ~/.kaggle/access_token, KAGGLE_USERNAME and KAGGLE_KEY, ~/.kaggle/kaggle.json"


@dataclass(frozen=True)
class KaggleCredentials:
    """One credential and where it was found; its secret never shows in ``repr``."""

    source: str
    header: str = field(repr=False)

    def headers(self) -> dict[str, str]:
        return {"Authorization": self.header}


def config_dir() -> Path:
    return Path(os.environ.get("KAGGLE_CONFIG_DIR") or Path.home() / ".kaggle").expanduser()


def find_credentials() -> KaggleCredentials | None:
    """The first credential found (see the module docstring), or None: public models need none.

    Raises:
        UsageError: a credentials file is readable by other users, or malformed.
    """
    token = os.environ.get("KAGGLE_API_TOKEN", "").strip()
    if token:
        return KaggleCredentials("KAGGLE_API_TOKEN", f"Bearer {token}")
    token_file = config_dir() / "access_token"
    if token_file.is_file():
        token = _read_private(token_file).strip()
        if not token:
            raise UsageError(f"Kaggle token file {token_file} is empty")
        return KaggleCredentials(str(token_file), f"Bearer {token}")
    username, key = os.environ.get("KAGGLE_USERNAME", "").strip(), os.environ.get("KAGGLE_KEY", "").strip()
    if username and key:
        return KaggleCredentials("KAGGLE_USERNAME/KAGGLE_KEY", _basic(username, key))
    json_file = config_dir() / "kaggle.json"
    if json_file.is_file():
        try:
            document = json.loads(_read_private(json_file))
            username, key = str(document["username"]), str(document["key"])
        except (ValueError, KeyError, TypeError):
            raise UsageError(f"Kaggle credentials file {json_file} is not {{\"username\": ..., \"key\": ...}}") from None
        return KaggleCredentials(str(json_file), _basic(username, key))
    return None


def kaggle_origin() -> tuple[str, str, int]:
    """(scheme, host, port) of the Kaggle API that credentials may be sent to."""
    from hubcli.hub.handles import kaggle_endpoint

    return _origin(kaggle_endpoint())


def sends_credentials(url: str) -> bool:
    """Whether a request to ``url`` carries Kaggle credentials: only Kaggle's own origin does."""
    try:
        return _origin(url) == kaggle_origin()
    except ValueError:
        return False


def _origin(url: str) -> tuple[str, str, int]:
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower().rstrip("."), parts.port or (443 if scheme == "https" else 80)


def _basic(username: str, key: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{key}".encode()).decode("ascii")


def _read_private(path: Path) -> str:
    mode = path.stat().st_mode
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        raise UsageError(f"Kaggle credentials file {path} is readable by other users; run `chmod 600 {path}`")
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"cannot read Kaggle credentials file {path}: {err}") from None
