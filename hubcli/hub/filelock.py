"""A cross-process, cross-host lock on one cache entry, made of a single file.

The lock is ``<cache>/<sha1>.lock``, the name tensorflow_hub uses, so a
``hub.load`` and a ``hubcli pull`` of the same handle also exclude each other.
It is created with ``O_CREAT | O_EXCL`` (atomic on local file systems and NFSv3+)
and records who holds it: host name, pid, the process start time (so a reused
pid is not mistaken for the holder) and when it was taken.

Why this beats tensorflow_hub's lock, which is stolen only after ten minutes
without download progress: a waiter on the same host asks the kernel whether
the holder still runs (``os.kill(pid, 0)``, and not a zombie that has exited
but is not yet reaped) and takes over within one poll interval of its death,
``kill -9`` included. A holder on another host cannot be
probed, so it keeps the file's mtime fresh from a heartbeat thread; it is
declared dead only after ``stale_after`` seconds without a beat.

Example:
    >>> with FileLock(cache_dir / (key + ".lock"), description=handle):  # doctest: +SKIP
    ...     install_entry(...)
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from hubcli.config import env_number
from hubcli.errors import HubcliError

#: Seconds between two looks at a busy lock.
POLL_INTERVAL = 0.2
#: Seconds between two mtime refreshes by the holder.
HEARTBEAT_INTERVAL = 5.0
#: A holder on another host is presumed dead after this long without a heartbeat.
DEFAULT_STALE_AFTER = 60.0


def _stale_after_default() -> float:
    return env_number("HUBCLI_LOCK_STALE_SECONDS", DEFAULT_STALE_AFTER, exclusive=True)


def _stat_fields(pid: int) -> list[str]:
    """``/proc/<pid>/stat`` from field 3 (the state) on; empty where there is no /proc or no such pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    # The command name (field 2) may hold spaces and parentheses; fields resume after the last ')'.
    return stat[stat.rfind(")") + 2 :].split()


def process_start_time(pid: int) -> str | None:
    """Start time of ``pid`` in clock ticks since boot (Linux), to tell a reused pid apart."""
    fields = _stat_fields(pid)
    return fields[19] if len(fields) > 19 else None


def is_zombie(pid: int) -> bool:
    """Whether ``pid`` has exited but is not yet reaped (state Z, or X while being removed).

    A killed holder whose parent has not called ``wait`` still answers ``kill(pid, 0)``;
    it will never release its lock.
    """
    fields = _stat_fields(pid)
    return bool(fields) and fields[0] in ("Z", "X")


@dataclass(frozen=True)
class LockOwner:
    """Who holds a lock, as read back from the lock file."""

    host: str
    pid: int
    process_start: str | None = None
    acquired_at: float | None = None

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}"


def _current_owner() -> LockOwner:
    pid = os.getpid()
    return LockOwner(socket.gethostname(), pid, process_start_time(pid), time.time())


def read_owner(lock_path: Path) -> LockOwner | None:
    """Parse a lock file written by hubcli (JSON) or by tensorflow_hub (``host.pid.uid``).

    Returns None when the file is gone, or empty/garbled (a writer died between
    create and write): such a lock is judged by its age alone.
    """
    try:
        text = lock_path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None
    if text.startswith("{"):
        try:
            data = json.loads(text)
            return LockOwner(str(data["host"]), int(data["pid"]), data.get("process_start"), data.get("acquired_at"))
        except (ValueError, KeyError, TypeError):
            return None
    # tensorflow_hub writes "<hostname>.<pid>.<uuid hex>"; the host name itself may contain dots.
    parts = text.rsplit(".", 2)
    if len(parts) == 3 and parts[1].isdigit():
        return LockOwner(parts[0], int(parts[1]))
    return None


def holder_is_alive(lock_path: Path, stale_after: float | None = None) -> bool:
    """Whether the lock at ``lock_path`` still protects a running holder.

    Same host: the pid exists and (when recorded) started when the lock says.
    Other host, or an unreadable lock: the file was touched within ``stale_after`` s.
    """
    stale_after = _stale_after_default() if stale_after is None else stale_after
    owner = read_owner(lock_path)
    if owner is not None and owner.host == socket.gethostname():
        try:
            os.kill(owner.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # Exists, but belongs to another user.
        if is_zombie(owner.pid):
            return False
        if owner.process_start is not None:
            current = process_start_time(owner.pid)
            if current is not None and current != owner.process_start:
                return False  # The pid was recycled by an unrelated process.
        return True
    try:
        age = time.time() - lock_path.stat().st_mtime
    except FileNotFoundError:
        return False
    # A lock younger than a poll may be one whose owner is still writing its content.
    return age < max(stale_after, 2 * POLL_INTERVAL)


class LockTimeoutError(HubcliError):
    """Waited longer than asked for a lock held by a live process."""


class FileLock:
    """Exclusive lock on one path; a context manager. Re-entrant use is not supported.

    Args:
        path: the lock file, e.g. ``<cache>/<sha1>.lock``.
        description: what is locked, for the "waiting for ..." message.
        timeout: seconds to wait for a live holder before giving up (None: forever).
        stale_after: seconds without heartbeat after which a holder on another host is dead.
        on_wait: called once with the holder's description when we start waiting.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        description: str = "",
        timeout: float | None = None,
        stale_after: float | None = None,
        on_wait=None,
    ):
        self.path = Path(path)
        self.description = description or self.path.name
        self.timeout = timeout
        self.stale_after = _stale_after_default() if stale_after is None else stale_after
        self.on_wait = on_wait
        self._token: str | None = None
        self._stop_heartbeat = threading.Event()
        self._heartbeat: threading.Thread | None = None

    # -- acquiring -------------------------------------------------------
    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        announced = False
        while not self._try_create():
            if not holder_is_alive(self.path, self.stale_after):
                self._break_stale()
                continue
            if not announced and self.on_wait is not None:
                owner = read_owner(self.path)
                self.on_wait(owner.describe() if owner else "another process")
                announced = True
            if deadline is not None and time.monotonic() > deadline:
                owner = read_owner(self.path)
                holder = owner.describe() if owner else "another process"
                raise LockTimeoutError(f"timed out waiting for {self.description}: locked by {holder} ({self.path})")
            time.sleep(POLL_INTERVAL)
        self._heartbeat = threading.Thread(target=self._beat, name="hubcli-lock-heartbeat", daemon=True)
        self._heartbeat.start()

    def _try_create(self) -> bool:
        owner = _current_owner()
        self._token = uuid.uuid4().hex
        record = {
            "host": owner.host,
            "pid": owner.pid,
            "process_start": owner.process_start,
            "acquired_at": owner.acquired_at,
            "token": self._token,
            "what": self.description,
        }
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(json.dumps(record))
        except BaseException:
            # A lock without its record (disk full) would stall the next pull until it looked stale.
            self.path.unlink(missing_ok=True)
            raise
        return True

    def _break_stale(self) -> None:
        """Remove a dead holder's lock, serialising breakers so one cannot delete a fresh lock.

        Without the guard, two waiters could both judge the same dead lock stale;
        the first removes it and takes the lock, the second then removes the
        first one's live lock. Under the guard we re-check before unlinking.
        """
        guard = self.path.with_name(self.path.name + ".break")
        try:
            fd = os.open(guard, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            # Another waiter is breaking it; a guard left by a crashed breaker expires quickly.
            try:
                if time.time() - guard.stat().st_mtime > 10:
                    guard.unlink(missing_ok=True)
            except FileNotFoundError:
                pass
            time.sleep(POLL_INTERVAL)
            return
        os.close(fd)
        try:
            if self.path.exists() and not holder_is_alive(self.path, self.stale_after):
                self.path.unlink(missing_ok=True)
        finally:
            guard.unlink(missing_ok=True)

    # -- holding ---------------------------------------------------------
    def _beat(self) -> None:
        while not self._stop_heartbeat.wait(HEARTBEAT_INTERVAL):
            try:
                os.utime(self.path)
            except OSError:
                return

    def release(self) -> None:
        self._stop_heartbeat.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
            self._heartbeat = None
        # Remove the file only if it is still ours (it may have been broken as stale).
        try:
            current = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if isinstance(current, dict) and current.get("token") == self._token:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
