"""Which kind of module a path holds, told from file names alone: the one "is this a module" check.

A module is a SavedModel directory (``saved_model.pb``, or the text-format
``saved_model.pbtxt``, at its root) or a Keras ``.keras`` file. A SavedModel
directory is in TF1 Hub format when ``tfhub_module.pb`` sits beside it, and a
Keras SavedModel when ``keras_metadata.pb`` does; otherwise it is a TF2
SavedModel. Pull, extraction, the cache and inspect all ask here; reading the
files (and finding them damaged) is :mod:`hubcli.savedmodel.inspector`'s job.

Example:
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     root = Path(folder)
    ...     before = is_module_dir(root)
    ...     _ = (root / "saved_model.pb").write_bytes(b"")
    ...     _ = (root / "model.keras").write_bytes(b"")
    ...     print(before, is_module_dir(root), module_format(root), module_format(root / "model.keras"))
    False True tf2_saved_model keras
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

ModuleFormat = Literal["tf2_saved_model", "tf1_hub", "keras"]
TF2_SAVED_MODEL: ModuleFormat = "tf2_saved_model"
TF1_HUB: ModuleFormat = "tf1_hub"
KERAS: ModuleFormat = "keras"

#: Files at a directory's root that make it a SavedModel (binary, then text format).
SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
#: tensorflow_hub's ModuleDef, beside the SavedModel of a TF1 Hub format module.
HUB_MODULE_FILE = "tfhub_module.pb"
#: Written by tf.keras beside the SavedModel of a Keras model.
KERAS_METADATA_FILE = "keras_metadata.pb"
KERAS_SUFFIX = ".keras"


def is_module_dir(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a directory with a SavedModel at its root."""
    root = Path(path)
    return any((root / name).is_file() for name in SAVED_MODEL_FILES)


def module_format(path: str | os.PathLike) -> ModuleFormat | None:
    """The format of the module at ``path`` (a directory or a ``.keras`` file), or None if there is none.

    Example:
        >>> module_format("no/such/model.keras") is None
        True
    """
    path = Path(path)
    if path.is_file():
        return KERAS if path.suffix == KERAS_SUFFIX else None
    return saved_model_format(path) if is_module_dir(path) else None


def saved_model_format(root: str | os.PathLike) -> ModuleFormat:
    """Which flavour of SavedModel the module directory ``root`` holds: TF1 Hub, Keras or TF2."""
    root = Path(root)
    if (root / HUB_MODULE_FILE).is_file():
        return TF1_HUB
    if (root / KERAS_METADATA_FILE).is_file():
        return KERAS
    return TF2_SAVED_MODEL
