"""Settings: every config key and environment variable is checked for its type; paths come out absolute."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hubcli.config import Settings
from hubcli.errors import UsageError
from tests.helpers.cli_run import error_line, run_hubcli


@pytest.fixture
def config_file(tmp_path, monkeypatch):
    path = tmp_path / "config.toml"
    monkeypatch.setenv("HUBCLI_CONFIG", str(path))
    for name in ("HUBCLI_CACHE_DIR", "TFHUB_CACHE_DIR", "HUBCLI_OFFLINE", "HUBCLI_MIRROR", "HUBCLI_TRUSTED_HOSTS"):
        monkeypatch.delenv(name, raising=False)
    for name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "HUBCLI_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    return path


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("cache_dir = 5", "cache_dir must be a non-empty string, not the integer 5"),
        ('offline = "false"', 'offline must be true or false (a TOML boolean, unquoted), not the string "false"'),
        ('trusted_hosts = "a.host"', 'trusted_hosts must be a list of host names, as in ["models.example.com"], not the string "a.host"'),
        ('trusted_hosts = ["a.host", 7]', "trusted_hosts must be a list of host names"),
        ('trusted_hosts = ["https://a.host/"]', "'https://a.host/' is not a host name"),
        ('trusted_hosts = ["a.host:8080"]', "'a.host:8080' is not a host name"),
        ("mirror = []", "mirror must be a non-empty string, not the array []"),
        ('mirror = ""', "mirror must be a non-empty string"),
        ("ca_bundle = true", "ca_bundle must be a non-empty string, not the boolean true"),
        ('ca_bundle = "missing.pem"', "ca_bundle"),
        ("ofline = true", "unknown key 'ofline'; did you mean offline?"),
        ("colour = 1", "unknown key 'colour' (known keys: cache_dir, offline"),
        ('aliases = "mine"', 'aliases must be tables, as in [aliases.my-encoder], not the string "mine"'),
        ('aliases = {mine = "x.tar.gz"}', '[aliases.mine] must be a table with a handle, not the string "x.tar.gz"'),
        ('[aliases.mine]\ntask = "text-embedding"', "[aliases.mine] needs a 'handle'"),
        ("[aliases.mine]\nhandle = 5", "[aliases.mine]: handle must be a string, not the integer 5"),
        ('[aliases.mine]\nhandle = "x.tar.gz"\noutput_dim = "512"', 'output_dim must be a positive integer, not the string "512"'),
        ('[aliases.mine]\nhandle = "x.tar.gz"\noutput_dim = true', "output_dim must be a positive integer, not the boolean true"),
        ('[aliases.mine]\nhandle = "x.tar.gz"\nimage_size = [224]', "image_size must be an integer or [height, width]"),
        ('[aliases.mine]\nhandle = "x.tar.gz"\ntask = 3', "task must be a string"),
        ('[aliases."a/b"]\nhandle = "x.tar.gz"', "an alias is a bare name"),
    ],
)
def test_each_bad_key_is_one_usage_error_naming_it(config_file, text, fragment):
    config_file.write_text(text + "\n")
    with pytest.raises(UsageError) as raised:
        Settings.load()
    assert str(raised.value).startswith(f"config file {config_file}")
    assert fragment in str(raised.value)


def test_bad_config_through_the_cli_is_exit_2_with_one_line(config_file):
    config_file.write_text('trusted_hosts = "127.0.0.1"\n')
    for args in (["list"], ["pull", "mobilenet_v2", "--offline"], ["cache", "ls"]):
        done = run_hubcli(*args)
        assert done.returncode == 2, done.stderr
        assert "trusted_hosts must be a list of host names" in error_line(done)
        assert done.stderr.count("\n") == 1


def test_good_config_values_are_used(config_file, tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    config_file.write_text(
        'cache_dir = "hub-cache"\noffline = true\nmirror = "https://m.example/hub"\n'
        'trusted_hosts = ["models.example.com", "10.0.0.7"]\nca_bundle = "ca.pem"\n'
        '[aliases.mine]\nhandle = "https://m.example/enc.tar.gz"\nimage_size = 96\noutput_dim = 8\n'
    )
    settings = Settings.load()
    # Relative paths in the file are relative to the file, not to wherever hubcli runs.
    assert settings.cache_dir == tmp_path / "hub-cache"
    assert settings.ca_bundle == bundle
    assert settings.offline is True and settings.mirror == "https://m.example/hub"
    assert settings.trusted_hosts[-2:] == ("models.example.com", "10.0.0.7")
    assert settings.user_aliases["mine"]["output_dim"] == 8


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("HUBCLI_OFFLINE", "maybe", "HUBCLI_OFFLINE='maybe' is not a boolean"),
        ("HUBCLI_TRUSTED_HOSTS", "https://a.host", "HUBCLI_TRUSTED_HOSTS: 'https://a.host' is not a host name"),
        ("HUBCLI_TIMEOUT", "soon", "HUBCLI_TIMEOUT='soon' must be a number greater than 0"),
        ("HUBCLI_TIMEOUT", "0", "HUBCLI_TIMEOUT='0' must be a number greater than 0"),
        ("REQUESTS_CA_BUNDLE", "/no/such/ca.pem", "REQUESTS_CA_BUNDLE /no/such/ca.pem: no such file"),
        ("SSL_CERT_FILE", "/no/such/ca.pem", "SSL_CERT_FILE /no/such/ca.pem: no such file"),
    ],
)
def test_bad_environment_values_are_usage_errors(config_file, monkeypatch, name, value, fragment):
    monkeypatch.setenv(name, value)
    with pytest.raises(UsageError, match="^" + fragment.replace("(", r"\(")):
        Settings.load()


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("HUBCLI_RETRIES", "three", "HUBCLI_RETRIES='three' must be a whole number of at least 0"),
        ("HUBCLI_READ_TIMEOUT", "-1", "HUBCLI_READ_TIMEOUT='-1' must be a number greater than 0"),
        ("HUBCLI_CONNECT_TIMEOUT", "nan", "HUBCLI_CONNECT_TIMEOUT='nan' must be a number"),
        ("HUBCLI_MAX_EXTRACT_BYTES", "20G", "HUBCLI_MAX_EXTRACT_BYTES='20G' must be a whole number of at least 1"),
    ],
)
def test_bad_tuning_variables_are_exit_2_not_internal_errors(config_file, tmp_path, monkeypatch, name, value, fragment):
    from tests.helpers.hubserver import make_fake_module_archive

    archive = make_fake_module_archive(tmp_path / "m.tar.gz")
    monkeypatch.setenv(name, value)
    url = "http://127.0.0.1:9/m.tar.gz" if name != "HUBCLI_MAX_EXTRACT_BYTES" else str(archive)
    done = run_hubcli("pull", url, "--cache-dir", tmp_path / "cache")
    assert done.returncode == 2, done.stderr
    assert error_line(done).startswith(f"error: {fragment}")


def test_relative_cache_dir_gives_absolute_paths(config_file, tmp_path, monkeypatch):
    from tests.helpers.hubserver import make_fake_module_archive

    archive = make_fake_module_archive(tmp_path / "m.tar.gz")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    done = run_hubcli("pull", archive, "--cache-dir", "rel-cache")
    assert done.returncode == 0, done.stderr
    printed = Path(done.stdout.splitlines()[-1])
    assert printed.is_absolute() and printed.parent == work / "rel-cache"
    document = json.loads(run_hubcli("pull", archive, "--cache-dir", "rel-cache", "--json").stdout)
    assert document["path"] == str(printed)
    monkeypatch.setenv("HUBCLI_CACHE_DIR", "env-cache")
    listed = json.loads(run_hubcli("cache", "ls", "--json").stdout)
    assert listed["cache_dir"] == str(work / "env-cache")
    monkeypatch.chdir(tmp_path)  # The printed path still names the module from anywhere.
    assert (printed / "saved_model.pb").is_file()
