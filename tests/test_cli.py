"""The console entry point itself: exit codes and stderr for what is not any one command's business."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from hubcli import __version__
from tests.helpers.cli_run import HUBCLI, error_line, run_hubcli


@pytest.fixture(autouse=True)
def no_config(tmp_path, monkeypatch):
    monkeypatch.setenv("HUBCLI_CONFIG", str(tmp_path / "no-config.toml"))


def test_version_prints_the_version():
    result = run_hubcli("--version")
    assert (result.returncode, result.stdout, result.stderr) == (0, f"{__version__}\n", "")


@pytest.mark.parametrize("args", [[], ["cache"]], ids=["hubcli", "cache"])
def test_no_command_shows_help_without_an_empty_error_line(args):
    result = run_hubcli(*args)
    assert "Usage:" in result.stdout + result.stderr
    assert "error:" not in result.stderr


@pytest.mark.parametrize("args", [["list"], ["list", "--json"], ["search", "mobilenet"]], ids=["table", "json", "search"])
def test_closed_stdout_is_silent_and_not_a_failure(args):
    # `hubcli list | head -3`: the reader is gone before hubcli writes; under `set -o pipefail` that must not fail.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run([*HUBCLI, *args], stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write_end)
    assert (result.returncode, result.stderr) == (0, "")


def test_tensorflow_start_up_prints_nothing_on_the_cli_stderr():
    """TF's C++ start-up lines (absl, cuda probe) would break the one-line-per-error rule."""
    import os
    import subprocess
    import sys

    probe = (
        "from hubcli import quiet_tensorflow\n"
        "quiet_tensorflow.install()\n"
        "import tensorflow as tf\n"
        "print(int(tf.reduce_sum(tf.ones(3))))\n"
    )
    # A parent that exports level 2 (as many scripts and test runners do) must not weaken it.
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("HUBCLI_DEBUG", None)
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "3"
    assert done.stderr == ""


@pytest.mark.parametrize("freeze", [True, False], ids=["cli", "library"])
def test_the_cli_import_of_tensorflow_freezes_what_it_made_and_collects_garbage_afterwards(freeze):
    probe = (
        "import gc, weakref\n"
        "from hubcli import quiet_tensorflow\n"
        f"quiet_tensorflow.install(freeze={freeze})\n"
        "import tensorflow\n"
        "class Node: pass\n"
        "a, b = Node(), Node()\n"
        "a.other, b.other = b, a\n"
        "gone = weakref.ref(a)\n"
        "del a, b\n"
        "gc.collect()\n"
        "print(gc.isenabled(), gc.get_freeze_count() > 100_000, gone() is None)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    # Only the CLI's own processes freeze; a library caller's heap is left as it was.
    assert done.stdout.split() == ["True", str(freeze), "True"]


def test_the_console_script_runs_the_cli_main():
    from importlib.metadata import entry_points

    from hubcli.cli import app

    (script,) = entry_points(group="console_scripts", name="hubcli")
    assert script.load() is app.main


_LOADED_TF_EXIT = """
import atexit, pathlib, sys
import tensorflow
from hubcli.cli.app import main

marker = pathlib.Path(sys.argv[1])
atexit.register(lambda: marker.write_text("exit handlers ran"))
sys.stdout.write("x" * 1_000_000)
sys.argv = ["hubcli", "inspect", sys.argv[2]]
main()
"""


def test_a_command_that_loaded_tensorflow_exits_with_its_code_its_output_and_exit_handlers(tmp_path):
    # Once TensorFlow is loaded, hubcli skips the interpreter's teardown; nothing else may change.
    missing = tmp_path / "no-such-module"
    plain = run_hubcli("inspect", missing)
    assert plain.returncode not in (0, 70)
    marker = tmp_path / "marker"
    done = subprocess.run([sys.executable, "-c", _LOADED_TF_EXIT, str(marker), str(missing)], capture_output=True, text=True, timeout=300)
    assert done.returncode == plain.returncode
    assert done.stdout == "x" * 1_000_000
    assert error_line(done) == error_line(plain)
    assert marker.read_text() == "exit handlers ran"


_NO_TF_PROBE = """
import sys
import typer.main
from hubcli.cli.app import app, main

group = typer.main.get_command(app)
helps = [["--help"], *([name, "--help"] for name in group.commands)]
helps += [["cache", name, "--help"] for name in group.commands["cache"].commands]
for argv in [*helps, *{cheap!r}]:
    sys.argv = ["hubcli", *argv]
    try:
        main()
    except SystemExit as done:
        assert not done.code, (argv, done.code)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tensorflow_hub", "tensorflow_text", "apache_beam"))
print("COMMANDS", len(helps), "HEAVY", heavy)
"""


def test_help_and_the_cheap_commands_never_import_tensorflow_or_beam(tiny_image_archive, tiny_text_module, tmp_path, monkeypatch):
    """Every command's --help, and pull, inspect, list, search and every cache command, in one process."""
    monkeypatch.setenv("HUBCLI_CACHE_DIR", str(tmp_path / "cache"))
    archive = str(tiny_image_archive)
    cheap = [
        ["--version"], ["pull", archive], ["inspect", archive, "--json"], ["inspect", str(tiny_text_module)],
        ["list"], ["list", "--task", "text", "--json"], ["search", "mobilenet"],
        ["cache", "ls"], ["cache", "verify", archive], ["cache", "rm", archive, "--dry-run"],
        ["cache", "prune", "--dry-run"], ["cache", "rm", archive, "--yes", "--json"],
    ]
    done = subprocess.run([sys.executable, "-c", _NO_TF_PROBE.format(cheap=cheap)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    commands, heavy = done.stdout.splitlines()[-1].removeprefix("COMMANDS ").split(" HEAVY ")
    assert int(commands) == 18 and heavy == "[]"  # hubcli, its 12 commands, the cache group and its 4


def test_a_full_disk_the_library_did_not_expect_is_one_error_line(tiny_image_module, tmp_path):
    # Files of this process cannot grow past 4 KiB: the archive write fails mid-way, as on a full disk.
    out = tmp_path / "out"
    done = run_hubcli("export-module", tiny_image_module, "--output", out / "tiny.tar.gz", file_size_limit=4096)
    assert "File too large" in error_line(done, 1, alone=True) and done.stdout == ""
    assert sorted(path.name for path in out.iterdir()) == []  # nothing half-written
