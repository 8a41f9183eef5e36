"""`hubcli cache ls | verify | rm | prune` on a real cache filled by real pulls."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from hubcli.hub.pull import pull
from tests.helpers.cli_run import run_hubcli
from tests.helpers.hubserver import make_fake_module_archive

# The local hub server and module-archive fixtures.
pytest_plugins = ["tests.helpers.hubserver"]

HANDLE = "https://tfhub.dev/google/tiny/1"
OTHER = "https://tfhub.dev/google/other/2"


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def _age(path, days: float) -> None:
    then = time.time() - days * 86400
    os.utime(path, (then, then))


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _two_entries(hub, fake_archive, tmp_path):
    hub.add_tfhub_module("google/tiny/1", fake_archive)
    hub.add_tfhub_module("google/other/2", make_fake_module_archive(tmp_path / "other.tgz", payload_bytes=50_000, seed=5))
    return pull(HANDLE, progress=False), pull(OTHER, progress=False)


def test_ls_lists_sizes_and_last_use(hub, fake_archive, tmp_path):
    first, second = _two_entries(hub, fake_archive, tmp_path)
    _age(hub.cache_dir / f"{first.path.name}.hubcli.json", 3)
    document = json.loads(run_hubcli("cache", "ls", "--json").stdout)
    assert document["schema"] == "hubcli.cache.ls/1"
    entries = {e["handle"]: e for e in document["entries"]}
    assert set(entries) == {HANDLE, OTHER}
    on_disk = sum(f.stat().st_size for f in first.path.rglob("*") if f.is_file())
    assert entries[HANDLE]["disk_bytes"] == on_disk and entries[HANDLE]["sha256"] == first.sha256
    assert entries[HANDLE]["last_used"] < entries[OTHER]["last_used"]
    assert document["total_bytes"] == sum(e["disk_bytes"] for e in document["entries"])
    # A cache hit refreshes the last use.
    pull(HANDLE, progress=False)
    document = json.loads(run_hubcli("cache", "ls", "--json").stdout)
    assert {e["handle"]: e for e in document["entries"]}[HANDLE]["last_used"] >= entries[OTHER]["last_used"]
    human = run_hubcli("cache", "ls")
    assert human.returncode == 0 and "tiny" in human.stdout and "hubcli" in human.stdout


def test_rm_by_handle_and_by_prefix(hub, fake_archive, tmp_path):
    first, second = _two_entries(hub, fake_archive, tmp_path)
    done = run_hubcli("cache", "rm", HANDLE)  # Not a TTY and no --yes: refuses, deletes nothing.
    assert done.returncode == 2 and "--yes" in done.stderr and first.path.exists()
    assert run_hubcli("cache", "rm", HANDLE, "--dry-run").returncode == 0 and first.path.exists()
    assert run_hubcli("cache", "rm", HANDLE, "--yes").returncode == 0
    assert sorted(p.name for p in hub.cache_dir.iterdir() if p.name.startswith(first.path.name)) == []
    document = json.loads(run_hubcli("cache", "rm", second.path.name[:8], "--yes", "--json").stdout)
    assert document["removed"][0]["handle"] == OTHER and document["freed_bytes"] > 0
    assert list(hub.cache_dir.iterdir()) == []
    done = run_hubcli("cache", "rm", HANDLE, "--yes")
    assert done.returncode == 3 and done.stderr.startswith("error: ") and "not in the cache" in done.stderr
    # An entry name prefix that matches nothing is not a misspelt alias.
    done = run_hubcli("cache", "rm", second.path.name[:8], "--yes")
    assert done.returncode == 3 and done.stderr == f"error: {second.path.name[:8]} is not in the cache ({hub.cache_dir})\n"


def test_prune_removes_leftovers_but_not_live_work(hub, fake_archive, tmp_path):
    first, second = _two_entries(hub, fake_archive, tmp_path)
    cache = hub.cache_dir
    stale_part = cache / f"{_sha1('https://tfhub.dev/a/b/1')}.part"
    stale_part.write_bytes(b"x" * 100)
    _age(stale_part, 10)
    stale_record = cache / f"{stale_part.name}.json"  # What the partial download is a part of: goes with it.
    stale_record.write_text("{}")
    fresh_part = cache / f"{_sha1('https://tfhub.dev/a/c/1')}.part"
    fresh_part.write_bytes(b"x" * 100)
    fresh_record = cache / f"{fresh_part.name}.json"
    fresh_record.write_text("{}")
    orphan_record = cache / f"{_sha1('https://tfhub.dev/a/f/1')}.part.json"
    orphan_record.write_text("{}")
    temp_dir = cache / f"{first.path.name}.0badc0de.tmp"
    (temp_dir / "variables").mkdir(parents=True)
    dead_lock = cache / f"{_sha1('https://tfhub.dev/a/d/1')}.lock"
    dead_lock.write_text(json.dumps({"host": socket.gethostname(), "pid": _dead_pid()}))
    orphan = cache / f"{_sha1('https://tfhub.dev/a/e/1')}.hubcli.json"
    orphan.write_text("{}")
    unrenamed = cache / f".{first.path.name}.hubcli.json.0badc0de.tmp"
    unrenamed.write_text("{")
    _age(unrenamed, 1)
    # A download in progress: live lock (ours), its .part and temp dir must survive.
    busy = _sha1("https://tfhub.dev/a/busy/1")
    (cache / f"{busy}.lock").write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}))
    busy_part = cache / f"{busy}.part"
    busy_part.write_bytes(b"y")
    _age(busy_part, 30)
    busy_temp = cache / f"{busy}.abc123.tmp"
    busy_temp.mkdir()

    preview = json.loads(run_hubcli("cache", "prune", "--dry-run", "--json").stdout)
    kinds = sorted((i["kind"], os.path.basename(i["path"])) for i in preview["items"])
    assert kinds == sorted(
        [
            ("partial download", stale_part.name),
            ("temp dir", temp_dir.name),
            ("orphan lock", dead_lock.name),
            ("orphan metadata", orphan.name),
            ("orphan metadata", orphan_record.name),
            ("temp file", unrenamed.name),
        ]
    )
    assert stale_part.exists() and temp_dir.exists()  # --dry-run deletes nothing.
    assert run_hubcli("cache", "prune").returncode == 2  # Needs --yes off a TTY.

    assert run_hubcli("cache", "prune", "--yes").returncode == 0
    for gone in (stale_part, stale_record, orphan_record, temp_dir, dead_lock, orphan, unrenamed):
        assert not gone.exists()
    for kept in (fresh_part, fresh_record, busy_part, busy_temp, first.path, second.path):
        assert kept.exists()
    assert run_hubcli("cache", "verify").returncode == 0


def test_prune_older_than_removes_idle_entries(hub, fake_archive, tmp_path):
    first, second = _two_entries(hub, fake_archive, tmp_path)
    _age(hub.cache_dir / f"{first.path.name}.hubcli.json", 40)
    document = json.loads(run_hubcli("cache", "prune", "--older-than", "30", "--yes", "--json").stdout)
    assert [(i["kind"], i["path"]) for i in document["items"]] == [("entry", str(first.path))]
    assert not first.path.exists() and second.path.exists()
    assert not (hub.cache_dir / f"{first.path.name}.hubcli.json").exists()


def test_verify_all_ok_and_unverified_tensorflow_hub_entry(hub, fake_archive, tmp_path):
    _two_entries(hub, fake_archive, tmp_path)
    foreign = hub.cache_dir / _sha1("https://tfhub.dev/x/y/1")
    foreign.mkdir()
    (foreign / "saved_model.pb").write_bytes(b"\x08\x01")
    document = json.loads(run_hubcli("cache", "verify", "--json").stdout)
    assert sorted(e["status"] for e in document["entries"]) == ["ok", "ok", "unverified"]
    assert document["damaged"] == 0


@contextlib.contextmanager
def _read_only_copy(cache_dir, where):
    """A read-only copy of ``cache_dir``: a read-only mount for root (whom file modes do not stop), else modes."""
    if os.geteuid() != 0:
        shutil.copytree(cache_dir, where)
        os.chmod(where, 0o555)
        try:
            yield where
        finally:
            os.chmod(where, 0o755)
        return
    where.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(where)], capture_output=True).returncode:
        pytest.skip("running as root, and cannot mount a read-only file system here")
    try:
        shutil.copytree(cache_dir, where, dirs_exist_ok=True)
        subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True)
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


def test_rm_and_prune_on_a_read_only_cache_are_one_line(hub, fake_archive, tmp_path):
    hub.add_tfhub_module("google/tiny/1", fake_archive)
    pull(HANDLE, progress=False)
    with _read_only_copy(hub.cache_dir, tmp_path / "ro") as cache:
        for args in (["rm", HANDLE], ["prune", "--older-than", "0"]):
            done = run_hubcli("cache", *args, "--yes", "--cache-dir", str(cache))
            assert done.returncode == 1 and done.stderr.startswith("error: cannot delete"), done.stderr
            assert done.stderr.count("\n") == 1
        assert run_hubcli("pull", HANDLE, "--cache-dir", str(cache)).returncode == 0  # Still served from the cache.
