"""Terminal output shared by every command: messages, JSON, tables, progress.

Human output goes to stderr (rich), so stdout stays clean for what scripts
capture: the JSON document with ``--json``, or the one result line (for
example the module path printed by ``pull``). Progress bars are drawn only
when stderr is a terminal and ``--quiet`` is not set.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

#: Bumped only on incompatible changes to any command's JSON document.
JSON_SCHEMA_VERSION = 1

_quiet = False


def set_quiet(quiet: bool) -> None:
    """Silence informational messages and progress bars (warnings still print)."""
    global _quiet
    _quiet = quiet


def is_quiet() -> bool:
    return _quiet or os.environ.get("HUBCLI_QUIET") == "1"


def progress_enabled() -> bool:
    """Progress bars only for a person watching a terminal."""
    return not is_quiet() and sys.stderr.isatty()


def stderr_console():
    # Imported lazily: rich costs ~50 ms and some paths print nothing.
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def info(message: str) -> None:
    """A progress or status message for people; dropped with --quiet."""
    if not is_quiet():
        stderr_console().print(message)


def warn(message: str) -> None:
    """A warning: always printed, one line on stderr."""
    stderr_console().print(f"[yellow]warning:[/yellow] {message}")


def error_line(message: str) -> None:
    """The one line a failed command prints before exiting non-zero."""
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()


def emit_json(command: str, payload: dict[str, Any]) -> None:
    """Print one JSON document on stdout: ``{"schema": "hubcli.<command>/1", ...}``."""
    document = {"schema": f"hubcli.{command}/{JSON_SCHEMA_VERSION}", **payload}
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


def print_table(table) -> None:
    """Render a rich table on stdout for people (stdout, so it can be paged)."""
    from rich.console import Console

    # Off a terminal rich assumes 80 columns and folds long handles mid-word; a file or pipe
    # has no width, so give tables room and let them take only what they need.
    width = None if sys.stdout.isatty() else 250
    Console(highlight=False, width=width).print(table)


@contextmanager
def progress_bar(total: int | None, description: str, unit: str = "it", unit_scale: bool = False) -> Iterator[Any]:
    """A tqdm bar on stderr that disables itself off a TTY or with --quiet.

    Yields an object with ``update(n)``; always safe to call.
    """
    from tqdm import tqdm

    bar = tqdm(
        total=total,
        desc=description,
        unit=unit,
        unit_scale=unit_scale,
        unit_divisor=1024 if unit == "B" else 1000,
        disable=not progress_enabled(),
        file=sys.stderr,
        leave=False,
        dynamic_ncols=True,
    )
    try:
        yield bar
    finally:
        bar.close()


def human_size(num_bytes: int | float) -> str:
    """``1536 -> '1.5 KiB'``."""
    size = float(num_bytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")
