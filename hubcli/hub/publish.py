"""Sharing modules: package a SavedModel as a hub archive, and publish archives to a registry.

``export-module`` (:func:`export_module`) writes two files:

- ``<name>.tar.gz``: the module directory's *contents* at the archive root
  (``saved_model.pb``, ``variables/``...), as TF Hub hosting serves modules.
  The archive is deterministic: entries sorted, owner 0/0, mtime 0, fixed
  modes, and a gzip header without name or time, so the same module always
  gives the same sha256.
- ``<name>.json`` beside it: name, version, task, the input and output spec
  read by :func:`hubcli.savedmodel.inspector.inspect_module`, the archive's sha256 and
  size, licence and provenance.

It can package any TF2 SavedModel directory, or a run directory:
``as_="feature-vector"`` re-saves the run's hub module without the head (the
fine-tuned weights when the run fine-tuned it; the module keeps its
``__call__(inputs, training)``, ``variables``, ``trainable_variables`` and
``regularization_losses``), and ``as_="classification"`` saves the whole
classifier as a Reusable module whose ``__call__`` returns probabilities.

``publish`` (:func:`publish_module`) checks an archive exactly as ``pull`` would
(safe extraction, a module at the root, a module ``inspect`` can read) and
adds it to a registry directory with :func:`hubcli.hub.registry.add_version`
(immutable versions, atomic index update).

Example:
    >>> packed = export_module("runs/flowers", name="acme/flowers", version="1", as_="feature-vector")  # doctest: +SKIP
    >>> publish_module(packed.archive, "/srv/hub")  # doctest: +SKIP
    >>> # now: hubcli pull https://tfhub.dev/acme/flowers/1 --mirror /srv/hub
"""

from __future__ import annotations

import gzip
import json
import os
import stat
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubcli.errors import ExportError, IntegrityError, InvalidModuleError, NotFoundError, UnsafeContentError, UsageError
from hubcli.fsio import sha256_file

EXPORT_KINDS = ("module", "feature-vector", "classification")
METADATA_SCHEMA = "hubcli.module/1"


@dataclass(frozen=True)
class PackedModule:
    """An archive written by :func:`export_module` and the metadata beside it."""

    archive: Path
    metadata_path: Path
    metadata: dict[str, Any]

    def to_json(self) -> dict:
        return {"archive": str(self.archive), "metadata_path": str(self.metadata_path), "metadata": self.metadata}


def metadata_path_for(archive: str | os.PathLike) -> Path:
    """``flowers-1.tar.gz`` -> ``flowers-1.json`` (the metadata file beside an archive)."""
    archive = Path(archive)
    stem = archive.name[: -len(".tar.gz")] if archive.name.endswith(".tar.gz") else archive.stem
    return archive.with_name(stem + ".json")


def pack_module(module_dir: str | os.PathLike, archive_path: str | os.PathLike) -> None:
    """Write ``module_dir``'s contents as a deterministic ``.tar.gz`` (root = the module).

    Example:
        >>> pack_module("exported/saved_model", "flowers.tar.gz")  # doctest: +SKIP
    """
    module_dir = Path(module_dir)
    entries = sorted(module_dir.rglob("*"), key=lambda p: p.relative_to(module_dir).as_posix())
    with open(archive_path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as zipped:
        with tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for entry in entries:
                mode = entry.lstat().st_mode
                if stat.S_ISLNK(mode) or not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                    raise UnsafeContentError(f"{entry} is not a plain file or directory; modules must not contain links or devices")
                info = tarfile.TarInfo(entry.relative_to(module_dir).as_posix())
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                if stat.S_ISDIR(mode):
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
                else:
                    info.mode, info.size = 0o644, entry.stat().st_size
                    with entry.open("rb") as handle:
                        tar.addfile(info, handle)


def check_module_archive(archive: str | os.PathLike):
    """Run ``pull``'s checks on an archive: safe to extract, a SavedModel at its root, readable.

    Returns the module's :class:`~hubcli.savedmodel.inspector.ModuleInfo`.
    """
    from hubcli.hub.archive import extract_module_archive
    from hubcli.savedmodel.inspector import inspect_module

    with tempfile.TemporaryDirectory(prefix="hubcli-check-") as tmp:
        module_dir = Path(tmp) / "module"
        extract_module_archive(archive, module_dir)
        return inspect_module(module_dir)


def export_module(
    source: str | os.PathLike,
    output: str | os.PathLike | None = None,
    name: str | None = None,
    version: str = "1",
    task: str | None = None,
    license: str | None = None,
    description: str | None = None,
    as_: str = "module",
    overwrite: bool = False,
) -> PackedModule:
    """Package a SavedModel directory (or a run, with ``as_``) as a hub archive plus metadata."""
    if as_ not in EXPORT_KINDS:
        raise UsageError(f"unknown --as {as_!r}; choose one of {', '.join(EXPORT_KINDS)}")
    source = Path(source)
    if not source.is_dir():
        raise NotFoundError(f"no module directory at {source}")
    name = name or source.resolve().name
    archive = Path(output) if output else Path.cwd() / f"{name.replace('/', '-')}-{version}.tar.gz"
    if not archive.name.endswith(".tar.gz"):
        raise UsageError("--output must end in .tar.gz")
    metadata_file = metadata_path_for(archive)
    for existing in (archive, metadata_file):
        if existing.exists() and not overwrite:
            raise UsageError(f"{existing} already exists; remove it, choose another --output, or pass --overwrite")
    archive.parent.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix=".hubcli-module-", dir=archive.parent) as tmp:
        tmp = Path(tmp)
        if as_ == "module":
            if (source / "run.json").is_file():
                raise UsageError(f"{source} is a run directory; pass --as feature-vector or --as classification")
            module_dir, provenance = source, {"source": str(source.resolve())}
        else:
            module_dir, provenance = _module_from_run(source, tmp / "module", as_)
        staged = tmp / archive.name
        pack_module(module_dir, staged)
        # The same checks a pull runs: what we could not pull back we do not hand out.
        info = check_module_archive(staged)
        metadata = module_metadata(
            info, name, version, task, license, description, sha256_file(staged), staged.stat().st_size, provenance, as_
        )
        staged_metadata = tmp / metadata_file.name
        staged_metadata.write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(staged, archive)
        os.replace(staged_metadata, metadata_file)
    return PackedModule(archive, metadata_file, metadata)


def module_metadata(info, name, version, task, license, description, sha256, size, provenance, as_) -> dict[str, Any]:
    """The metadata document: catalog fields (task, input, image_size, output_dim) plus inspect's spec."""
    from hubcli import __version__

    takes_strings = bool(info.takes_strings)
    kind = "classification" if as_ == "classification" else "embedding" if takes_strings else "feature-vector"
    return {
        "schema": METADATA_SCHEMA,
        "name": name,
        "version": str(version),
        "task": task or f"{'text' if takes_strings else 'image'}-{kind}",
        "input": "string" if takes_strings else "image",
        "image_size": list(info.image_size) if info.image_size else None,
        "output_dim": info.output_dim,
        "description": description or "",
        "license": license,
        "sha256": sha256,
        "size": size,
        "module": _module_spec(info),
        "provenance": {**provenance, "created_by": f"hubcli {__version__}", "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
    }


def _module_spec(info) -> dict[str, Any]:
    """The parts of inspect's document a consumer needs before pulling: interface and size."""
    document = info.to_json()
    keep = ("format", "tensorflow_version", "signatures", "call_input_specs", "op_libraries", "size_bytes")
    variables = document["variables"]
    return {**{key: document[key] for key in keep}, "params": variables["params"], "trainable_params": variables["trainable_params"]}


def _module_from_run(run_path: Path, target: Path, as_: str) -> tuple[Path, dict]:
    """Save a run's feature module (head removed) or whole classifier as a Reusable SavedModel."""
    import tensorflow as tf

    from hubcli.export.artifacts import open_run
    from hubcli.train.layer import HubLayer

    run = open_run(run_path)
    if not run.keras_model.is_file():
        raise ExportError(f"run {run.path} has no model.keras")
    model = run.load_keras_model()
    encoders = [layer for layer in model.layers if isinstance(layer, HubLayer)]
    if len(encoders) != 1:
        raise ExportError(f"run {run.path}: expected one hub module in the model, found {len(encoders)}")
    encoder = encoders[0]
    run_meta = json.loads((run.path / "run.json").read_text(encoding="utf-8"))
    provenance = {"run": str(run.path.resolve()), "base_module": run_meta.get("module"), "labels": run.labels}
    if as_ == "feature-vector":
        if encoder.info.format == "tf1_hub":
            raise ExportError("the run used a TF1 Hub format module, which is always frozen: publish the original module instead")
        # HubLayer shares the module's own variables, so the loaded module object already holds
        # the run's (possibly fine-tuned) weights; re-saving it keeps its exact Reusable interface.
        module = encoder._module  # noqa: SLF001 - the loaded module object itself is what we re-save
        tf.saved_model.save(module, str(target), signatures=dict(module.signatures))
    else:
        _save_classifier(model, encoder, run.labels, target)
    return target, provenance


def _save_classifier(model, encoder, labels: list[str], target: Path) -> None:
    import tensorflow as tf

    class Classifier(tf.Module):
        # Shadow tf.Module's read-only properties so the Reusable SavedModel lists get saved.
        variables = ()
        trainable_variables = ()
        regularization_losses = ()

    # A tf.Module (not Keras) root: this is the object hub.load / HubLayer get back.
    root = Classifier()
    root.model = model
    root.labels_file = tf.saved_model.Asset(_write_labels_asset(labels, target.parent))
    # training=True must put the module in training mode too (batch-norm statistics), as in
    # any Reusable SavedModel, so the consumer decides what to fine-tune, not the run.
    encoder.trainable = True
    root.variables = [v.value for v in model.variables]
    root.trainable_variables = [v.value for v in model.trainable_variables]
    root.regularization_losses = list(getattr(encoder._module, "regularization_losses", ()))  # noqa: SLF001
    spec = tf.TensorSpec([None], tf.string, name="text") if encoder.takes_strings else tf.TensorSpec([None, *encoder.image_size, 3], tf.float32, name="images")

    @tf.function
    def call(inputs, training=False):
        return model(inputs, training=training)

    call.get_concrete_function(spec, True)
    call.get_concrete_function(spec, False)
    root.__call__ = call

    @tf.function(input_signature=[spec])
    def serving_default(inputs):
        return {"probabilities": model(inputs, training=False)}

    tf.saved_model.save(root, str(target), signatures={"serving_default": serving_default})


def _write_labels_asset(labels: list[str], where: Path) -> str:
    path = where / "labels.txt"
    path.write_text("\n".join(labels) + "\n", encoding="utf-8")
    return str(path)


@dataclass(frozen=True)
class Published:
    """Where a publish put a module, and the handle that pulls it back."""

    registry: str
    registry_path: str
    version: str
    archive: Path
    sha256: str
    size: int

    @property
    def handle(self) -> str:
        """A handle that ``hubcli pull --mirror <registry>`` resolves to this version."""
        return f"https://tfhub.dev/{self.registry_path}/{self.version}"

    def to_json(self) -> dict:
        return {
            "registry": self.registry,
            "name": self.registry_path,
            "version": self.version,
            "archive": str(self.archive),
            "sha256": self.sha256,
            "size": self.size,
            "handle": self.handle,
        }


def publish_module(
    archive: str | os.PathLike, registry_root: str, name: str | None = None, version: str | None = None
) -> Published:
    """Check ``archive`` as ``pull`` would and add it to the registry directory ``registry_root``.

    ``name`` and ``version`` default to those in the metadata file beside the
    archive (written by ``export-module``); given, they override it.
    """
    from hubcli.hub import registry

    if registry.is_remote(registry_root):
        raise UsageError(
            f"cannot publish to {registry_root}: registries over http(s) are read-only; "
            "publish into the directory that server serves (hubcli publish ARCHIVE --registry /path/to/dir)"
        )
    archive = Path(archive)
    if not archive.is_file():
        raise NotFoundError(f"no archive at {archive}")
    metadata_file = metadata_path_for(archive)
    metadata: dict[str, Any] = {}
    if metadata_file.is_file():
        try:
            metadata = json.loads(metadata_file.read_text(encoding="utf-8"))
        except ValueError:
            raise UsageError(f"{metadata_file} is not valid JSON") from None
    name = name or metadata.get("name")
    version = str(version or metadata.get("version") or "")
    if not name or not version:
        raise UsageError(f"{archive.name} has no metadata file ({metadata_file.name}); give --name OWNER/MODEL and --version N")
    if "/" not in name:
        # Hub handles (https://tfhub.dev/<owner>/<model>/<version>) need an owner part.
        raise UsageError(f"a published module needs a name of the form owner/model, not {name!r}; pass --name")
    if metadata.get("sha256") and sha256_file(archive) != metadata["sha256"]:
        raise IntegrityError(f"{archive.name} does not match the sha256 in {metadata_file.name}; re-run export-module")
    try:
        info = check_module_archive(archive)
    except (InvalidModuleError, UnsafeContentError) as err:
        raise type(err)(f"refusing to publish {archive.name}: {err}") from None
    if not metadata:
        metadata = module_metadata(info, name, version, None, None, None, sha256_file(archive), archive.stat().st_size, {"source": str(archive.resolve())}, "module")
    metadata = {**metadata, "name": name, "version": version}
    entry = registry.add_version(registry_root, name, version, archive, metadata)
    return Published(str(registry_root), name, version, Path(entry.archive), entry.sha256, entry.size)
