"""The package's shape: TF-free hub client and inspector, no import circles, small files, doctests.

These read the source tree with ``ast`` (and import only TF-free modules), so they run in a
second and fail the moment a change breaks an invariant the architecture depends on.
"""

from __future__ import annotations

import ast
import doctest
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "hubcli"
HEAVY = ("tensorflow", "keras", "tensorflow_text", "tensorflow_hub", "tensorflow_datasets", "tf_keras")
#: Subpackages that must never import TensorFlow, even transitively through other hubcli modules.
TF_FREE_PACKAGES = ("hubcli.hub", "hubcli.savedmodel")
MAX_LINES = 500


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _imports(path: Path, *, top_level_only: bool) -> set[str]:
    """Absolute module names imported by a file (only module-level statements when asked)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if top_level_only and isinstance(node, ast.If):  # `if TYPE_CHECKING:` blocks never run
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _hubcli_deps(name: str, *, top_level_only: bool) -> set[str]:
    return {dep for dep in _imports(MODULES[name], top_level_only=top_level_only) if dep in MODULES and dep != name}


@pytest.mark.parametrize("name", [name for name in MODULES if name.startswith(TF_FREE_PACKAGES)])
def test_tf_free_packages_never_import_tensorflow(name):
    # Every import counts here, deferred ones too, and so does every hubcli module reached from them.
    seen, queue = set(), [name]
    while queue:
        current = queue.pop()
        if current in seen:
            continue
        seen.add(current)
        heavy = {dep for dep in _imports(MODULES[current], top_level_only=False) if dep.split(".")[0] in HEAVY}
        assert not heavy, f"{current} (reached from {name}) imports {sorted(heavy)}"
        queue.extend(_hubcli_deps(current, top_level_only=False))


def test_tf_free_packages_import_without_tensorflow():
    names = [name for name in MODULES if name.startswith(TF_FREE_PACKAGES)]
    script = (
        "import importlib, sys\n"
        f"for name in {names!r}: importlib.import_module(name)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_no_import_circles_between_modules():
    graph = {name: _hubcli_deps(name, top_level_only=True) for name in MODULES}
    # A package's __init__ importing its own submodule (hubcli.cli -> hubcli.cli.app) is not a circle.
    for name, deps in graph.items():
        deps.difference_update(dep for dep in list(deps) if name.startswith(dep + "."))
    state: dict[str, str] = {}
    circles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                circles.append(path[path.index(dep) :] + [dep])
            elif dep not in state:
                visit(dep, [*path, dep])
        state[node] = "done"

    for name in graph:
        if name not in state:
            visit(name, [name])
    assert not circles, "import circles: " + "; ".join(" -> ".join(circle) for circle in circles)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_file_is_too_long(name):
    lines = MODULES[name].read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"{MODULES[name].relative_to(PACKAGE.parent)} has {lines} lines (at most {MAX_LINES})"


def _runs_without_tensorflow(name: str) -> bool:
    return not any(dep.split(".")[0] in HEAVY for dep in _imports(MODULES[name], top_level_only=True))


DOCTEST_MODULES = [name for name in MODULES if _runs_without_tensorflow(name) and name.split(".")[-1] != "__main__"]


@pytest.fixture
def isolated_user(tmp_path, monkeypatch):
    """Doctests must not read the developer's config or write to their cache."""
    for variable in list(os.environ):
        if variable.startswith(("HUBCLI_", "TFHUB_", "KAGGLE_", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")):
            monkeypatch.delenv(variable)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / ".config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / ".cache"))
    monkeypatch.setenv("HUBCLI_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("HUBCLI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HUBCLI_MODULES_DIR", str(tmp_path / "modules"))
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("name", DOCTEST_MODULES)
def test_doctests_of_tf_free_modules(name, isolated_user):
    module = importlib.import_module(name)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(module, optionflags=flags, verbose=False, report=True)
    assert result.failed == 0, f"{result.failed} doctest example(s) failed in {name}"


def test_doctests_exist_for_the_tf_free_core():
    counted = 0
    finder = doctest.DocTestFinder()
    for name in DOCTEST_MODULES:
        module = importlib.import_module(name)
        counted += sum(len(test.examples) for test in finder.find(module) if test.examples)
    assert counted >= 40, f"only {counted} doctest examples in TF-free modules"


def test_code_speaks_of_the_project_only():
    offenders = []
    for name, path in MODULES.items():
        text = path.read_text(encoding="utf-8")
        for word in ("Issue ", "issue #", "the brief", "brief:"):
            if word in text:
                offenders.append(f"{name}: {word!r}")
    assert not offenders, offenders


def test_inventory_is_importable_from_the_public_api():
    import hubcli

    missing = [name for name in hubcli.__all__ if name != "__version__" and not hasattr(hubcli, name)]
    assert not missing

