"""TFLite artifacts in the cache: a ``.tflite`` file, checked and kept like a module.

tfhub.dev serves lite models as bare ``.tflite`` files (``?lite-format=tflite``), and
Kaggle's TfLite variations as archives holding one. Either way the cache entry is a
directory (tensorflow_hub's layout) holding the model file, with the same sidecar and
manifest as a module, so ``cache verify``, ``--sha256`` and ``hubcli.lock`` work the
same; ``pull`` returns the path of the file itself.

Example:
    >>> entry_model_file(Path("/cache/abc"), {"model_file": "birds_V1.tflite"})
    PosixPath('/cache/abc/birds_V1.tflite')
"""

from __future__ import annotations

import hashlib
import os
import re
import urllib.parse
from pathlib import Path
from typing import Any

from hubcli.errors import InvalidModuleError, UnsafeContentError

DEFAULT_NAME = "model.tflite"
_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\.tflite")
_CHUNK = 1 << 20


def model_file_name(source: str) -> str:
    """The name to keep a downloaded model under: the URL's or file's own ``*.tflite`` name, else ``model.tflite``.

    Example:
        >>> model_file_name("https://storage.example/tfhub-lite-models/google/lite-model/birds_V1/3.tflite?sig=x")
        '3.tflite'
        >>> model_file_name("https://tfhub.dev/google/lite-model/birds_V1/3?lite-format=tflite")
        'model.tflite'
    """
    name = urllib.parse.unquote(urllib.parse.urlsplit(source).path.rsplit("/", 1)[-1]) if "://" in source else Path(source).name
    return name if _SAFE.fullmatch(name) else DEFAULT_NAME


def place_tflite(source: Path, dest: Path, *, name: str, max_bytes: int, label: str) -> dict[str, dict[str, int | str]]:
    """Copy the TFLite file ``source`` into the new directory ``dest`` as ``name``; return its manifest.

    The file must read as a TFLite flatbuffer (its tensors, signatures and metadata parse),
    and fit in ``max_bytes``; on any failure ``dest`` is removed.

    Raises:
        InvalidModuleError: not a readable TFLite model.
        UnsafeContentError: larger than the size limit.
    """
    import shutil

    from hubcli.savedmodel.tflite_file import read_tflite

    size = source.stat().st_size
    if size > max_bytes:
        raise UnsafeContentError(f"{label} is larger than the {max_bytes} byte limit (set HUBCLI_MAX_EXTRACT_BYTES to raise it)")
    dest.mkdir(parents=True, exist_ok=False)
    try:
        target = dest / name
        digest = hashlib.sha256()
        with open(source, "rb") as reader, open(target, "xb") as writer:
            while chunk := reader.read(_CHUNK):
                digest.update(chunk)
                writer.write(chunk)
        os.chmod(target, 0o644)
        try:
            read_tflite(target)
        except InvalidModuleError as err:  # Name what the user pulled, not the cache's temp directory.
            raise InvalidModuleError(str(err).replace(str(target.absolute()), label)) from None
        return {name: {"size": size, "sha256": digest.hexdigest()}}
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise


def entry_model_file(module_dir: Path, record: dict[str, Any]) -> Path:
    """Where a cache entry's model is: its TFLite file for a TFLite entry, else the module directory."""
    name = record.get("model_file")
    return module_dir / name if isinstance(name, str) and _SAFE.fullmatch(name) else module_dir


def root_tflite_name(manifest: dict[str, Any]) -> str | None:
    """The one ``*.tflite`` file at the root of an extracted archive without a SavedModel, if there is one."""
    if any(name in manifest for name in ("saved_model.pb", "saved_model.pbtxt")):
        return None
    found = [name for name in manifest if "/" not in name and _SAFE.fullmatch(name)]
    return found[0] if len(found) == 1 else None
