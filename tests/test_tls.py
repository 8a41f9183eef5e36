"""HTTPS through a proxy that re-signs TLS: --ca-bundle, REQUESTS_CA_BUNDLE, SSL_CERT_FILE, config, and clear failures."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from tests.helpers.cli_run import error_line, run_hubcli
from tests.helpers.hubserver import make_fake_module_archive, start_server
from tests.helpers.tls import make_pki

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a test CA")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def https(pki, tmp_path, monkeypatch):
    """An HTTPS hub server on 127.0.0.1 whose certificate only the test CA vouches for."""
    state, server = start_server(tls=(pki.certificate, pki.key))
    archive = make_fake_module_archive(tmp_path / "m.tar.gz")
    state.url = state.put_file("m.tar.gz", archive)
    state.sha256 = hashlib.sha256(archive.read_bytes()).hexdigest()
    monkeypatch.setenv("HUBCLI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HUBCLI_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("HUBCLI_TRUSTED_HOSTS", "127.0.0.1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    for name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE", "HUBCLI_RETRIES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HUBCLI_BACKOFF", "30")  # A retried certificate failure would take minutes.
    yield state
    server.shutdown()
    server.server_close()


def test_an_unknown_certificate_authority_is_one_line_naming_the_option(https):
    done = run_hubcli("pull", https.url)
    assert done.returncode == 4
    line = error_line(done)
    assert "its certificate does not verify (unable to get local issuer certificate)" in line
    assert "checked against the default certificate authorities" in line and "--ca-bundle FILE" in line
    assert "gave up" not in line and done.stderr.count("\n") == 1


@pytest.mark.parametrize("how", ["--ca-bundle", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "config"])
def test_each_way_of_naming_the_ca_bundle_works(https, pki, monkeypatch, tmp_path, how):
    args = []
    if how == "--ca-bundle":
        args = ["--ca-bundle", str(pki.ca)]
    elif how == "config":
        (tmp_path / "config.toml").write_text(f'ca_bundle = "{pki.ca}"\n')
    else:
        monkeypatch.setenv(how, str(pki.ca))
    done = run_hubcli("pull", https.url, "--json", *args)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["sha256"] == https.sha256


def test_a_bundle_of_another_authority_is_named_in_the_failure(https, tmp_path):
    other = make_pki(tmp_path / "other", name="someone else's CA")
    done = run_hubcli("pull", https.url, "--ca-bundle", other.ca)
    assert done.returncode == 4
    assert f"checked against the CA bundle {other.ca}" in error_line(done)


def test_a_certificate_for_another_host_name_says_so(https, pki):
    done = run_hubcli("pull", https.url.replace("127.0.0.1", "localhost"), "--ca-bundle", pki.ca)
    assert done.returncode == 4
    assert "localhost" in error_line(done) and "--ca-bundle" in error_line(done)


def test_a_registry_index_over_https_uses_the_bundle_too(https, pki, tmp_path, monkeypatch):
    from hubcli.hub import registry
    from tests.test_registry import make_archive

    root = tmp_path / "registry"
    registry.add_version(root, "acme/flowers", "1", make_archive(tmp_path / "a.tar.gz"), {"task": "image-classification"})
    https.mirror_root = root
    mirror = f"{https.base_url}/mirror"
    assert run_hubcli("list", "--registry", mirror).returncode == 4
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(pki.ca))
    listed = run_hubcli("list", "--registry", mirror, "--json")
    assert listed.returncode == 0, listed.stderr
    assert [e["name"] for e in json.loads(listed.stdout)["entries"]] == ["acme/flowers"]
