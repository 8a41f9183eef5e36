"""Kaggle credentials: read as Kaggle's clients read them, sent to Kaggle only, never shown."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

import pytest

from tests.helpers.cli_run import error_line, run_hubcli

# The local hub server and module-archive fixtures.
pytest_plugins = ["tests.helpers.hubserver"]

PRIVATE = "acme/secret/tensorflow2/default"
SECRET_KEY = "s3cr3t-kaggle-key-0123456789"
SECRET_TOKEN = "s3cr3t-kaggle-token-abcdef"
BASIC = "Basic " + base64.b64encode(f"alice:{SECRET_KEY}".encode()).decode()
BEARER = f"Bearer {SECRET_TOKEN}"


@pytest.fixture
def kaggle(hub, fake_archive, tmp_path, monkeypatch):
    """A private Kaggle model; storage and tfhub.dev on ``localhost``, another origin than Kaggle's 127.0.0.1."""
    hub.add_kaggle_module(PRIVATE, 1, fake_archive)
    hub.kaggle_private.add(PRIVATE)
    hub.kaggle_authorizations.update({BASIC, BEARER})
    hub.storage_host = "localhost"
    port = hub.base_url.rsplit(":", 1)[1]
    monkeypatch.setenv("HUBCLI_TFHUB_ENDPOINT", f"http://localhost:{port}/tfhub")
    monkeypatch.setenv("HUBCLI_TRUSTED_HOSTS", "localhost")
    config = tmp_path / "kaggle-config"
    config.mkdir()
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(config))
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY"):
        monkeypatch.delenv(name, raising=False)
    hub.config_dir = config
    return hub


def _private_file(path: Path, text: str, mode: int = 0o600) -> None:
    path.write_text(text)
    os.chmod(path, mode)


def _set_source(kaggle, monkeypatch, source: str) -> None:
    if source == "KAGGLE_API_TOKEN":
        monkeypatch.setenv("KAGGLE_API_TOKEN", SECRET_TOKEN)
    elif source == "access_token":
        _private_file(kaggle.config_dir / "access_token", SECRET_TOKEN + "\n")
    elif source == "KAGGLE_USERNAME/KAGGLE_KEY":
        monkeypatch.setenv("KAGGLE_USERNAME", "alice")
        monkeypatch.setenv("KAGGLE_KEY", SECRET_KEY)
    else:
        _private_file(kaggle.config_dir / "kaggle.json", json.dumps({"username": "alice", "key": SECRET_KEY}))


SOURCES = ["KAGGLE_API_TOKEN", "access_token", "KAGGLE_USERNAME/KAGGLE_KEY", "kaggle.json"]


@pytest.mark.parametrize("source", SOURCES)
def test_each_credential_source_opens_a_private_model_and_stays_with_kaggle(kaggle, monkeypatch, fake_archive, source):
    _set_source(kaggle, monkeypatch, source)
    done = run_hubcli("pull", f"{PRIVATE}/1", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["sha256"] == hashlib.sha256(fake_archive.read_bytes()).hexdigest()
    api, storage = kaggle.requests_to("/api/"), kaggle.storage_gets()
    assert api and all(r.headers.get("Authorization") in (BASIC, BEARER) for r in api)
    assert storage and all("Authorization" not in r.headers for r in storage)  # not across the redirect to storage
    assert SECRET_KEY not in done.stdout + done.stderr and SECRET_TOKEN not in done.stdout + done.stderr


def test_the_latest_version_lookup_of_a_private_model_sends_them_too(kaggle, monkeypatch):
    _set_source(kaggle, monkeypatch, "KAGGLE_API_TOKEN")
    done = run_hubcli("pull", PRIVATE)
    assert done.returncode == 0, done.stderr
    assert kaggle.requests_to(f"/api/v1/models/{PRIVATE}/get")[0].headers["Authorization"] == BEARER


def test_credentials_never_go_to_another_host(kaggle, monkeypatch, fake_archive):
    _set_source(kaggle, monkeypatch, "KAGGLE_USERNAME/KAGGLE_KEY")
    kaggle.add_tfhub_module("acme/public/1", fake_archive)
    elsewhere = kaggle.put_file("public.tar.gz", fake_archive).replace("127.0.0.1", "localhost")
    for handle in ("https://tfhub.dev/acme/public/1", elsewhere):
        assert run_hubcli("pull", handle).returncode == 0
    assert all("Authorization" not in r.headers for r in kaggle.requests_to("/tfhub/") + kaggle.requests_to("/files/"))


def test_no_credentials_says_where_they_were_looked_for(kaggle):
    done = run_hubcli("pull", f"{PRIVATE}/1")
    assert done.returncode == 4
    line = error_line(done)
    assert "access denied (HTTP 401 Unauthorized); no Kaggle credentials were found (KAGGLE_API_TOKEN, ~/.kaggle/access_token" in line


@pytest.mark.parametrize("source", ["KAGGLE_USERNAME/KAGGLE_KEY", "kaggle.json"])
def test_refused_credentials_name_the_source_tried_but_not_the_secret(kaggle, monkeypatch, source):
    _set_source(kaggle, monkeypatch, source)
    kaggle.kaggle_authorizations.clear()
    done = run_hubcli("pull", f"{PRIVATE}/1", "--json")
    assert done.returncode == 4 and done.stdout == ""
    shown = "KAGGLE_USERNAME/KAGGLE_KEY" if source != "kaggle.json" else str(kaggle.config_dir / "kaggle.json")
    assert error_line(done).endswith(f"Kaggle refused the credentials from {shown}")
    assert SECRET_KEY not in done.stderr


@pytest.mark.parametrize("name, text", [("kaggle.json", json.dumps({"username": "alice", "key": SECRET_KEY})), ("access_token", SECRET_TOKEN)])
def test_a_credentials_file_others_can_read_is_refused(kaggle, name, text):
    path = kaggle.config_dir / name
    _private_file(path, text, 0o644)
    done = run_hubcli("pull", f"{PRIVATE}/1")
    assert done.returncode == 2
    assert error_line(done) == f"error: Kaggle credentials file {path} is readable by other users; run `chmod 600 {path}`"
    assert not kaggle.requests_to("/api/")  # Nothing was sent with it.


def test_a_malformed_kaggle_json_is_one_line(kaggle):
    _private_file(kaggle.config_dir / "kaggle.json", '{"user": "alice"}')
    done = run_hubcli("pull", f"{PRIVATE}/1")
    assert done.returncode == 2 and "is not {\"username\": ..., \"key\": ...}" in error_line(done)
