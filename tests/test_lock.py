"""The cross-process cache lock: exclusion, fast takeover from dead holders, heartbeats."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from hubcli.hub import filelock as lockmod
from hubcli.hub.filelock import FileLock, LockTimeoutError, holder_is_alive, process_start_time, read_owner


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _write_lock(path, **fields):
    path.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), **fields}))


def test_lock_excludes_a_second_holder_until_released(tmp_path):
    path = tmp_path / "x.lock"
    with FileLock(path):
        assert path.exists() and read_owner(path).pid == os.getpid()
        with pytest.raises(LockTimeoutError, match=f"pid {os.getpid()}"):
            FileLock(path, timeout=0.5).acquire()
    assert not path.exists()
    with FileLock(path, timeout=0.5):
        pass


def test_dead_holder_on_this_host_is_taken_over(tmp_path):
    path = tmp_path / "x.lock"
    _write_lock(path, pid=_dead_pid(), process_start="1")
    assert not holder_is_alive(path)
    waits = []
    with FileLock(path, timeout=5, on_wait=waits.append):
        assert read_owner(path).pid == os.getpid()
    assert waits == []  # Judged dead at the first look; nobody waited.


def test_tensorflow_hub_lock_of_a_dead_process_is_taken_over(tmp_path):
    path = tmp_path / "x.lock"
    path.write_text(f"{socket.gethostname()}.{_dead_pid()}.0123456789abcdef")  # tensorflow_hub's format
    owner = read_owner(path)
    assert owner.host == socket.gethostname()
    assert not holder_is_alive(path)
    with FileLock(path, timeout=5):
        pass


def test_live_tensorflow_hub_lock_is_respected(tmp_path):
    path = tmp_path / "x.lock"
    path.write_text(f"{socket.gethostname()}.{os.getpid()}.0123456789abcdef")
    assert holder_is_alive(path)
    with pytest.raises(LockTimeoutError):
        FileLock(path, timeout=0.3).acquire()


def test_recycled_pid_is_not_the_holder(tmp_path):
    if process_start_time(os.getpid()) is None:
        pytest.skip("no /proc: process start times unavailable")
    path = tmp_path / "x.lock"
    _write_lock(path, process_start="1")  # Our pid, but a process that started at boot tick 1.
    assert not holder_is_alive(path)


def test_holder_on_another_host_is_stale_only_without_heartbeat(tmp_path):
    path = tmp_path / "x.lock"
    _write_lock(path, host="some-other-host.example", pid=1)
    assert holder_is_alive(path, stale_after=60)
    with pytest.raises(LockTimeoutError, match="some-other-host"):
        FileLock(path, timeout=0.3, stale_after=60).acquire()
    old = time.time() - 120
    os.utime(path, (old, old))
    assert not holder_is_alive(path, stale_after=60)
    with FileLock(path, timeout=5, stale_after=60):
        assert read_owner(path).host == socket.gethostname()


def test_holder_heartbeat_refreshes_the_lock(tmp_path, monkeypatch):
    monkeypatch.setattr(lockmod, "HEARTBEAT_INTERVAL", 0.05)
    path = tmp_path / "x.lock"
    with FileLock(path):
        old = time.time() - 1000
        os.utime(path, (old, old))
        deadline = time.monotonic() + 10
        while path.stat().st_mtime == old and time.monotonic() < deadline:
            time.sleep(0.02)
        assert path.stat().st_mtime > old


def test_release_keeps_a_lock_that_is_no_longer_ours(tmp_path):
    path = tmp_path / "x.lock"
    held = FileLock(path)
    held.acquire()
    _write_lock(path, token="someone-else")  # As if our lock had been broken and retaken.
    held.release()
    assert path.exists()


def test_garbled_lock_expires_by_age(tmp_path):
    path = tmp_path / "x.lock"
    path.write_text("")  # A writer that died between create and write.
    assert holder_is_alive(path, stale_after=60)
    old = time.time() - 120
    os.utime(path, (old, old))
    assert not holder_is_alive(path, stale_after=60)


def test_lock_whose_record_cannot_be_written_is_not_left_behind(tmp_path):
    # On a full disk the lock file is created but its record fails to write; an empty lock
    # left behind would make the next pull wait out the stale timeout for a holder that never was.
    path = tmp_path / "entry.lock"
    probe = (
        "import resource, sys\n"
        "from hubcli.hub.filelock import FileLock\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))  # every write to a file now fails, as on a full disk\n"
        "try:\n"
        f"    FileLock({str(path)!r}).acquire()\n"
        "except OSError as err:\n"
        "    sys.exit(err.errno)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode not in (0, 1), done.stderr  # The write failed with an errno...
    assert not path.exists()  # ...and the half-made lock is gone.


@pytest.mark.parametrize("lock_format", ["hubcli", "tensorflow_hub"])
def test_a_zombie_holder_counts_as_dead(tmp_path, lock_format):
    # Killed but not yet reaped: kill(pid, 0) still succeeds, but it will never release the lock.
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        path = tmp_path / "x.lock"
        if lock_format == "hubcli":
            _write_lock(path, pid=child.pid, process_start=process_start_time(child.pid))
        else:
            path.write_text(f"{socket.gethostname()}.{child.pid}.0123456789abcdef")
        assert holder_is_alive(path)
        child.kill()
        deadline = time.monotonic() + 10
        while not lockmod.is_zombie(child.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert lockmod.is_zombie(child.pid)
        os.kill(child.pid, 0)  # The pid still answers...
        assert not holder_is_alive(path)  # ...but the holder is gone.
        with FileLock(path, timeout=5):
            pass
    finally:
        child.kill()
        child.wait()
