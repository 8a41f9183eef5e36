"""Lazy views of a SavedModel's meta graphs (``meta_graph.proto``) and object graph (``saved_object_graph.proto``).

Each view keeps the encoded bytes and decodes a part only when asked, so
reading one signature never walks the (possibly very large) GraphDef.

Example (a MetaGraphDef holding only its MetaInfoDef: tags = 4, tensorflow_version = 5):
    >>> info = bytes([0x22, 5, *b"serve", 0x2A, 6, *b"2.21.0"])
    >>> graph = MetaGraph(memoryview(bytes([0x0A, len(info), *info])))
    >>> graph.tags, graph.tensorflow_version, graph.signatures(), graph.object_graph()
    (('serve',), '2.21.0', [], None)
    >>> primary_meta_graph([graph]) is graph
    True
"""

from __future__ import annotations

from hubcli.savedmodel import protowire as pw
from hubcli.savedmodel.messages import has_field, map_entry, node_of
from hubcli.savedmodel.signatures import CallVariant, Signature, tensor_info_map, tensor_info_nodes
from hubcli.savedmodel.specs import NamedTuple, structured_value
from hubcli.savedmodel.variables import Variable, graph_variables, saved_variable

# Not a callable signature: TF stores the module's init op under this key and hides it on load.
_INIT_OP_SIGNATURE = "__saved_model_init_op"


def primary_meta_graph(meta_graphs: list[MetaGraph]) -> MetaGraph:
    """The meta graph a consumer loads by default: untagged (TF1 Hub), else ``serve``, else the first."""
    # TF1 Hub modules keep inference in the untagged graph (a "train" one may follow); TF2 uses "serve".
    for wanted in ((), ("serve",)):
        for mg in meta_graphs:
            if mg.tags == wanted:
                return mg
    return meta_graphs[0]


class MetaGraph:
    """Lazy view of one MetaGraphDef."""

    def __init__(self, raw: memoryview):
        # meta_info_def = 1, graph_def = 2, saver_def = 3, collection_def = 4, signature_def = 5,
        # object_graph_def = 7
        parts = pw.collect(raw, (1, 2, 3, 4, 5, 7))
        self._parts = parts
        info = parts[1][0] if parts[1] else memoryview(b"")
        # MetaInfoDef: tags = 4, tensorflow_version = 5
        info_fields = pw.collect(info, (4, 5))
        self.tags = tuple(sorted(pw.text(t) for t in info_fields[4]))
        self.tensorflow_version = pw.text(info_fields[5][-1]) if info_fields[5] else None

    @property
    def graph_def(self) -> memoryview:
        return self._parts[2][0] if self._parts[2] else memoryview(b"")

    def signatures(self) -> list[Signature]:
        found = []
        for entry in self._parts[5]:
            key, value = map_entry(entry)
            if pw.text(key) == _INIT_OP_SIGNATURE:
                continue
            # SignatureDef: inputs = 1, outputs = 2 (map<string, TensorInfo>), method_name = 3
            sig = pw.collect(value, (1, 2, 3))
            found.append(Signature(
                key=pw.text(key),
                tags=self.tags,
                method_name=pw.text(sig[3][-1]) if sig[3] else "",
                inputs=tensor_info_map(sig[1]),
                outputs=tensor_info_map(sig[2]),
            ))
        return sorted(found, key=lambda s: s.key)

    def saver_nodes(self) -> set[str]:
        """Node names of the saver's save and restore ops (SaverDef: save_tensor_name = 2, restore_op_name = 3)."""
        if not self._parts[3]:
            return set()
        saver = pw.collect(self._parts[3][0], (2, 3))
        return {node_of(pw.text(v)) for v in saver[2] + saver[3]}

    def run_roots(self) -> set[str]:
        """Graph nodes a user of the module can run: every signature's tensors (the init op's too)
        and every node_list collection (main op, table initializers, update ops...)."""
        roots = set()
        for entry in self._parts[5]:
            # SignatureDef: inputs = 1, outputs = 2
            for number, _, tensors in pw.fields(map_entry(entry)[1]):
                if number in (1, 2):
                    roots.update(tensor_info_nodes(map_entry(tensors)[1]))
        for entry in self._parts[4]:
            # CollectionDef: node_list = 1 (NodeList: value = 1)
            node_list = pw.first(map_entry(entry)[1], 1)
            if node_list is not None:
                roots.update(node_of(pw.text(v)) for n, _, v in pw.fields(node_list) if n == 1)
        return roots

    def collection(self, name: str) -> list[memoryview]:
        """Items of a bytes_list collection (CollectionDef: bytes_list = 2, BytesList: value = 1)."""
        for entry in self._parts[4]:
            key, value = map_entry(entry)
            if pw.text(key) == name:
                bytes_list = pw.first(value, 2)
                return [] if bytes_list is None else pw.collect(bytes_list, (1,))[1]
        return []

    def object_graph(self) -> ObjectGraph | None:
        return ObjectGraph(self._parts[7][0]) if self._parts[7] else None

    def graph_variables(self) -> tuple[Variable, ...]:
        """TF1 variables: variable nodes, trainable when listed in the trainable_variables collection."""
        # VariableDef: variable_name = 1
        trainable = {node_of(pw.text(pw.first(item, 1, b""))) for item in self.collection("trainable_variables")}
        return graph_variables(self.graph_def, trainable)


class ObjectGraph:
    """Lazy view of a SavedObjectGraph."""

    def __init__(self, raw: memoryview):
        # nodes = 1 (SavedObject), concrete_functions = 2 (map<string, SavedConcreteFunction>)
        parts = pw.collect(raw, (1, 2))
        self.nodes = parts[1]
        self.concrete = {pw.text(k): v for k, v in map(map_entry, parts[2])}

    def _kind(self, index: int, number: int) -> memoryview | None:
        # SavedObject oneof kind: user_object = 4, function = 6, variable = 7
        return pw.first(self.nodes[index], number) if 0 <= index < len(self.nodes) else None

    def _children(self, index: int) -> dict[str, int]:
        """Named edges of object ``index`` (SavedObject children = 1: ObjectReference node_id = 1, local_name = 2)."""
        edges = {}
        for number, _, ref in pw.fields(self.nodes[index]):
            if number == 1:
                edge = pw.collect(ref, (1, 2))
                edges[pw.text(edge[2][-1]) if edge[2] else ""] = edge[1][-1] if edge[1] else 0
        return edges

    def _variable_ids(self) -> list[int]:
        """Variables in the root's ``variables`` list (what ``tf.saved_model.load(...).variables`` gives),
        else every saved variable. Exporters may save extra copies outside that list."""
        is_variable = [has_field(node, 7) for node in self.nodes]
        listed = self._children(0).get("variables") if self.nodes else None
        if listed is None or not 0 <= listed < len(self.nodes):
            return [i for i, flag in enumerate(is_variable) if flag]
        found, seen, stack = [], set(), [listed]
        while stack:  # the list may nest wrappers (lists of lists); guard against cycles
            index = stack.pop()
            if index in seen or not 0 <= index < len(self.nodes):
                continue
            seen.add(index)
            if is_variable[index]:
                found.append(index)
            else:
                stack.extend(reversed(list(self._children(index).values())))
        return found

    def variables(self) -> tuple[Variable, ...]:
        return tuple(saved_variable(pw.first(self.nodes[index], 7)) for index in self._variable_ids())

    def call_variants(self, attribute: str) -> tuple[CallVariant, ...]:
        """Traced variants of the root object's function ``attribute`` (e.g. ``__call__``)."""
        child = self._children(0).get(attribute) if self.nodes else None
        function = self._kind(child, 6) if child is not None else None
        if function is None:
            return ()
        # SavedFunction: concrete_functions = 1, function_spec = 2
        # (FunctionSpec: fullargspec = 1, is_method = 2; a method's first argument is self)
        parts = pw.collect(function, (1, 2))
        spec = pw.collect(parts[2][-1], (1, 2)) if parts[2] else {1: [], 2: []}
        argspec = structured_value(spec[1][-1]) if spec[1] else None
        arg_names = (argspec.fields.get("args") or []) if isinstance(argspec, NamedTuple) else []
        arg_names = tuple(arg_names[1:] if spec[2] and spec[2][-1] else arg_names)
        variants = []
        for name in map(pw.text, parts[1]):
            concrete = self.concrete.get(name)
            if concrete is None:
                continue
            # SavedConcreteFunction: canonicalized_input_signature = 3, output_signature = 4
            signature = pw.collect(concrete, (3, 4))
            inputs = structured_value(signature[3][-1]) if signature[3] else ((), {})
            args, kwargs = inputs if isinstance(inputs, tuple) and len(inputs) == 2 else ((), {})
            output = structured_value(signature[4][-1]) if signature[4] else None
            variants.append(CallVariant(name, tuple(args), dict(kwargs), output, arg_names[: len(args)]))
        return tuple(variants)
