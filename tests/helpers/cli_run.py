"""Run the real ``hubcli`` command in a fresh process, and read its one-line errors.

A fresh process is the honest test of the console entry point: its exit codes, what reaches
stdout and stderr, and which libraries a command imports. Every CLI test runs the command
through :func:`run_hubcli`, or through :func:`run_in_terminal` when the output must be drawn
on a real terminal of a given width.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

#: The command line that starts hubcli with this interpreter (``python -m hubcli``).
HUBCLI = (sys.executable, "-m", "hubcli")


def run_hubcli(
    *args,
    env: dict[str, str] | None = None,
    cwd=None,
    stdin: str | None = None,
    timeout: float = 600,
    file_size_limit: int | None = None,
) -> subprocess.CompletedProcess:
    """``hubcli ARGS`` in a fresh process, its output captured as text.

    ``env`` adds variables to this process's environment; ``stdin`` is the input (none when
    None, so a command never waits on a terminal); ``file_size_limit`` caps every file the
    command writes at that many bytes, so writes fail as on a full disk.
    """
    preexec = None
    if file_size_limit is not None:
        import resource

        preexec = lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))
    return subprocess.run(
        [*HUBCLI, *map(str, args)],
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=timeout,
        preexec_fn=preexec,
    )


def error_line(process: subprocess.CompletedProcess, exit_code: int | None = None, *, alone: bool = False) -> str:
    """The ``error:`` line a failed command ends with; fails the test on a traceback.

    ``exit_code`` also checks the exit status, and ``alone`` that the line is all of stderr.
    """
    lines = [line for line in process.stderr.splitlines() if line.strip()]
    if exit_code is not None:
        assert process.returncode == exit_code, process.stderr
    assert lines and lines[-1].startswith("error: "), process.stderr
    assert "Traceback" not in process.stderr
    if alone:
        assert process.stderr == lines[-1] + "\n", process.stderr
    return lines[-1]


def run_in_terminal(args: list[str], columns: int = 80, stream: str = "stdout") -> list[str]:
    """Run hubcli with ``stream`` on a real terminal ``columns`` wide; its lines there, colour codes removed."""
    import fcntl
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))  # rows, columns
    other = "stderr" if stream == "stdout" else "stdout"
    proc = subprocess.Popen([*HUBCLI, *args], **{stream: follower, other: subprocess.PIPE}, env={**os.environ, "COLUMNS": str(columns)})
    os.close(follower)
    output = b""
    try:
        while chunk := _read_terminal(leader):  # Read while it runs: a full terminal buffer would block it.
            output += chunk
    finally:
        os.close(leader)
    rest = getattr(proc, other).read().decode()
    assert proc.wait(timeout=120) == 0, rest
    return re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", output.decode()).splitlines()


def _read_terminal(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO: the other side is closed and everything has been read.
        return b""
