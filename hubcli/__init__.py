"""hubcli: publish, discover and reuse pretrained TensorFlow Hub modules.

The library behind the ``hubcli`` command. Importing it is cheap: TensorFlow
is loaded only when a name that needs it (such as :class:`HubLayer`) is used.

Example:
    >>> import hubcli
    >>> path = hubcli.hub.pull("https://tfhub.dev/google/imagenet/mobilenet_v2_100_224/feature_vector/5").path  # doctest: +SKIP
    >>> info = hubcli.inspect_module(path)  # doctest: +SKIP
    >>> layer = hubcli.HubLayer("mobilenet_v2", trainable=False)  # doctest: +SKIP
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# Public name -> defining module. Resolved on first use so `import hubcli` stays TF-free.
_LAZY = {
    "Settings": "hubcli.config",
    "HubcliError": "hubcli.errors",
    "Handle": "hubcli.hub.handles",
    "parse_handle": "hubcli.hub.handles",
    "is_trusted_host": "hubcli.hub.handles",
    "CatalogEntry": "hubcli.hub.catalog",
    "RegistryVersion": "hubcli.hub.registry",
    "pull": "hubcli.hub.pull",
    "PullResult": "hubcli.hub.pull",
    "resolve_module_path": "hubcli.hub.pull",
    "CacheEntry": "hubcli.hub.cache",
    "list_entries": "hubcli.hub.cache",
    "verify_entry": "hubcli.hub.cache",
    "find_prunable": "hubcli.hub.cache",
    "Lockfile": "hubcli.hub.lockfile",
    "inspect_module": "hubcli.savedmodel.inspector",
    "ModuleInfo": "hubcli.savedmodel.report",
    "content_digest": "hubcli.savedmodel.inspector",
    "HubLayer": "hubcli.train.layer",
    "TrainConfig": "hubcli.train.config",
    "train": "hubcli.train.core",
    "evaluate": "hubcli.train.inference",
    "predict": "hubcli.train.inference",
    "retrain_images": "hubcli.train.images",
    "ImageModality": "hubcli.train.images",
    "classify_text": "hubcli.train.text",
    "load_text_dataset": "hubcli.train.text_dataset",
    "TextDataset": "hubcli.train.text_dataset",
    "TextModality": "hubcli.train.text",
    "PreprocessedEncoder": "hubcli.train.layer",
    "LabeledData": "hubcli.train.splits",
    "Example": "hubcli.train.splits",
    "FeatureCache": "hubcli.train.feature_cache",
    "classification_metrics": "hubcli.train.metrics",
    "export_run": "hubcli.export.artifacts",
    "open_run": "hubcli.train.rundir",
    "ExportResult": "hubcli.export.artifacts",
    "export_module": "hubcli.export.module",
    "publish_module": "hubcli.hub.publish",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'hubcli' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
