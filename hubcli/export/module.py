"""``export-module``: a module directory, or a trained run, packaged as a hub archive with metadata.

:func:`export_module` writes two files:

- ``<name>.tar.gz``: the module directory's *contents* at the archive root
  (``saved_model.pb``, ``variables/``...), as TF Hub hosting serves modules.
  The archive is deterministic: entries sorted, owner 0/0, mtime 0, fixed
  modes, and a gzip header without name or time, so the same module always
  gives the same sha256.
- ``<name>.json`` beside it (:func:`metadata_path_for`): name, version, task, the input
  and output spec read by :func:`hubcli.savedmodel.inspector.inspect_module`, the
  archive's sha256 and size, licence and provenance (:func:`module_metadata`).

It can package any TF2 SavedModel directory, or a run directory:
``as_="feature-vector"`` re-saves the run's hub module without the head (the
fine-tuned weights when the run fine-tuned it; the module keeps its
``__call__(inputs, training)``, ``variables``, ``trainable_variables`` and
``regularization_losses``), and ``as_="classification"`` saves the whole
classifier as a Reusable module whose ``__call__`` returns probabilities.

Packing, the metadata and the archive check are TensorFlow-free; only re-saving a run
loads TensorFlow. ``hubcli publish`` (:func:`hubcli.hub.publish.publish_module`) adds
an archive to a registry.

Example:
    >>> packed = export_module("runs/flowers", name="acme/flowers", version="1", as_="feature-vector")  # doctest: +SKIP
    >>> packed.archive.name, packed.metadata["task"]  # doctest: +SKIP
    ('acme-flowers-1.tar.gz', 'image-feature-vector')
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from hubcli.errors import ExportError, NotFoundError, UsageError
from hubcli.fsio import raise_if_disk_full, sha256_file
from hubcli.hub.module_archive import PackedModule, check_module_archive, metadata_path_for, module_metadata, pack_module
from hubcli.train.rundir import LABELS_FILE, is_run, open_run

EXPORT_KINDS = ("module", "feature-vector", "classification")


def export_module(
    source: str | os.PathLike,
    *,
    output: str | os.PathLike | None = None,
    name: str | None = None,
    version: str = "1",
    task: str | None = None,
    license: str | None = None,
    description: str | None = None,
    as_: str = "module",
    overwrite: bool = False,
) -> PackedModule:
    """Package a SavedModel directory (or a run, with ``as_``) as a hub archive plus metadata.

    ``output`` defaults to ``./<name>-<version>.tar.gz``; nothing is written unless the
    archive passes the checks a pull would run, and a full disk leaves nothing behind.
    """
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
    if as_ == "module" and is_run(source):
        raise UsageError(f"{source} is a run directory; pass --as feature-vector or --as classification")
    archive.parent.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(prefix=".hubcli-module-", dir=archive.parent) as tmp:
            tmp = Path(tmp)
            if as_ == "module":
                module_dir, provenance = source, {"source": str(source.resolve())}
            else:
                module_dir, provenance = _module_from_run(source, tmp / "module", as_)
            staged = tmp / archive.name
            pack_module(module_dir, staged)
            # The same checks a pull runs: what we could not pull back we do not hand out.
            info = check_module_archive(staged)
            metadata = module_metadata(
                info, name=name, version=version, task=task, license=license, description=description,
                sha256=sha256_file(staged), size=staged.stat().st_size, provenance=provenance, as_=as_,
            )
            staged_metadata = tmp / metadata_file.name
            staged_metadata.write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n", encoding="utf-8")
            os.replace(staged, archive)
            os.replace(staged_metadata, metadata_file)
    except BaseException as err:
        raise_if_disk_full(err, str(archive))
        raise
    return PackedModule(archive, metadata_file, metadata)


def _module_from_run(run_path: Path, target: Path, as_: str) -> tuple[Path, dict]:
    """Save a run's feature module (head removed) or whole classifier as a Reusable SavedModel."""
    import tensorflow as tf

    from hubcli.train.layer import HubLayer

    run = open_run(run_path)
    if not run.keras_model.is_file():
        raise ExportError(f"run {run.path} has no model.keras")
    model = run.load_keras_model()
    encoders = [layer for layer in model.layers if isinstance(layer, HubLayer)]
    if len(encoders) != 1:
        raise ExportError(f"run {run.path}: expected one hub module in the model, found {len(encoders)}")
    encoder = encoders[0]
    provenance = {"run": str(run.path.resolve()), "base_module": run.module, "labels": run.labels}
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
    path = where / LABELS_FILE
    path.write_text("\n".join(labels) + "\n", encoding="utf-8")
    return str(path)


