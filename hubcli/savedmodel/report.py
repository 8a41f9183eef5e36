"""The inspect report: :class:`ModuleInfo`, and its stable JSON document.

``ModuleInfo.to_json()`` (``hubcli inspect --json`` adds ``schema:
"hubcli.inspect/1"`` and ``module``, the argument as typed) is a stable document::

    path, format ("tf2_saved_model" | "tf1_hub" | "keras"), tensorflow_version (str | null)
    tag_sets        [[tag, ...], ...]                 one per meta graph
    signatures      [{key, tags, method_name, inputs: {name: SPEC}, outputs: {name: SPEC}}]
    call_input_specs [{function, arg_names, args: [VALUE], kwargs: {name: VALUE}, output: VALUE}]
                    one per traced variant of the root's __call__ (e.g. training True / False)
    image_size      [height, width] | null            output_dim  int | null
    takes_strings   bool
    variables       {count, trainable_count, params, trainable_params, non_trainable_params,
                     items: [{name, dtype, shape, trainable, params}]}   (trainable*: null if unknown)
    assets          [{path, size_bytes}]              size_bytes  int (all files)
    risky_ops       [{op, category ("filesystem" | "network" | "python"), reason, count, locations}]
    op_libraries    [python package, ...]             unknown_ops [op, ...]

    SPEC  = {name, dtype, shape: [int | null, ...] | null (unknown rank), kind ("tensor" | "sparse" | ...)}
    VALUE = {"type": "tensor_spec", ...SPEC} | {"type": "namedtuple", name, fields} | list | dict
            | bool | int | float | str | null

Example:
    >>> from pathlib import Path
    >>> info = ModuleInfo(
    ...     path=Path("/m"), format="keras", tensorflow_version=None, tag_sets=(), signatures=(), call_input_specs=(),
    ...     image_size=(16, 16), output_dim=5, takes_strings=False, variables=(Variable("w", "float32", (3, 5), None),),
    ...     assets=(), size_bytes=100, risky_ops=(), op_libraries=(), unknown_ops=(),
    ... )
    >>> info.param_count, info.trainable_param_count, info.to_json()["variables"]["params"]
    (15, None, 15)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubcli.savedmodel.formats import ModuleFormat
from hubcli.savedmodel.ops import RiskyOp
from hubcli.savedmodel.signatures import CallVariant, Signature
from hubcli.savedmodel.variables import Variable, param_total, trainable_param_total


@dataclass(frozen=True)
class Asset:
    """A file under ``assets/`` or ``assets.extra/`` (a vocabulary, a label map...)."""

    path: str  # relative to the module directory, POSIX separators
    size_bytes: int

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "size_bytes": self.size_bytes}


@dataclass(frozen=True)
class ModuleInfo:
    """Everything :func:`~hubcli.savedmodel.inspector.inspect_module` learned about a module. ``to_json()`` is the stable document."""

    path: Path
    format: ModuleFormat
    tensorflow_version: str | None
    tag_sets: tuple[tuple[str, ...], ...]
    signatures: tuple[Signature, ...]
    call_input_specs: tuple[CallVariant, ...]
    image_size: tuple[int, int] | None
    output_dim: int | None
    takes_strings: bool
    variables: tuple[Variable, ...]
    assets: tuple[Asset, ...]
    size_bytes: int
    risky_ops: tuple[RiskyOp, ...]
    op_libraries: tuple[str, ...]
    unknown_ops: tuple[str, ...]

    @property
    def variable_count(self) -> int:
        return len(self.variables)

    @property
    def param_count(self) -> int:
        return param_total(self.variables)

    @property
    def trainable_param_count(self) -> int | None:
        return trainable_param_total(self.variables)

    @property
    def non_trainable_param_count(self) -> int | None:
        trainable = self.trainable_param_count
        return None if trainable is None else self.param_count - trainable

    def signature(self, key: str) -> Signature | None:
        """The first signature named ``key`` (meta graphs are searched in file order)."""
        return next((s for s in self.signatures if s.key == key), None)

    def to_json(self) -> dict[str, Any]:
        """The ``hubcli.inspect/1`` document described in this module's docstring."""
        trainable = [v for v in self.variables if v.trainable]
        return {
            "path": str(self.path),
            "format": self.format,
            "tensorflow_version": self.tensorflow_version,
            "tag_sets": [list(tags) for tags in self.tag_sets],
            "signatures": [s.to_json() for s in self.signatures],
            "call_input_specs": [c.to_json() for c in self.call_input_specs],
            "image_size": None if self.image_size is None else list(self.image_size),
            "output_dim": self.output_dim,
            "takes_strings": self.takes_strings,
            "variables": {
                "count": self.variable_count,
                "trainable_count": None if self.trainable_param_count is None else len(trainable),
                "params": self.param_count,
                "trainable_params": self.trainable_param_count,
                "non_trainable_params": self.non_trainable_param_count,
                "items": [v.to_json() for v in self.variables],
            },
            "assets": [a.to_json() for a in self.assets],
            "size_bytes": self.size_bytes,
            "risky_ops": [r.to_json() for r in self.risky_ops],
            "op_libraries": list(self.op_libraries),
            "unknown_ops": list(self.unknown_ops),
        }
