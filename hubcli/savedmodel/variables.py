"""A module's saved variables and their parameter counts.

TF2 SavedModels list their variables in the object graph (``SavedVariable``,
with ``trainable``); TF1 graphs hold them as variable nodes, trainable when the
``trainable_variables`` collection names them; Keras archives record weights
without trainability (``trainable`` is None, and so are the trainable counts).

Example:
    >>> weights = [Variable("kernel", "float32", (3, 4), True), Variable("mean", "float32", (4,), False)]
    >>> param_total(weights), trainable_param_total(weights)
    (16, 12)
    >>> trainable_param_total([Variable("w", "float32", (2,), None)]) is None
    True
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from hubcli.savedmodel import protowire as pw
from hubcli.savedmodel.messages import Shape, dtype_name, name_and_op, node_attrs, shape

_VARIABLE_OPS = frozenset({"VarHandleOp", "VariableV2", "Variable"})


@dataclass(frozen=True)
class Variable:
    """A saved variable; ``trainable`` is None when the format does not record it."""

    name: str
    dtype: str
    shape: Shape | None
    trainable: bool | None

    @property
    def params(self) -> int:
        """Its number of elements; 0 when any dimension is unknown."""
        if self.shape is None or any(d is None for d in self.shape):
            return 0
        return math.prod(self.shape)

    def to_json(self) -> dict[str, Any]:
        dims = None if self.shape is None else list(self.shape)
        return {"name": self.name, "dtype": self.dtype, "shape": dims, "trainable": self.trainable, "params": self.params}


def param_total(variables: Iterable[Variable]) -> int:
    """Parameters in all ``variables``."""
    return sum(v.params for v in variables)


def trainable_param_total(variables: Iterable[Variable]) -> int | None:
    """Parameters in the trainable ``variables``; None when any variable's trainability is unknown."""
    variables = list(variables)
    if any(v.trainable is None for v in variables):
        return None
    return sum(v.params for v in variables if v.trainable)


def saved_variable(raw: pw.Buffer) -> Variable:
    """A SavedVariable message: dtype = 1, shape = 2, trainable = 3, name = 6."""
    var = pw.collect(raw, (1, 2, 3, 6))
    return Variable(
        name=pw.text(var[6][-1]) if var[6] else "",
        dtype=dtype_name(var[1][-1] if var[1] else 0),
        shape=shape(var[2][-1]) if var[2] else (),
        trainable=bool(var[3][-1]) if var[3] else False,
    )


def graph_variables(graph_def: pw.Buffer, trainable_names: set[str]) -> tuple[Variable, ...]:
    """TF1 variables: the variable nodes of a GraphDef (node = 1); trainable when named in ``trainable_names``."""
    found = []
    for number, _, node in pw.fields(graph_def):
        if number != 1:
            continue
        name, op = name_and_op(node)
        if op in _VARIABLE_OPS:
            attrs = node_attrs(node)
            # AttrValue: type = 6, shape = 7
            dtype = pw.first(attrs.get("dtype", b""), 6, 0)
            shape_raw = pw.first(attrs.get("shape", b""), 7)
            found.append(Variable(name, dtype_name(dtype), shape(shape_raw) if shape_raw is not None else None, name in trainable_names))
    return tuple(found)
