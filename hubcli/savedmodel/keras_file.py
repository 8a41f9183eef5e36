"""Inspecting a Keras 3 ``.keras`` archive: a zip of ``config.json``, ``metadata.json`` and ``model.weights.h5``.

The architecture is JSON, so inputs, a final Dense layer's width and Lambda
layers (Python bytecode) are read from it; weight shapes come from the HDF5
file through h5py, which ships with Keras (without it, no variables are listed).

Example:
    >>> config = {"config": {"layers": [
    ...     {"class_name": "InputLayer", "config": {"name": "pixels", "batch_shape": [None, 16, 16, 3]}},
    ...     {"class_name": "Lambda", "config": {"name": "double"}},
    ...     {"class_name": "Dense", "config": {"units": 5}},
    ... ]}}
    >>> [str(spec) for spec in keras_inputs(config)], str(keras_output(config)), list(lambda_layers(config))
    (['float32[None,16,16,3]'], 'float32[None,5]', ['double'])
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hubcli.errors import InvalidModuleError
from hubcli.savedmodel.formats import KERAS
from hubcli.savedmodel.ops import MAX_LOCATIONS, PYTHON, RiskyOp
from hubcli.savedmodel.report import Asset, ModuleInfo
from hubcli.savedmodel.signatures import CallVariant, image_size, output_dim, takes_strings
from hubcli.savedmodel.specs import TensorSpec
from hubcli.savedmodel.variables import Variable

_LAMBDA_REASON = "Lambda layer stores Python bytecode that runs when loaded with safe_mode=False"


def inspect_keras_archive(path: Path) -> ModuleInfo:
    """Describe the ``.keras`` zip at ``path``; a zip without ``config.json`` is not a module."""
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        if "config.json" not in names:
            raise InvalidModuleError(f"{path} is a zip file but not a .keras model (no config.json)")
        config = json.loads(archive.read("config.json"))
        variables = _weights(archive, names)
        assets = tuple(Asset(n, archive.getinfo(n).file_size) for n in sorted(names) if n.startswith("assets/") and not n.endswith("/"))
    inputs = tuple(keras_inputs(config))
    call_variants = (CallVariant("call", inputs, {}, keras_output(config)),) if inputs else ()
    lambdas = list(lambda_layers(config))
    risky = (RiskyOp("Lambda", PYTHON, _LAMBDA_REASON, len(lambdas), tuple(lambdas[:MAX_LOCATIONS])),) if lambdas else ()
    return ModuleInfo(
        path=path,
        format=KERAS,
        tensorflow_version=None,
        tag_sets=(),
        signatures=(),
        call_input_specs=call_variants,
        image_size=image_size(call_variants, []),
        output_dim=output_dim(call_variants, []),
        takes_strings=takes_strings(call_variants, []),
        variables=variables,
        assets=assets,
        size_bytes=path.stat().st_size,
        risky_ops=risky,
        op_libraries=(),
        unknown_ops=(),
    )


def keras_inputs(config: dict[str, Any]) -> Iterator[TensorSpec]:
    """The model's inputs: its InputLayers, else the ``build_config`` input shape."""
    inner = config.get("config", {})
    layers = inner.get("layers", []) if isinstance(inner, dict) else []
    for layer in layers:
        if layer.get("class_name") == "InputLayer":
            layer_config = layer.get("config", {})
            shape = layer_config.get("batch_shape") or layer_config.get("batch_input_shape")
            dtype = layer_config.get("dtype", "float32")
            dtype = dtype.get("config", {}).get("name", "float32") if isinstance(dtype, dict) else dtype
            yield TensorSpec(layer_config.get("name"), dtype, None if shape is None else tuple(shape))
    if not layers or not any(layer.get("class_name") == "InputLayer" for layer in layers):
        shape = (config.get("build_config") or {}).get("input_shape")
        if shape and all(isinstance(d, (int, type(None))) for d in shape):
            yield TensorSpec("inputs", "float32", tuple(shape))


def keras_output(config: dict[str, Any]) -> TensorSpec | None:
    """The output of a final Dense layer, the only head that states its width in the config."""
    layers = (config.get("config") or {}).get("layers") or []
    last = layers[-1] if layers else {}
    units = (last.get("config") or {}).get("units") if last.get("class_name") == "Dense" else None
    return TensorSpec("output", "float32", (None, units)) if units else None


def lambda_layers(config: Any) -> Iterator[str]:
    """Names of the Lambda layers anywhere in a (nested) config."""
    if isinstance(config, dict):
        if config.get("class_name") == "Lambda":
            yield (config.get("config") or {}).get("name", "lambda")
        for value in config.values():
            yield from lambda_layers(value)
    elif isinstance(config, list):
        for item in config:
            yield from lambda_layers(item)


def _weights(archive: zipfile.ZipFile, names: set[str]) -> tuple[Variable, ...]:
    """Weight shapes from model.weights.h5 (trainability is not recorded)."""
    if "model.weights.h5" not in names:
        return ()
    try:
        import h5py
    except ImportError:
        return ()

    found = []
    with h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as weights:
        def visit(name: str, item: object) -> None:
            if isinstance(item, h5py.Dataset):
                found.append(Variable(name, str(item.dtype), tuple(item.shape), None))
        weights.visititems(visit)
    return tuple(found)
