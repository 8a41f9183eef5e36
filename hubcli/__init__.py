"""hubcli: publish, discover and reuse pretrained TensorFlow Hub modules.

The library behind the ``hubcli`` command. Importing it is cheap: TensorFlow
is loaded only when a name that needs it (such as :class:`HubLayer`) is used.

Example:
    >>> import hubcli
    >>> path = hubcli.pull("https://tfhub.dev/google/imagenet/mobilenet_v2_100_224/feature_vector/5")  # doctest: +SKIP
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
