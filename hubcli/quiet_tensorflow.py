"""Keep TensorFlow's start-up chatter off the CLI's stderr.

Importing TensorFlow prints C++ log lines (absl's "All log messages before
absl::InitializeLog()...", "Could not find cuda drivers...") straight to file
descriptor 2, before ``TF_CPP_MIN_LOG_LEVEL`` takes effect. A command's stderr
is its user interface (one line on failure), so the CLI installs
:func:`install` and the first ``import tensorflow`` runs with fd 2 pointed at
/dev/null. Python exceptions raised by the import are unaffected, and so
are TF's runtime errors, which reach hubcli as exceptions; the C++ log level
is 3 because the device probe logs a harmless cuInit ERROR on machines
without a GPU.

The CLI's import also runs without the cyclic garbage collector, and what exists then is
frozen out of later collections (:func:`gc.freeze`; ``install(freeze=True)``). Importing
TensorFlow and Keras creates over a million objects that live as long as the process:
collecting among them while they are made costs about a second of a run's start-up, and
walking them again at every later full collection slows loading and saving modules.
Frozen objects are still freed when nothing refers to them; only cycles that were already
garbage at the freeze are never reclaimed, a fair price in a short-lived command.

Library users are left alone: only the CLI and the recipe scripts install the hook, and
the Beam model handler (which may run in a library caller's process) installs it without
the freeze.
"""

from __future__ import annotations

import gc
import importlib.abc
import importlib.machinery
import logging
import os
import sys
from contextlib import contextmanager


@contextmanager
def native_stderr_silenced():
    """Point file descriptor 2 at /dev/null for the block: C++ code writes there directly."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class _SilentLoader(importlib.abc.Loader):
    def __init__(self, loader, freeze: bool):
        self._loader = loader
        self._freeze = freeze

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        collecting = gc.isenabled()
        if self._freeze:
            gc.disable()
        try:
            with native_stderr_silenced():
                self._loader.exec_module(module)
        finally:
            if self._freeze:
                # The modules, functions and registries the import made live as long as the process.
                gc.freeze()
                if collecting:
                    gc.enable()
        # TF's Python side logs through these loggers ("WARNING:tensorflow:..."); keep errors only.
        for name in ("tensorflow", "absl", "h5py"):
            logging.getLogger(name).setLevel(logging.ERROR)


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    def __init__(self, freeze: bool):
        self._freeze = freeze

    def find_spec(self, name, path, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # one import only; later lookups go the normal way
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _SilentLoader(spec.loader, self._freeze)
        return spec


def install(*, freeze: bool = False) -> None:
    """Silence the first ``import tensorflow`` of this process (no-op if TF is already loaded).

    ``freeze``: import it without the cyclic garbage collector, then freeze what exists (see
    the module docstring); for processes hubcli owns. ``HUBCLI_DEBUG=1`` leaves TensorFlow's
    logging as it is, for diagnosing TF itself.
    """
    if os.environ.get("HUBCLI_DEBUG") == "1":
        return
    # Set, not defaulted: a parent process (a script, a test runner) often exports level 2,
    # which still lets the no-GPU cuInit ERROR line through to our stderr.
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    if "tensorflow" in sys.modules or any(isinstance(f, _QuietTensorFlowFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _QuietTensorFlowFinder(freeze))
