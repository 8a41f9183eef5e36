"""hubcli: publish, discover and reuse pretrained TensorFlow Hub modules.

The library behind the ``hubcli`` command. Importing it is cheap: TensorFlow
is loaded only when a name that needs it (such as :class:`HubLayer`) is used.

Example:
    >>> import hubcli
    >>> path = hubcli.pull("https://tfhub.dev/google/imagenet/mobilenet_v2_100_224/feature_vector/5").path  # doctest: +SKIP
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
    "Handle": "hubcli.handles",
    "parse_handle": "hubcli.handles",
    "is_trusted_host": "hubcli.handles",
    "CatalogEntry": "hubcli.catalog",
    "RegistryVersion": "hubcli.registry",
    "pull": "hubcli.pull",
    "PullResult": "hubcli.pull",
    "resolve_module_path": "hubcli.pull",
    "CacheEntry": "hubcli.cache",
    "list_entries": "hubcli.cache",
    "verify_entry": "hubcli.cache",
    "find_prunable": "hubcli.cache",
    "Lockfile": "hubcli.lockfile",
    "inspect_module": "hubcli.inspection",
    "ModuleInfo": "hubcli.inspection",
    "content_digest": "hubcli.inspection",
    "HubLayer": "hubcli.layer",
    "TrainConfig": "hubcli.train_config",
    "train": "hubcli.training",
    "evaluate": "hubcli.training",
    "predict": "hubcli.training",
    "retrain_images": "hubcli.image_data",
    "ImageModality": "hubcli.image_data",
    "classify_text": "hubcli.text_data",
    "load_text_dataset": "hubcli.text_data",
    "TextDataset": "hubcli.text_data",
    "TextModality": "hubcli.text_data",
    "PreprocessedEncoder": "hubcli.layer",
    "LabeledData": "hubcli.splits",
    "Example": "hubcli.splits",
    "FeatureCache": "hubcli.feature_cache",
    "classification_metrics": "hubcli.evaluation",
    "export_run": "hubcli.export",
    "open_run": "hubcli.export",
    "ExportResult": "hubcli.export",
    "export_module": "hubcli.publish",
    "publish_module": "hubcli.publish",
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
