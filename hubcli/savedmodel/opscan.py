"""One walk over every op of a SavedModel's graphs and function libraries: risky ops, op libraries, unknown ops.

Checkpoint ops are where the module's own saver runs them; :class:`OpScan`
follows graph inputs and function calls to report only those something else
can reach (see :meth:`OpScan.add_meta_graph`).

Example:
    >>> scan = OpScan()
    >>> scan.risky_ops(), scan.op_libraries(), scan.unknown_ops()
    ((), (), ())
"""

from __future__ import annotations

from collections.abc import Iterable

from hubcli.savedmodel import protowire as pw
from hubcli.savedmodel.messages import function_refs, name_and_op, node_attrs, node_of
from hubcli.savedmodel.metagraph import MetaGraph
from hubcli.savedmodel.ops import CHECKPOINT_OPS, MAX_LOCATIONS, PRINT_TO_FILE, RISKY_OPS, RiskyOp, core_ops, op_library

# (graph node, functions it calls), collected while scanning one container's nodes
_Callers = list[tuple[str, set[str]]]


class OpScan:
    """Every op used by the graphs and function libraries added, and what they reveal."""

    def __init__(self):
        self.ops: set[str] = set()
        self.functions: set[str] = set()
        self.occurrences: list[tuple[str, str, str, str]] = []  # (op, container, node, label)
        self.print_to_file: list[tuple[str, str, str]] = []
        self.exempt: set[tuple[str, str, str]] = set()  # (label, container, node) of saver checkpoint ops

    def add_meta_graph(self, mg: MetaGraph, label: str) -> None:
        """Scan one meta graph; ``label`` prefixes its locations when a module has several."""
        # GraphDef: node = 1, library = 2 (FunctionDefLibrary: function = 1)
        graph = pw.collect(mg.graph_def, (1, 2))
        library = _function_library(graph[2])
        self.functions.update(library)

        calls: dict[str, set[str]] = {}  # caller container -> callee functions
        graph_callers: _Callers = []
        for node in graph[1]:
            self._scan_node(node, "graph", label, library, graph_callers)
        for fname, function in library.items():
            callees: _Callers = []
            for number, _, node in pw.fields(function):
                if number == 3:  # FunctionDef node_def = 3
                    self._scan_node(node, fname, label, library, callees)
            calls[fname] = set().union(*(c for _, c in callees)) if callees else set()
        self._exempt_saver_checkpoints(mg, label, graph[1], calls, graph_callers)

    def _exempt_saver_checkpoints(
        self, mg: MetaGraph, label: str, graph_nodes: list[memoryview], calls: dict[str, set[str]], graph_callers: _Callers
    ) -> None:
        """Checkpoint ops are expected where the saver runs. In the graph, they count only when a
        user can run them (a signature, a node collection reaches them); TF1 graphs keep the
        savers of every meta graph, all unreachable. In functions, they count unless the function
        is reached only from the saver's nodes."""
        saver_names = mg.saver_nodes()
        saver_roots = set().union(*(c for n, c in graph_callers if n in saver_names)) if graph_callers else set()
        called = set().union(*calls.values(), *(c for _, c in graph_callers)) if calls else set()
        other_roots = set().union(*(c for n, c in graph_callers if n not in saver_names)) if graph_callers else set()
        objects = mg.object_graph()
        other_roots |= set(objects.concrete) if objects else set()
        other_roots |= set(calls) - called
        tainted = _closure(other_roots, calls)
        saver_only = _closure(saver_roots, calls) - tainted
        checkpoint = [(c, n) for op, c, n, where in self.occurrences if where == label and op in CHECKPOINT_OPS]
        runnable = _reachable(graph_nodes, mg.run_roots()) if any(c == "graph" for c, _ in checkpoint) else set()
        for container, node in checkpoint:
            if (container == "graph" and node not in runnable) or container in saver_only:
                self.exempt.add((label, container, node))

    def _scan_node(self, node: memoryview, container: str, label: str, library: dict[str, memoryview], callers: _Callers) -> None:
        name, op = name_and_op(node)
        self.ops.add(op)
        if op in RISKY_OPS:
            self.occurrences.append((op, container, name, label))
        if op == "PrintV2":
            stream = pw.first(node_attrs(node).get("output_stream", b""), 2)  # AttrValue.s = 2
            if stream is not None and pw.text(stream).startswith("file://"):
                self.print_to_file.append((container, name, label))
        if op in library:
            callers.append((name, {op}))
        elif op in core_ops().take_functions:
            callers.append((name, function_refs(node)))

    def risky_ops(self) -> tuple[RiskyOp, ...]:
        grouped: dict[str, list[str]] = {}
        for op, container, node, label in self.occurrences:
            if (label, container, node) not in self.exempt:
                grouped.setdefault(op, []).append(_location(container, node, label))
        for container, node, label in self.print_to_file:
            grouped.setdefault("PrintV2", []).append(_location(container, node, label))
        found = []
        for op, locations in sorted(grouped.items()):
            category, reason = RISKY_OPS.get(op, PRINT_TO_FILE)
            found.append(RiskyOp(op, category, reason, len(locations), tuple(locations[:MAX_LOCATIONS])))
        return tuple(found)

    def _custom_ops(self) -> set[str]:
        return self.ops - self.functions - core_ops().registered

    def op_libraries(self) -> tuple[str, ...]:
        """Python packages to import before loading the module (their ops are used)."""
        return tuple(sorted({lib for op in self._custom_ops() if (lib := op_library(op))}))

    def unknown_ops(self) -> tuple[str, ...]:
        """Ops neither core TensorFlow nor a known library registers."""
        return tuple(sorted(op for op in self._custom_ops() if not op_library(op)))


def _function_library(libraries: list[memoryview]) -> dict[str, memoryview]:
    """FunctionDefs by name from FunctionDefLibrary messages (function = 1; FunctionDef signature = 1, OpDef name = 1)."""
    functions = {}
    for lib in libraries:
        for number, _, function in pw.fields(lib):
            if number == 1:
                functions[pw.text(pw.first(pw.first(function, 1, b""), 1, b""))] = function
    return functions


def _location(container: str, node: str, label: str) -> str:
    """``graph:<node>`` or ``function:<function>/<node>``, after the meta graph's tag label if any."""
    return f"{label}graph:{node}" if container == "graph" else f"{label}function:{container}/{node}"


def _reachable(nodes: list[memoryview], roots: set[str]) -> set[str]:
    """Graph nodes that running ``roots`` executes: everything upstream through data and control inputs."""
    inputs = {}
    for node in nodes:
        # NodeDef: name = 1, op = 2, input = 3 (repeated), then device and attrs, which are skipped
        name, found = "", []
        for number, _, value in pw.fields(node):
            if number == 1:
                name = pw.text(value)
            elif number == 3:
                found.append(node_of(pw.text(value)))
            elif number > 3:
                break
        inputs[name] = found
    return _closure((r for r in roots if r in inputs), inputs)


def _closure(roots: Iterable[str], edges: dict[str, Iterable[str]]) -> set[str]:
    """Everything reachable from ``roots`` along ``edges`` (roots included)."""
    seen, stack = set(), list(roots)
    while stack:
        name = stack.pop()
        if name not in seen:
            seen.add(name)
            stack.extend(edges.get(name, ()))
    return seen
