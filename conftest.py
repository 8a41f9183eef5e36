"""Doctests (``pytest --doctest-modules hubcli/hub``) run apart from the user's own set-up.

Examples call ``Settings.load()``, which reads ``~/.config/hubcli/config.toml`` and the
``HUBCLI_*`` variables; a developer's aliases, mirror or endpoint overrides must not change
what an example prints, and no example may write into their real cache.
"""

from __future__ import annotations

import os

import pytest

_SETTINGS_VARIABLES = ("HUBCLI_", "TFHUB_", "KAGGLE_", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")


@pytest.fixture(autouse=True)
def _isolated_doctest(request, tmp_path, monkeypatch):
    if not isinstance(request.node, pytest.DoctestItem):
        yield
        return
    for name in list(os.environ):
        if name.startswith(_SETTINGS_VARIABLES):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HUBCLI_CONFIG", str(tmp_path / "config" / "hubcli" / "config.toml"))
    monkeypatch.chdir(tmp_path)
    yield
