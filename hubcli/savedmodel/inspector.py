"""What is inside a module, read straight from its files, without importing TensorFlow.

:func:`inspect_module` reads ``saved_model.pb`` (and ``tfhub_module.pb``,
``keras_metadata.pb`` or a ``.keras`` archive) with the wire-format reader in
:mod:`hubcli.savedmodel.protowire`, walking only the fields it reports. Field numbers
come from TensorFlow's ``saved_model.proto``, ``meta_graph.proto``,
``saved_object_graph.proto``, ``struct.proto``, ``graph.proto``,
``function.proto``, ``attr_value.proto`` and ``tensor_shape.proto``, and from
tensorflow_hub's ``module_def.proto``. The report is a
:class:`~hubcli.savedmodel.report.ModuleInfo`, whose ``to_json()`` is the
``hubcli inspect --json`` document.

Example:
    >>> info = inspect_module("/path/to/mobilenet_v2_feature_vector")  # doctest: +SKIP
    >>> info.format, info.image_size, info.output_dim, info.takes_strings  # doctest: +SKIP
    ('tf2_saved_model', (224, 224), 1280, False)
    >>> for package in info.op_libraries:  # e.g. "tensorflow_text": import before tf.saved_model.load  # doctest: +SKIP
    ...     importlib.import_module(package)
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

from hubcli.errors import InvalidModuleError, NotFoundError
from hubcli.fsio import sha256_file
from hubcli.savedmodel import protowire as pw
from hubcli.savedmodel.formats import HUB_MODULE_FILE, KERAS_SUFFIX, SAVED_MODEL_FILES, TF1_HUB, saved_model_format
from hubcli.savedmodel.keras_file import inspect_keras_archive
from hubcli.savedmodel.metagraph import MetaGraph, primary_meta_graph
from hubcli.savedmodel.opscan import OpScan
from hubcli.savedmodel.report import Asset, ModuleInfo
from hubcli.savedmodel.signatures import default_signatures, image_size, output_dim, takes_strings


def inspect_module(path: str | Path) -> ModuleInfo:
    """Describe the module at ``path``: a SavedModel directory (TF2, TF1 Hub format, Keras) or a ``.keras`` file.

    Raises:
        NotFoundError: nothing at ``path``.
        InvalidModuleError: not a module, or its files are truncated or corrupt.

    Example (the smallest SavedModel: one meta graph tagged "serve", nothing in it):
        >>> import tempfile
        >>> info_def = bytes([0x22, 5, *b"serve"])  # MetaInfoDef: tags = 4
        >>> meta_graph = bytes([0x0A, len(info_def), *info_def])  # MetaGraphDef: meta_info_def = 1
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     _ = (Path(folder) / "saved_model.pb").write_bytes(bytes([0x12, len(meta_graph), *meta_graph]))
        ...     info = inspect_module(folder)
        >>> info.format, info.tag_sets, info.signatures, info.variables, info.risky_ops
        ('tf2_saved_model', (('serve',),), (), (), ())
        >>> inspect_module("no/such/module")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        hubcli.errors.NotFoundError: no such module path: ...no/such/module
    """
    path = Path(path).expanduser().absolute()  # ModuleInfo.path must mean the same from any directory.
    if not path.exists():
        raise NotFoundError(f"no such module path: {path}")
    try:
        if path.is_file():
            if zipfile.is_zipfile(path):
                return inspect_keras_archive(path)
            if path.suffix == KERAS_SUFFIX:
                raise InvalidModuleError(f"{path} is not a Keras file (not a zip archive)")
            raise InvalidModuleError(f"{path} is not a module: expected a SavedModel directory or a .keras file")
        return _inspect_saved_model(path)
    # A corrupt file shows up as a DecodeError, or as a field whose wire type is not the schema's
    # (an int where a message was due, or the reverse), which surfaces as TypeError when used.
    except (pw.DecodeError, TypeError, IndexError, KeyError, ValueError, OverflowError, RecursionError, zipfile.BadZipFile) as err:
        raise InvalidModuleError(f"{path} is damaged: cannot parse it ({type(err).__name__}: {err})") from None
    except OSError as err:
        raise InvalidModuleError(f"cannot read module {path}: {err.strerror or err}") from None


def content_digest(path: str | Path) -> str:
    """A key that changes with any module file: sha256 over the sorted ``(relative path, file sha256)`` list.

    For a module in the hubcli cache whose files still match the cache manifest
    (checked with ``stat``), the recorded per-file sha256s are used, so nothing
    is re-read; elsewhere each file is hashed. Both give the same value.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     _ = (Path(folder) / "saved_model.pb").write_bytes(b"v1")
        ...     before = content_digest(folder)
        ...     _ = (Path(folder) / "saved_model.pb").write_bytes(b"v2")
        ...     print(before.startswith("sha256:"), before == content_digest(folder))
        True False
    """
    root = Path(path)
    if not root.exists():
        raise NotFoundError(f"no such module path: {root}")
    if root.is_file():
        hashes = {root.name: sha256_file(root)}
    else:
        hashes = _manifest_hashes(root)
        if hashes is None:
            files = (p for p in root.rglob("*") if p.is_file() and not p.is_symlink())
            hashes = {file.relative_to(root).as_posix(): sha256_file(file) for file in files}
    digest = hashlib.sha256()
    for relative, file_hash in sorted(hashes.items()):
        digest.update(f"{relative}\0{file_hash}\n".encode())
    return "sha256:" + digest.hexdigest()


def _manifest_hashes(root: Path) -> dict[str, str] | None:
    """Per-file sha256s from the cache manifest of the entry at ``root``, if it is one and is intact."""
    from hubcli.hub import cache

    sidecar = cache.EntryPaths(root.parent, root.name).sidecar
    if not sidecar.is_file():
        return None
    entry = cache.read_entry(root.parent, root.name)
    if entry is None or not entry.files or cache.quick_problems(entry):
        return None
    return {relative: recorded["sha256"] for relative, recorded in entry.files.items()}


def _inspect_saved_model(root: Path) -> ModuleInfo:
    binary, text = (root / name for name in SAVED_MODEL_FILES)
    if not binary.is_file():
        if text.is_file():
            raise InvalidModuleError(f"{root} holds a text-format saved_model.pbtxt, which inspect does not read; convert it to saved_model.pb")
        raise InvalidModuleError(f"{root} is not a module: no saved_model.pb (nor a .keras file)")
    data = memoryview(binary.read_bytes())
    meta_graphs = [MetaGraph(raw) for number, _, raw in pw.fields(data) if number == 2]
    if not meta_graphs:
        raise InvalidModuleError(f"{binary} holds no meta graph (empty, truncated or not a SavedModel)")
    found_format = saved_model_format(root)
    if found_format == TF1_HUB:
        _check_hub_module_def(root / HUB_MODULE_FILE)

    primary = primary_meta_graph(meta_graphs)
    signatures = tuple(s for mg in meta_graphs for s in mg.signatures())
    objects = primary.object_graph()
    call_variants = objects.call_variants("__call__") if objects else ()
    variables = objects.variables() if objects else primary.graph_variables()
    scan = OpScan()
    for mg in meta_graphs:
        scan.add_meta_graph(mg, "" if len(meta_graphs) == 1 else f"[{','.join(mg.tags) or 'no tags'}]")
    defaults = default_signatures(signatures, primary.tags)
    assets = _assets(root)
    return ModuleInfo(
        path=root,
        format=found_format,
        tensorflow_version=primary.tensorflow_version,
        tag_sets=tuple(mg.tags for mg in meta_graphs),
        signatures=signatures,
        call_input_specs=call_variants,
        image_size=image_size(call_variants, defaults),
        output_dim=output_dim(call_variants, defaults),
        takes_strings=takes_strings(call_variants, signatures),
        variables=variables,
        assets=assets,
        size_bytes=_size_on_disk(root),
        risky_ops=scan.risky_ops(),
        op_libraries=scan.op_libraries(),
        unknown_ops=scan.unknown_ops(),
    )


def _check_hub_module_def(path: Path) -> None:
    # ModuleDef: format = 1 (FORMAT_V3 = 3). Anything else is a format this reader does not know.
    hub_format = pw.first(memoryview(path.read_bytes()), 1, 0)
    if hub_format != 3:
        raise InvalidModuleError(f"{path}: unsupported TF1 Hub module format {hub_format} (expected FORMAT_V3)")


def _assets(root: Path) -> tuple[Asset, ...]:
    found = []
    for folder in ("assets", "assets.extra"):
        base = root / folder
        if base.is_dir():
            for file in sorted(base.rglob("*")):
                if file.is_file() and not file.is_symlink():
                    found.append(Asset(file.relative_to(root).as_posix(), file.stat().st_size))
    return tuple(found)


def _size_on_disk(root: Path) -> int:
    return sum(p.lstat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())
