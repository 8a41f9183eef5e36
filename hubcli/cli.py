"""The ``hubcli`` command line: parse, call the library, render.

Nothing here imports TensorFlow at module level, so ``hubcli --help``, ``pull``
and ``inspect`` start fast; commands that train or load models import the
library modules that need TF inside their bodies.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import console
from .errors import HubcliError

app = typer.Typer(
    name="hubcli",
    help="Pull, inspect and retrain pretrained TensorFlow Hub modules.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
cache_app = typer.Typer(help="Inspect and maintain the shared module cache.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")

# Options shared by every command that reaches the module cache.
CacheDirOpt = Annotated[
    Optional[Path],
    typer.Option("--cache-dir", help="Module cache (default: $HUBCLI_CACHE_DIR, $TFHUB_CACHE_DIR, ~/.cache/hubcli/modules).", show_default=False),
]
OfflineOpt = Annotated[
    Optional[bool],
    typer.Option("--offline/--online", help="Never touch the network; serve from the cache ($HUBCLI_OFFLINE=1).", show_default=False),
]
MirrorOpt = Annotated[
    Optional[str],
    typer.Option("--mirror", help="Serve hub handles from this http(s) URL or directory ($HUBCLI_MIRROR).", show_default=False),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout (stable schema).")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or status messages.")]


def _settings(cache_dir: Path | None, offline: bool | None, mirror: str | None):
    from .config import Settings

    return Settings.load(cache_dir=cache_dir, offline=offline, mirror=mirror)


def _start(quiet: bool, json_output: bool = False) -> None:
    # With --json, stdout carries only the document; status messages would still go to stderr,
    # but scripts asked for machine output, so keep stderr for warnings and errors.
    console.set_quiet(quiet or json_output)


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.", is_eager=True)] = False,
) -> None:
    if version:
        from . import __version__

        typer.echo(__version__)
        raise typer.Exit()


# ---------------------------------------------------------------------------
# Issue A: pull, inspect, list, search, cache
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Issue B: retrain-images, evaluate, predict
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Issue C: classify-text
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Issue D: export, export-module, publish
# ---------------------------------------------------------------------------


def main() -> None:
    """Console-script entry point: run the app, turning every failure into one stderr line."""
    try:
        app(standalone_mode=False)
    except HubcliError as err:
        console.error_line(str(err))
        sys.exit(err.exit_code)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except typer.Abort:
        console.error_line("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        console.error_line("interrupted")
        sys.exit(130)
    except BrokenPipeError:
        # `hubcli list | head` closes stdout early; that is not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    except Exception as err:  # noqa: BLE001 - last line of defence: never a traceback for users
        import click

        if isinstance(err, click.ClickException):
            err.show()
            sys.exit(err.exit_code)
        if os.environ.get("HUBCLI_DEBUG") == "1":
            raise
        console.error_line(f"internal error: {type(err).__name__}: {err} (set HUBCLI_DEBUG=1 for a traceback)")
        sys.exit(70)
