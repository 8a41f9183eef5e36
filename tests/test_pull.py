"""`pull` end to end: cache layout, integrity pins, offline and mirror modes, concurrency, kill -9."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from hubcli.errors import IntegrityError, NotFoundError
from hubcli.hub.cache import read_entry
from hubcli.hub.pull import pull, resolve_module_path
from tests.helpers.cli_run import error_line, run_hubcli
from tests.helpers.hubserver import make_fake_module_archive, wait_for_part, write_partial

# The local hub server and module-archive fixtures.
pytest_plugins = ["tests.helpers.hubserver"]

HANDLE = "https://tfhub.dev/google/tiny/1"


def _sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


# --- layout and basic behaviour -------------------------------------------------------


def test_pull_installs_tensorflow_hub_layout_with_manifest(hub, fake_archive):
    hub.add_tfhub_module("google/tiny/1", fake_archive)
    result = pull(HANDLE, progress=False)
    cache = hub.cache_dir
    assert result.path == cache / _sha1(HANDLE)  # tensorflow_hub's directory name
    assert result.sha256 == _sha(fake_archive) and result.size == fake_archive.stat().st_size
    assert not result.from_cache and "X-Goog-Signature" in result.resolved_url
    descriptor = (cache / f"{_sha1(HANDLE)}.descriptor.txt").read_text()
    assert descriptor.splitlines()[0] == f"Module: {HANDLE}"
    assert descriptor.splitlines()[2].startswith("Downloader Hostname: ")
    sidecar = json.loads((cache / f"{_sha1(HANDLE)}.hubcli.json").read_text())
    assert sidecar["sha256"] == result.sha256 and sidecar["handle"] == HANDLE
    assert sidecar["files"]["saved_model.pb"]["sha256"] == _sha(result.path / "saved_model.pb")
    # Nothing but the entry, its descriptor and its sidecar: no lock, .part or temp dir left.
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        [_sha1(HANDLE), f"{_sha1(HANDLE)}.descriptor.txt", f"{_sha1(HANDLE)}.hubcli.json"]
    )


def test_second_pull_is_served_from_cache_without_network(hub, fake_archive):
    hub.add_tfhub_module("google/tiny/1", fake_archive)
    first = pull(HANDLE, progress=False)
    before = len(hub.log)
    second = pull(HANDLE, progress=False)
    assert second.from_cache and second.path == first.path and second.sha256 == first.sha256
    assert len(hub.log) == before


def test_real_module_pulled_loads_with_tensorflow(hub, tiny_image_archive):
    import numpy as np
    import tensorflow as tf

    hub.add_tfhub_module("google/tiny_image/1", tiny_image_archive)
    path = pull("https://tfhub.dev/google/tiny_image/1", progress=False).path
    module = tf.saved_model.load(str(path))
    features = module(np.zeros((2, 32, 32, 3), np.float32), training=False)
    assert features.shape == (2, 8)


def test_kaggle_handle_without_version_gets_the_latest(hub, fake_archive, tmp_path):
    older = make_fake_module_archive(tmp_path / "v1.tar.gz", seed=1)
    hub.add_kaggle_module("acme/tiny/tensorflow2/default", 1, older)
    hub.add_kaggle_module("acme/tiny/tensorflow2/default", 2, fake_archive)
    result = pull("acme/tiny/TensorFlow2/default", progress=False)
    assert result.sha256 == _sha(fake_archive)
    key = "https://www.kaggle.com/models/acme/tiny/frameworks/TensorFlow2/variations/default/versions/2"
    assert result.path.name == _sha1(key)


def test_local_directory_is_used_in_place(tmp_path, monkeypatch):
    monkeypatch.setenv("HUBCLI_CACHE_DIR", str(tmp_path / "cache"))
    module = tmp_path / "my_module"
    module.mkdir()
    (module / "saved_model.pb").write_bytes(b"x")
    assert resolve_module_path(str(module)) == module.resolve()
    assert not (tmp_path / "cache").exists()


def test_local_archive_is_installed_into_the_cache(tmp_path, monkeypatch, fake_archive):
    monkeypatch.setenv("HUBCLI_CACHE_DIR", str(tmp_path / "cache"))
    result = pull(str(fake_archive), progress=False)
    assert result.path.parent == tmp_path / "cache" and (result.path / "saved_model.pb").is_file()
    assert result.sha256 == _sha(fake_archive) and fake_archive.exists()


def test_untrusted_host_warns(hub, fake_archive, monkeypatch):
    url = hub.put_file("m.tar.gz", fake_archive).replace("127.0.0.1", "localhost")
    done = run_hubcli("pull", url)
    assert done.returncode == 0
    assert "not a trusted host" in done.stderr and "localhost" in done.stderr
    monkeypatch.setenv("HUBCLI_TRUSTED_HOSTS", "localhost")
    done = run_hubcli("pull", url, "--force")
    assert done.returncode == 0 and "not a trusted host" not in done.stderr


def test_stale_part_from_another_file_is_discarded_and_redownloaded(hub, fake_archive):
    hub.add_tfhub_module("google/tiny/1", fake_archive)
    part = hub.cache_dir / f"{_sha1(HANDLE)}.part"
    # Its record matches the server's file, but its bytes do not (a disk error, a server that lied).
    write_partial(part, fake_archive, 0, content=b"garbage from an older build" * 100)
    result = pull(HANDLE, progress=False)
    assert result.sha256 == _sha(fake_archive)
    assert [r.headers.get("Range") for r in hub.storage_gets()] == ["bytes=2700-", None]
    assert not part.exists()


def test_malicious_archive_over_http_leaves_nothing(hub, tmp_path):
    import io
    import tarfile

    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        for name in ("saved_model.pb", "../../outside.txt"):
            info = tarfile.TarInfo(name)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
    hub.add_tfhub_module("google/tiny/1", evil)
    line = error_line(run_hubcli("pull", HANDLE), 6, alone=True)
    assert "outside the module" in line
    assert list(hub.cache_dir.iterdir()) == []
    assert not (tmp_path / "outside.txt").exists()


def test_download_that_is_not_a_module_names_the_handle_not_the_part_file(hub, tmp_path):
    page = tmp_path / "login.html"
    page.write_text("<html>Sign in to continue</html>")  # What a captive portal or an expired login serves.
    hub.add_tfhub_module("google/tiny/1", page)
    line = error_line(run_hubcli("pull", HANDLE), 7, alone=True)
    assert line.startswith(f"error: {HANDLE} is an HTML page (application/gzip), not a module archive") and ".part" not in line
    assert list(hub.cache_dir.iterdir()) == []


def test_package_attribute_pull_is_callable_after_submodule_import(tmp_path, monkeypatch, fake_archive):
    import hubcli
    import hubcli.hub.pull  # noqa: F401 - rebinds the package attribute to the submodule

    monkeypatch.setenv("HUBCLI_CACHE_DIR", str(tmp_path / "cache"))
    assert hubcli.hub.pull(str(fake_archive), progress=False).sha256 == _sha(fake_archive)


# --- integrity: --sha256 and hubcli.lock ----------------------------------------------------


def test_sha256_pin_mismatch_installs_nothing(hub, fake_archive):
    hub.add_tfhub_module("google/tiny/1", fake_archive)
    with pytest.raises(IntegrityError, match="pinned sha256"):
        pull(HANDLE, sha256="0" * 64, progress=False)
    assert sorted(p.name for p in hub.cache_dir.iterdir()) == []
    assert pull(HANDLE, sha256=_sha(fake_archive), progress=False).sha256 == _sha(fake_archive)


def test_lockfile_records_then_enforces(hub, fake_archive, tmp_path):
    hub.add_tfhub_module("google/tiny/1", fake_archive)
    lockfile = tmp_path / "hubcli.lock"
    done = run_hubcli("pull", HANDLE, "--update-lock", "--lockfile", str(lockfile))
    assert done.returncode == 0, done.stderr
    assert f'"{HANDLE}" = "{_sha(fake_archive)}"' in lockfile.read_text()
    assert run_hubcli("pull", HANDLE, "--locked", "--lockfile", str(lockfile)).returncode == 0

    lockfile.write_text(lockfile.read_text().replace(_sha(fake_archive), "ab" * 32))
    line = error_line(run_hubcli("pull", HANDLE, "--locked", "--lockfile", str(lockfile)), 5, alone=True)
    assert "ab" * 32 in line

    line = error_line(run_hubcli("pull", "https://tfhub.dev/google/other/1", "--locked", "--lockfile", str(lockfile)), 5, alone=True)
    assert "no entry for https://tfhub.dev/google/other/1" in line
    error_line(run_hubcli("pull", HANDLE, "--locked", "--lockfile", str(tmp_path / "missing.lock")), 2, alone=True)


def test_locked_pull_downloads_and_checks_when_not_cached(hub, fake_archive, tmp_path):
    hub.add_tfhub_module("google/tiny/1", fake_archive)
    lockfile = tmp_path / "hubcli.lock"
    lockfile.write_text(f'version = 1\n[modules]\n"{HANDLE}" = "{"cd" * 32}"\n')
    with pytest.raises(IntegrityError):
        pull(HANDLE, locked=True, lockfile=lockfile, progress=False)
    assert read_entry(hub.cache_dir, _sha1(HANDLE)) is None


# --- offline mode ---------------------------------------------------------------------------


def test_offline_serves_cache_and_names_missing_handle(hub, fake_archive, monkeypatch):
    hub.add_tfhub_module("google/tiny/1", fake_archive)
    pull(HANDLE, progress=False)
    before = len(hub.log)
    monkeypatch.setenv("HUBCLI_OFFLINE", "1")
    assert pull(HANDLE, progress=False).from_cache
    line = error_line(run_hubcli("pull", "https://tfhub.dev/google/absent/3"), 4, alone=True)
    assert "offline" in line and "https://tfhub.dev/google/absent/3" in line
    assert len(hub.log) == before  # Not one request.


def test_offline_damaged_entry_is_one_clear_error(hub, fake_archive, monkeypatch):
    hub.add_tfhub_module("google/tiny/1", fake_archive)
    path = pull(HANDLE, progress=False).path
    (path / "saved_model.pb").unlink()
    monkeypatch.setenv("HUBCLI_OFFLINE", "1")
    line = error_line(run_hubcli("pull", HANDLE), 4, alone=True)
    assert "damaged" in line and "missing saved_model.pb" in line


def test_offline_finds_entries_installed_by_tensorflow_hub(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    handle = "https://tfhub.dev/google/made-by-tfhub/2"
    module = cache / _sha1(handle)
    (module / "variables").mkdir(parents=True)
    (module / "saved_model.pb").write_bytes(b"\x08\x01")
    # What tensorflow_hub 0.16.1 writes beside the module; no hubcli sidecar.
    (cache / f"{_sha1(handle)}.descriptor.txt").write_text(
        f"Module: {handle}\nDownload Time: 2024-01-01 00:00:00\nDownloader Hostname: box (PID:1)"
    )
    monkeypatch.setenv("HUBCLI_CACHE_DIR", str(cache))
    monkeypatch.setenv("HUBCLI_TFHUB_ENDPOINT", "http://127.0.0.1:9")  # Never contacted.
    done = run_hubcli("pull", handle, "--offline", "--json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["path"] == str(module) and document["from_cache"] is True and document["sha256"] is None
    listing = json.loads(run_hubcli("cache", "ls", "--json").stdout)
    assert [(e["handle"], e["origin"]) for e in listing["entries"]] == [(handle, "tensorflow_hub")]


def test_offline_kaggle_latest_is_highest_cached_version(hub, fake_archive, tmp_path, monkeypatch):
    hub.add_kaggle_module("acme/tiny/tensorflow2/default", 1, make_fake_module_archive(tmp_path / "a.tgz", seed=3))
    hub.add_kaggle_module("acme/tiny/tensorflow2/default", 2, fake_archive)
    pull("acme/tiny/tensorflow2/default/1", progress=False)
    pull("acme/tiny/tensorflow2/default/2", progress=False)
    monkeypatch.setenv("HUBCLI_OFFLINE", "1")
    assert pull("acme/tiny/tensorflow2/default", progress=False).sha256 == _sha(fake_archive)


# --- mirror mode ---------------------------------------------------------------------------


def _publish(root, registry_path, version, archive):
    from hubcli.hub import registry

    registry.add_version(root, registry_path, version, archive, {"task": "test"})


def test_mirror_directory_serves_hub_handles_without_network(hub, fake_archive, tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    _publish(mirror, "google/tiny", "1", fake_archive)
    monkeypatch.setenv("HUBCLI_MIRROR", str(mirror))
    result = pull(HANDLE, progress=False)
    assert result.sha256 == _sha(fake_archive)
    assert result.path.name == _sha1(HANDLE)  # Same cache entry as a pull from tfhub.dev.
    assert hub.log == []


def test_mirror_over_http_and_its_index_sha256_is_enforced(hub, fake_archive, tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    _publish(mirror, "google/tiny", "1", fake_archive)
    hub.mirror_root = mirror
    monkeypatch.setenv("HUBCLI_MIRROR", f"{hub.base_url}/mirror")
    assert pull(HANDLE, progress=False).sha256 == _sha(fake_archive)
    assert len(hub.requests_to("/mirror/google/tiny/1.tar.gz")) == 1 and hub.requests_to("/tfhub/") == []
    before = len(hub.log)
    assert pull(HANDLE, progress=False).from_cache and len(hub.log) == before  # A hit asks nobody, not even the index.

    # A mirror whose archive no longer matches its index is refused.
    (mirror / "google/tiny/1.tar.gz").write_bytes(make_fake_module_archive(tmp_path / "x.tgz", seed=9).read_bytes())
    line = error_line(run_hubcli("pull", HANDLE, "--force"), 5, alone=True)
    assert "mirror index" in line


def test_mirror_without_the_module_names_it(hub, fake_archive, tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    _publish(mirror, "google/other", "1", fake_archive)
    monkeypatch.setenv("HUBCLI_MIRROR", str(mirror))
    with pytest.raises(NotFoundError, match="google/tiny"):
        pull(HANDLE, progress=False)


# --- damage and repair -------------------------------------------------------------------------


def test_deleted_file_is_reported_by_verify_and_repaired_by_pull(hub, fake_archive):
    hub.add_tfhub_module("google/tiny/1", fake_archive)
    path = pull(HANDLE, progress=False).path
    (path / "variables" / "variables.index").unlink()  # What a temp cleaner does.
    line = error_line(run_hubcli("cache", "verify"), 5, alone=True)
    assert "1 of 1" in line
    report = json.loads(run_hubcli("cache", "verify", "--json").stdout)
    assert report["entries"][0]["problems"] == ["missing variables/variables.index"]
    done = run_hubcli("pull", HANDLE)
    assert done.returncode == 0 and done.stderr.count("damaged") == 1, done.stderr  # Said once, not once per look.
    assert done.stdout.splitlines()[-1] == str(path)
    assert run_hubcli("cache", "verify").returncode == 0
    assert len(hub.storage_gets()) == 2


def test_flipped_byte_is_repaired_by_pull(hub, fake_archive):
    hub.add_tfhub_module("google/tiny/1", fake_archive)
    path = pull(HANDLE, progress=False).path
    target = path / "saved_model.pb"
    data = bytearray(target.read_bytes())
    data[1000] ^= 0xFF
    target.write_bytes(bytes(data))
    assert not pull(HANDLE, progress=False).from_cache
    assert _sha(target) == json.loads((hub.cache_dir / f"{path.name}.hubcli.json").read_text())["files"]["saved_model.pb"]["sha256"]


def test_silent_bit_rot_is_found_by_verify_and_fixed_by_force(hub, fake_archive):
    hub.add_tfhub_module("google/tiny/1", fake_archive)
    path = pull(HANDLE, progress=False).path
    target = path / "saved_model.pb"
    stat = target.stat()
    data = bytearray(target.read_bytes())
    data[7] ^= 0x01
    target.write_bytes(bytes(data))
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # Same size, same mtime: invisible to stat.
    report = json.loads(run_hubcli("cache", "verify", "--json").stdout)
    assert report["damaged"] == 1 and "saved_model.pb content changed" in report["entries"][0]["problems"][0]
    assert run_hubcli("pull", HANDLE, "--force").returncode == 0
    assert run_hubcli("cache", "verify").returncode == 0


# --- concurrency and interruption ---------------------------------------------------------------


def test_four_processes_pull_one_handle_with_one_download(hub, fake_archive, tmp_path):
    big = make_fake_module_archive(tmp_path / "big.tar.gz", payload_bytes=600_000)
    hub.add_tfhub_module("google/tiny/1", big)
    hub.throttle_bps = 600_000  # About a second per download, so the pulls overlap.
    procs = [
        subprocess.Popen([sys.executable, "-m", "hubcli", "pull", HANDLE], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], [err for _, err in outputs]
    assert {out.splitlines()[-1] for out, _ in outputs} == {str(hub.cache_dir / _sha1(HANDLE))}
    assert len(hub.storage_gets()) == 1
    assert run_hubcli("cache", "verify").returncode == 0


def test_kill_9_mid_download_then_pull_resumes_with_range(hub, tmp_path):
    big = make_fake_module_archive(tmp_path / "big.tar.gz", payload_bytes=3_000_000)
    hub.add_tfhub_module("google/tiny/1", big)
    hub.throttle_bps = 1_000_000
    part = hub.cache_dir / f"{_sha1(HANDLE)}.part"
    proc = subprocess.Popen([sys.executable, "-m", "hubcli", "pull", HANDLE], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for_part(part, 300_000, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    kept = part.stat().st_size
    assert 0 < kept < big.stat().st_size
    assert (hub.cache_dir / f"{_sha1(HANDLE)}.lock").exists()  # The dead process's lock is still there.

    hub.throttle_bps = None
    done = run_hubcli("pull", HANDLE, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["sha256"] == _sha(big)
    resumed = [r for r in hub.storage_gets() if "Range" in r.headers]
    assert resumed and int(resumed[-1].headers["Range"][6:-1]) >= kept and resumed[-1].status == 206
    assert not part.exists()
    assert run_hubcli("cache", "verify").returncode == 0


@pytest.mark.parametrize("sent, code, message", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_ctrl_c_or_kill_mid_download_is_one_line_then_pull_resumes(hub, tmp_path, sent, code, message):
    big = make_fake_module_archive(tmp_path / "big.tar.gz", payload_bytes=3_000_000)
    hub.add_tfhub_module("google/tiny/1", big)
    hub.throttle_bps = 1_000_000
    name = _sha1(HANDLE)
    part = hub.cache_dir / f"{name}.part"
    # A child of a shell job may inherit SIGINT as ignored; a user's Ctrl-C is never ignored.
    proc = subprocess.Popen(
        [sys.executable, "-m", "hubcli", "pull", HANDLE],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    wait_for_part(part, 300_000, proc)
    proc.send_signal(sent)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert err.splitlines() == [f"error: {message}"] and out == ""
    assert not (hub.cache_dir / name).exists() and not (hub.cache_dir / f"{name}.lock").exists()
    kept = part.stat().st_size
    assert 0 < kept < big.stat().st_size

    hub.throttle_bps = None
    done = run_hubcli("pull", HANDLE, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["sha256"] == _sha(big)
    assert int(hub.storage_gets()[-1].headers["Range"][6:-1]) >= kept


def _zeros_module_archive(path: Path, payload_bytes: int) -> Path:
    """A module archive that is tiny on the wire and ``payload_bytes`` once extracted."""
    import io
    import tarfile

    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("saved_model.pb")
        info.size = payload_bytes
        tar.addfile(info, io.BytesIO(bytes(payload_bytes)))
    return path


@pytest.mark.parametrize("phase", ["download", "extraction"])
def test_full_disk_is_one_line_and_leaves_nothing_behind(hub, tmp_path, phase):
    limit = 1_000_000
    if phase == "download":
        archive = make_fake_module_archive(tmp_path / "big.tar.gz", payload_bytes=3 * limit)
    else:
        archive = _zeros_module_archive(tmp_path / "zeros.tar.gz", 3 * limit)
    hub.add_tfhub_module("google/tiny/1", archive)
    # Files of this process cannot grow past `limit`: writes fail mid-way, as on a full disk.
    done = run_hubcli("pull", HANDLE, file_size_limit=limit)
    assert "cannot install" in error_line(done, 1, alone=True) and done.stdout == ""
    # A partial download the disk cannot hold must not keep the disk full.
    assert sorted(p.name for p in hub.cache_dir.iterdir()) == []


# --- CLI contract ---------------------------------------------------------------------------


def test_last_stdout_line_is_the_path_and_json_has_stable_keys(hub, fake_archive):
    hub.add_tfhub_module("google/tiny/1", fake_archive)
    done = run_hubcli("pull", HANDLE)
    assert done.returncode == 0
    path = Path(done.stdout.splitlines()[-1])
    assert (path / "saved_model.pb").is_file()
    document = json.loads(run_hubcli("pull", HANDLE, "--json").stdout)
    assert list(document) == ["schema", "handle", "resolved_url", "path", "sha256", "size", "from_cache"]
    assert document["schema"] == "hubcli.pull/1" and document["from_cache"] is True and document["path"] == str(path)


@pytest.mark.parametrize(
    "args, code, fragment",
    [
        (["https://tfhub.dev/google/absent/1"], 3, "not found"),
        (["https://tfhub.dev/google/tiny/1", "--sha256", "1234"], 2, "not a 64-digit"),
        (["https://tfhub.dev/google/tiny/1", "--sha256", "0" * 64], 5, "pinned sha256"),
        (["https://tfhub.dev/google/tiny/1", "--locked", "--update-lock"], 2, "use one of them"),
        (["ftp://example.com/x.tar.gz"], 2, "unsupported URL scheme"),
        (["./missing_module.tar.gz"], 3, "no such module"),
        (["https://tfhub.dev/google/tiny/1", "--offline", "--cache-dir", "EMPTY"], 4, "offline"),
    ],
    ids=["404", "bad-sha", "sha-mismatch", "locked-and-update", "scheme", "missing-path", "offline-miss"],
)
def test_every_error_is_one_stderr_line_and_nonzero(hub, fake_archive, tmp_path, args, code, fragment):
    hub.add_tfhub_module("google/tiny/1", fake_archive)
    args = [str(tmp_path / "empty") if a == "EMPTY" else a for a in args]
    done = run_hubcli("pull", *args)
    assert fragment in error_line(done, code, alone=True)
    assert done.stdout == ""


def test_cache_dir_that_is_a_file_is_named_as_such(hub, fake_archive, tmp_path):
    hub.add_tfhub_module("google/tiny/1", fake_archive)
    not_a_dir = tmp_path / "cache.txt"
    not_a_dir.write_text("notes")
    for args in (["pull", HANDLE], ["inspect", HANDLE]):
        line = error_line(run_hubcli(*args, "--cache-dir", str(not_a_dir)), 2, alone=True)
        assert line == f"error: cache directory {not_a_dir} is a file, not a directory"
    below = not_a_dir / "modules"  # Nothing can be cached there: not in the cache, rather than "damaged".
    assert "is not in the cache" in error_line(run_hubcli("pull", HANDLE, "--offline", "--cache-dir", str(below)), 4, alone=True)
    assert not_a_dir.read_text() == "notes"


def test_network_failure_after_retries_is_one_line(hub, monkeypatch):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("HUBCLI_TFHUB_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("HUBCLI_RETRIES", "1")
    line = error_line(run_hubcli("pull", HANDLE), 4, alone=True)
    assert "connection refused" in line and "gave up after 2 attempts" in line


@pytest.mark.parametrize(
    "argv",
    [["pull", HANDLE], ["cache", "ls"], ["cache", "verify"], ["cache", "prune", "--dry-run"], ["--help"],
     ["inspect", str(Path(__file__).parent / "data" / "tiny.tflite")]],
    ids=["pull", "ls", "verify", "prune", "help", "inspect-tflite"],
)
def test_no_tensorflow_import(hub, fake_archive, argv):
    hub.add_tfhub_module("google/tiny/1", fake_archive)
    probe = (
        "import sys\n"
        f"sys.argv = ['hubcli', *{argv!r}]\n"
        "from hubcli.cli.app import main\n"
        "try:\n    main()\nexcept SystemExit as done:\n    assert not done.code, done.code\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tensorflow_hub'))\n"
        "print('HEAVY', heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "HEAVY []"
