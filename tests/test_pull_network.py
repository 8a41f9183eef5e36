"""`pull` against a hostile or broken network, end to end through the CLI: splices, kills, slow servers."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.helpers.cli_run import error_line, run_hubcli
from tests.helpers.hubserver import wait_for_part

# The local hub server and module-archive fixtures.
pytest_plugins = ["tests.helpers.hubserver"]

HANDLE = "https://tfhub.dev/google/tiny/1"


def _sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _entry(hub, handle=HANDLE) -> Path:
    return hub.cache_dir / hashlib.sha1(handle.encode()).hexdigest()


def _plain_tar(path: Path, seed: int, size: int = 300_000) -> Path:
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("saved_model.pb")
        info.size = size
        tar.addfile(info, io.BytesIO(random.Random(seed).randbytes(size)))
    return path


def test_a_module_that_changed_between_two_pulls_is_installed_whole_never_spliced(hub, tmp_path, monkeypatch):
    old, new = _plain_tar(tmp_path / "v1.tar", 1), _plain_tar(tmp_path / "v2.tar", 2)
    hub.add_tfhub_module("google/tiny/1", old)
    hub.faults, hub.stall_seconds = ["partial:100000"], 0.1
    monkeypatch.setenv("HUBCLI_RETRIES", "0")
    assert run_hubcli("pull", HANDLE).returncode == 4  # The first attempt loses its connection.
    os.utime(new, (old.stat().st_mtime + 100,) * 2)
    hub.replace_file("tiny-1.tar.gz", new)

    done = run_hubcli("pull", HANDLE, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["sha256"] == _sha(new)
    with tarfile.open(new) as tar:
        expected = tar.extractfile("saved_model.pb").read()
    assert (_entry(hub) / "saved_model.pb").read_bytes() == expected
    assert run_hubcli("cache", "verify").returncode == 0


def test_kill_9_keeps_every_byte_that_arrived(hub, fake_archive):
    hub.add_tfhub_module("google/tiny/1", fake_archive)
    hub.faults, hub.stall_seconds = ["partial:3000"], 30  # A few kilobytes, then the server says nothing.
    part = _entry(hub).with_name(_entry(hub).name + ".part")
    proc = subprocess.Popen([sys.executable, "-m", "hubcli", "pull", HANDLE], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for_part(part, 3000, proc, timeout=30)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert part.stat().st_size == 3000  # Nothing was waiting in a buffer when the process died.

    done = run_hubcli("pull", HANDLE, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["sha256"] == _sha(fake_archive)
    assert hub.storage_gets()[-1].headers["Range"] == "bytes=3000-"


def test_timeout_option_ends_a_pull_that_trickles_with_one_line(hub, fake_archive, monkeypatch):
    hub.add_tfhub_module("google/tiny/1", fake_archive)
    hub.faults = ["trickle"] * 10
    monkeypatch.setenv("HUBCLI_SPEED_LIMIT", "0")
    done = run_hubcli("pull", HANDLE, "--timeout", "2")
    assert done.returncode == 4, done.stderr
    line = error_line(done)
    assert "gave up after --timeout 2 s" in line and "received" in line and done.stderr.count("\n") == 1
    part = _entry(hub).with_name(_entry(hub).name + ".part")
    assert part.exists()  # Kept: the next pull resumes it.


def test_speed_limit_from_the_environment_ends_a_trickle(hub, fake_archive, monkeypatch):
    hub.add_tfhub_module("google/tiny/1", fake_archive)
    hub.faults = ["trickle"] * 10
    monkeypatch.setenv("HUBCLI_SPEED_LIMIT", "2000")
    monkeypatch.setenv("HUBCLI_SPEED_TIME", "1")
    monkeypatch.setenv("HUBCLI_RETRIES", "1")
    done = run_hubcli("pull", HANDLE)
    assert done.returncode == 4, done.stderr
    assert "transfer slower than 2000 bytes/s for 1 s" in error_line(done) and "gave up after 2 attempts" in error_line(done)


@pytest.mark.parametrize(
    "args, code, fragment",
    [
        (["--timeout", "0"], 2, "--timeout must be a positive number of seconds"),
        (["--timeout", "-3"], 2, "--timeout must be a positive number of seconds"),
        (["--ca-bundle", "/no/such/ca.pem"], 2, "--ca-bundle /no/such/ca.pem: no such file"),
    ],
)
def test_bad_network_options_are_usage_errors(hub, fake_archive, args, code, fragment):
    hub.add_tfhub_module("google/tiny/1", fake_archive)
    done = run_hubcli("pull", HANDLE, *args)
    assert done.returncode == code and fragment in error_line(done)


def test_html_login_page_through_pull_is_exit_7_and_leaves_nothing(hub, tmp_path):
    url = hub.put_page("/models/encoder", 200, "<!doctype html><title>Log in</title>", {"Content-Type": "text/html"})
    done = run_hubcli("pull", url)
    assert done.returncode == 7
    assert error_line(done).startswith(f"error: {url} is an HTML page (text/html), not a module archive")
    assert sorted(p.name for p in hub.cache_dir.iterdir() if not p.name.endswith(".lock")) == []


def test_redirect_to_a_file_url_through_pull_is_one_line(hub):
    url = hub.put_page("/models/evil", 302, headers={"Location": "file:///etc/passwd"})
    done = run_hubcli("pull", url)
    assert done.returncode == 4 and "redirected to file:///etc/passwd, which is not http(s)" in error_line(done)


def test_any_http_url_is_pulled_by_the_content_it_serves(hub, fake_archive):
    url = hub.put_page("/models/foo/1", 200, fake_archive.read_bytes(), {"Content-Type": "application/octet-stream"})
    done = run_hubcli("pull", url, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["sha256"] == _sha(fake_archive)
    assert hub.requests_to("/models/foo/1")[0].query == {"tf-hub-format": "compressed"}
    assert (_entry(hub, url) / "saved_model.pb").is_file()  # tensorflow_hub's cache directory for that URL


# --- Kaggle's answers ---------------------------------------------------------------------------------------------

KAGGLE_LATEST = "acme/tiny/tensorflow2/default"


@pytest.mark.parametrize(
    "answer, shown",
    [
        (b"null", "null"),
        (b"3", "3"),
        (b'"latest"', '"latest"'),
        (b"[]", "[]"),
        (b"{}", "{}"),
        (b'{"versionNumber": "latest"}', '{"versionNumber": "latest"}'),
        (b'{"versionNumber": null}', '{"versionNumber": null}'),
        (b'{"versionNumber": 0}', '{"versionNumber": 0}'),
        (b'{"versionNumber": true}', '{"versionNumber": true}'),
        (b'{"versionNumber": 2.5}', '{"versionNumber": 2.5}'),
    ],
)
def test_a_malformed_latest_version_answer_is_the_servers_fault(hub, answer, shown):
    hub.kaggle_latest_answers[KAGGLE_LATEST] = answer
    done = run_hubcli("pull", KAGGLE_LATEST)
    assert done.returncode == 4, done.stderr
    line = error_line(done)
    assert line.endswith(f"/get: the server's answer names no version number: {shown}")
    assert "internal error" not in line and "is a number" not in line


def test_a_latest_version_answer_that_is_not_json_names_what_came(hub):
    hub.kaggle_latest_answers[KAGGLE_LATEST] = b"<html>maintenance</html>"
    done = run_hubcli("pull", KAGGLE_LATEST)
    assert done.returncode == 4 and "did not answer JSON (it sent '<html>maintenance</html>')" in error_line(done)


def test_a_well_formed_latest_version_is_used(hub, fake_archive):
    hub.add_kaggle_module(KAGGLE_LATEST, 4, fake_archive)
    hub.kaggle_latest_answers[KAGGLE_LATEST] = b'{"versionNumber": "4", "other": 1}'
    done = run_hubcli("pull", KAGGLE_LATEST, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["sha256"] == _sha(fake_archive)
