"""The ``hubcli`` Typer app: every command registered in one place, and how failures reach the user.

Each command group lives in its own module and imports the library it calls inside the
command, so ``hubcli --help``, ``pull``, ``inspect``, ``list``, ``search`` and ``cache`` start
fast and never import TensorFlow. :func:`main` turns every failure into one ``error:`` line on
stderr and the exit code the README documents.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
from typing import Annotated

import typer

from hubcli import console
from hubcli.cli import catalog, export, extract, inspect, pull, runs, train
from hubcli.cli.cache import cache_app
from hubcli.errors import HubcliError

app = typer.Typer(
    name="hubcli",
    help="Pull, inspect and retrain pretrained TensorFlow Hub modules.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _print_version(requested: bool) -> None:
    # A parameter callback runs while parsing, before the group insists on a command.
    if requested:
        from hubcli import __version__

        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.", is_eager=True, callback=_print_version)] = False,
) -> None:
    pass


# In the order `hubcli --help` lists them.
app.command("pull")(pull.pull_command)
app.command("list")(catalog.list_command)
app.command("search")(catalog.search_command)
app.command("inspect")(inspect.inspect_command)
app.command("retrain-images")(train.retrain_images_command)
app.command("evaluate")(runs.evaluate_command)
app.command("predict")(runs.predict_command)
app.command("classify-text")(train.classify_text_command)
app.command("extract")(extract.extract_command)
app.command("export")(export.export_command)
app.command("export-module")(export.export_module_command)
app.command("publish")(export.publish_command)
app.add_typer(cache_app, name="cache")


def main() -> None:
    """Console-script entry point: run the app, turning every failure into one stderr line."""
    try:
        _run_app()
    except SystemExit as done:
        _leave(done.code)
    _leave(0)


def _leave(code) -> None:
    """Exit with ``code``; once TensorFlow is loaded, without tearing the interpreter down.

    Finalizing TensorFlow's modules and native state takes about a second on every command
    that used it and does nothing for the user: the command has closed what it wrote, and
    the exit handlers (temporary files, logging) still run here.
    """
    # A profiler, debugger or coverage tool writes its results after the program returns.
    observed = sys.getprofile() is not None or sys.gettrace() is not None
    if "tensorflow" not in sys.modules or observed or not isinstance(code, int | None):
        sys.exit(code)
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    try:
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):
        pass
    atexit._run_exitfuncs()
    os._exit(code or 0)


def _run_app() -> None:
    from hubcli import quiet_tensorflow

    quiet_tensorflow.install(freeze=True)
    # A CI timeout or `kill` sends SIGTERM: unwind like Ctrl-C, so staging dirs, temp files
    # and locks are cleaned up and a partial download is kept for resuming.
    signal.signal(signal.SIGTERM, _terminate)
    try:
        returned = app(standalone_mode=False)
    except HubcliError as err:
        console.error_line(str(err))
        sys.exit(err.exit_code)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except typer.Abort:
        console.error_line("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        _exit_interrupted()
    except BrokenPipeError:
        _closed_stdout_exit()
    except SystemExit as done:
        # typer answers a closed stdout with exit 1, raised while handling the BrokenPipeError.
        if isinstance(done.__context__, BrokenPipeError):
            _closed_stdout_exit()
        raise
    except Exception as err:  # noqa: BLE001 - last line of defence: never a traceback for users
        if _is_usage_error(err):
            if not err.format_message():
                sys.exit(err.exit_code)  # No command given: the help just printed is the whole answer.
            context = getattr(err, "ctx", None)
            command = context.command_path if context is not None else "hubcli"
            console.error_line(f"{err.format_message()} (see '{command} --help')")
            sys.exit(err.exit_code)
        from hubcli.fsio import DiskFullError, disk_full_reason

        reason = disk_full_reason(err)
        if reason:
            # A write the library did not expect to fail: still the user's disk, not a hubcli bug.
            filename = getattr(err, "filename", None)
            console.error_line(f"cannot write {filename}: {reason}" if filename else f"cannot write to disk: {reason}")
            sys.exit(DiskFullError.exit_code)
        if os.environ.get("HUBCLI_DEBUG") == "1":
            raise
        console.error_line(f"internal error: {type(err).__name__}: {err} (set HUBCLI_DEBUG=1 for a traceback)")
        sys.exit(70)
    # Without standalone mode typer returns (not raises) a typer.Exit's code, and turns Ctrl-C into Exit(130).
    if returned == 130:
        _exit_interrupted()
    if isinstance(returned, int) and returned:
        sys.exit(returned)


_terminated = False


def _terminate(signum, frame) -> None:
    global _terminated
    _terminated = True
    raise KeyboardInterrupt


def _exit_interrupted() -> None:
    if _terminated:
        console.error_line("terminated")
        sys.exit(128 + signal.SIGTERM)
    console.error_line("interrupted")
    sys.exit(130)


def _closed_stdout_exit() -> None:
    """`hubcli list | head` closes stdout early; that is not an error, and nothing more may be written."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(0)


def _is_usage_error(err: Exception) -> bool:
    # typer vendors click privately (typer._click); its usage errors carry these two attributes.
    return callable(getattr(err, "format_message", None)) and isinstance(getattr(err, "exit_code", None), int)
