"""Run the real ``hubcli`` CLI in a subprocess and read its one-line errors."""

from __future__ import annotations

import subprocess
import sys


def run_hubcli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hubcli", *map(str, args)], capture_output=True, text=True, timeout=300)


def error_line(process: subprocess.CompletedProcess) -> str:
    """The ``error:`` line a failed command ends with; fails the test on a traceback."""
    lines = [line for line in process.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: "), process.stderr
    assert "Traceback" not in process.stderr
    return lines[-1]
