"""What is inside a module, read straight from its files, without importing TensorFlow.

:func:`inspect_module` reads ``saved_model.pb`` (and ``tfhub_module.pb``,
``keras_metadata.pb`` or a ``.keras`` archive) with the wire-format reader in
:mod:`hubcli.savedmodel.protowire`, walking only the fields it reports. Field numbers
come from TensorFlow's ``saved_model.proto``, ``meta_graph.proto``,
``saved_object_graph.proto``, ``struct.proto``, ``graph.proto``,
``function.proto``, ``attr_value.proto`` and ``tensor_shape.proto``, and from
tensorflow_hub's ``module_def.proto``.

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
    >>> info = inspect_module("/path/to/mobilenet_v2_feature_vector")  # doctest: +SKIP
    >>> info.format, info.image_size, info.output_dim, info.takes_strings  # doctest: +SKIP
    ('tf2_saved_model', (224, 224), 1280, False)
    >>> for package in info.op_libraries:  # e.g. "tensorflow_text": import before tf.saved_model.load  # doctest: +SKIP
    ...     importlib.import_module(package)
"""

from __future__ import annotations

import hashlib
import json
import math
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from hubcli.errors import InvalidModuleError, NotFoundError
from hubcli.savedmodel import protowire as pw

TF2_SAVED_MODEL, TF1_HUB, KERAS = "tf2_saved_model", "tf1_hub", "keras"

# types.proto DataType numbers -> numpy-style names. Values above 100 are the legacy *_REF types.
_DTYPES = {
    0: "invalid", 1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8", 7: "string",
    8: "complex64", 9: "int64", 10: "bool", 11: "qint8", 12: "quint8", 13: "qint32", 14: "bfloat16",
    15: "qint16", 16: "quint16", 17: "uint16", 18: "complex128", 19: "float16", 20: "resource",
    21: "variant", 22: "uint32", 23: "uint64", 24: "float8_e5m2", 25: "float8_e4m3fn",
    26: "float8_e4m3fnuz", 27: "float8_e4m3b11fnuz", 28: "float8_e5m2fnuz", 29: "int4", 30: "uint4",
    31: "int2", 32: "uint2", 33: "float4_e2m1fn",
}
_FLOAT_DTYPES = {"float16", "bfloat16", "float32", "float64"}

# Ops whose presence deserves a person's attention before the module is loaded: SavedModels are
# programs, and these are the ones that reach outside the tensors they are given.
_FILESYSTEM, _NETWORK, _PYTHON = "filesystem", "network", "python"
_RISKY_OPS = {
    # Arbitrary file I/O on a path computed by the graph.
    "ReadFile": (_FILESYSTEM, "reads any file the process can read"),
    "WriteFile": (_FILESYSTEM, "writes (creates or overwrites) any file the process can write"),
    "MatchingFiles": (_FILESYSTEM, "lists directories by glob pattern (reveals the file system)"),
    "ImmutableConst": (_FILESYSTEM, "memory-maps the file named in its attrs into a tensor"),
    "LoadAndRemapMatrix": (_FILESYSTEM, "reads a checkpoint from a path given at run time"),
    # Checkpoint ops are normal inside the SavedModel's own saver; anywhere else they read or
    # write checkpoint files at a graph-chosen path.
    "Save": (_FILESYSTEM, "writes a checkpoint file outside the module's saver"),
    "SaveSlices": (_FILESYSTEM, "writes a checkpoint file outside the module's saver"),
    "SaveV2": (_FILESYSTEM, "writes a checkpoint file outside the module's saver"),
    "MergeV2Checkpoints": (_FILESYSTEM, "moves and deletes checkpoint files outside the module's saver"),
    "Restore": (_FILESYSTEM, "reads a checkpoint file outside the module's saver"),
    "RestoreSlice": (_FILESYSTEM, "reads a checkpoint file outside the module's saver"),
    "RestoreV2": (_FILESYSTEM, "reads a checkpoint file outside the module's saver"),
    # TF1 queue readers and tf.data sources/sinks open the files they are pointed at.
    **{op: (_FILESYSTEM, "reads files named at run time") for op in (
        "WholeFileReader", "WholeFileReaderV2", "TextLineReader", "TextLineReaderV2",
        "FixedLengthRecordReader", "FixedLengthRecordReaderV2", "TFRecordReader", "TFRecordReaderV2",
        "LMDBReader", "TFRecordDataset", "TFRecordDatasetV2", "TextLineDataset",
        "FixedLengthRecordDataset", "FixedLengthRecordDatasetV2", "LMDBDataset",
        "ExperimentalLMDBDataset", "CSVDataset", "CSVDatasetV2", "ExperimentalCSVDataset",
        "SqlDataset", "ExperimentalSqlDataset", "LoadDataset",
    )},
    **{op: (_FILESYSTEM, "writes files at a path chosen at run time") for op in (
        "SaveDataset", "SaveDatasetV2", "SnapshotDataset", "SnapshotDatasetV2", "DatasetToTFRecord",
        "ExperimentalDatasetToTFRecord", "CacheDataset", "CacheDatasetV2", "CreateSummaryFileWriter",
        "CreateSummaryDbWriter", "DistributedSave",
    )},
    # tfdbg ops send tensors to their debug_urls: file:// writes files, grpc:// opens a connection.
    **{op: (_NETWORK, "sends tensors to debug URLs (grpc:// connections or file:// dumps)") for op in (
        "DebugIdentity", "DebugIdentityV2", "DebugIdentityV3", "DebugNanCount", "DebugNumericSummary",
        "DebugNumericSummaryV2",
    )},
    # tf.data service and tf.distribute RPC ops talk to remote servers.
    **{op: (_NETWORK, "connects to a tf.data service dispatcher or worker") for op in (
        "DataServiceDataset", "DataServiceDatasetV2", "DataServiceDatasetV3", "DataServiceDatasetV4",
        "RegisterDataset", "RegisterDatasetV2",
    )},
    **{op: (_NETWORK, "opens an RPC client or server") for op in (
        "RpcClient", "RpcCall", "RpcServer", "RpcServerStart", "RpcServerRegister",
    )},
    # py_func family: runs a Python callable of the loading process; the code is not in the module,
    # so the module only works next to the program that made it, and does whatever that code does.
    "PyFunc": (_PYTHON, "calls back into Python code outside the module"),
    "PyFuncStateless": (_PYTHON, "calls back into Python code outside the module"),
    "EagerPyFunc": (_PYTHON, "calls back into Python code outside the module"),
}
# InitializeTableFromTextFile(V2) is deliberately absent: it is how vocabulary assets are read,
# and the assets it reads are listed in ModuleInfo.assets.
_CHECKPOINT_OPS = frozenset({"Save", "SaveSlices", "SaveV2", "MergeV2Checkpoints", "Restore", "RestoreSlice", "RestoreV2"})
# PrintV2 only touches the file system when its output_stream attr is "file://...".
_PRINT_TO_FILE = (_FILESYSTEM, "tf.print appends to a file (output_stream=file://...)")

# Op libraries: custom ops that `import tensorflow` alone does not register. tensorflow_text's
# names come from its op registrations (TF Text 2.21); the others register under a prefix.
_TENSORFLOW_TEXT_OPS = frozenset({
    "CaseFoldUTF8", "ConstrainedSequence", "FastBertNormalize", "FastWordpieceTokenizeWithOffsets",
    "FindSourceOffsets", "MaxSpanningTree", "NormalizeUTF8", "NormalizeUTF8WithOffsetsMap",
    "PhraseTokenize", "RegexSplitWithOffsets", "RougeL", "SentenceFragments", "SentenceFragmentsV2",
    "SentencepieceDetokenizeOp", "SentencepieceIdToStringOp", "SentencepieceOp",
    "SentencepieceStringToIdOp", "SentencepieceTokenizeOp", "SentencepieceTokenizeWithOffsetsOp",
    "SentencepieceVocabSizeOp", "SplitMergeTokenizeWithOffsets", "TokenizerFromLogits",
    "UnicodeScriptTokenizeWithOffsets", "WhitespaceTokenizeWithOffsets", "WordpieceTokenizeWithOffsets",
})
_OP_PREFIX_LIBRARIES = (
    ("TFText>", "tensorflow_text"),
    ("Addons>", "tensorflow_addons"),
    ("IO>", "tensorflow_io"),
    ("TFRA>", "tensorflow_recommenders_addons"),
    ("SimpleML", "tensorflow_decision_forests"),
)

# Not a callable signature: TF stores the module's init op under this key and hides it on load.
_INIT_OP_SIGNATURE = "__saved_model_init_op"
_MAX_LOCATIONS = 5
_MAX_DEPTH = 64  # nesting limit for structured values: a corrupt file must not exhaust the stack
_VARIABLE_OPS = frozenset({"VarHandleOp", "VariableV2", "Variable"})


# --------------------------------------------------------------------------- public data


@dataclass(frozen=True)
class TensorSpec:
    """A tensor the module takes or returns. ``shape`` is None for unknown rank; None dims are unknown.

    ``kind`` is ``"tensor"`` for dense tensors, ``"sparse"`` for COO sparse ones, otherwise the
    composite type (``"ragged"``...).
    """

    name: str | None
    dtype: str
    shape: tuple[int | None, ...] | None
    kind: str = "tensor"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": None if self.shape is None else list(self.shape), "kind": self.kind}

    def __str__(self) -> str:
        dims = "?" if self.shape is None else "[" + ",".join("None" if d is None else str(d) for d in self.shape) + "]"
        kind = "" if self.kind == "tensor" else f" {self.kind}"
        return f"{self.dtype}{dims}{kind}"


@dataclass(frozen=True)
class NamedTuple:
    """A Python namedtuple recorded in a function's input or output structure."""

    name: str
    fields: dict[str, Any]


@dataclass(frozen=True)
class Signature:
    """One SignatureDef of one meta graph (identified by its ``tags``)."""

    key: str
    tags: tuple[str, ...]
    method_name: str
    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "tags": list(self.tags),
            "method_name": self.method_name,
            "inputs": {k: v.to_json() for k, v in self.inputs.items()},
            "outputs": {k: v.to_json() for k, v in self.outputs.items()},
        }


@dataclass(frozen=True)
class CallVariant:
    """One traced variant of the restored ``__call__``: positional args (named by ``arg_names``
    where the function spec records them), keyword args, and the output structure."""

    function: str
    args: tuple
    kwargs: dict[str, Any]
    output: Any
    arg_names: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "arg_names": list(self.arg_names),
            "args": _jsonable(self.args),
            "kwargs": _jsonable(self.kwargs),
            "output": _jsonable(self.output),
        }

    def describe(self) -> str:
        """``(images=float32[None,32,32,3], training=True) -> float32[None,8]``."""
        names = list(self.arg_names) + [""] * (len(self.args) - len(self.arg_names))
        args = [f"{n}={_describe(a)}" if n else _describe(a) for n, a in zip(names, self.args)]
        args += [f"{k}={_describe(v)}" for k, v in self.kwargs.items()]
        return f"({', '.join(args)}) -> {_describe(self.output)}"


@dataclass(frozen=True)
class Variable:
    """A saved variable; ``trainable`` is None when the format does not record it."""

    name: str
    dtype: str
    shape: tuple[int | None, ...] | None
    trainable: bool | None

    @property
    def params(self) -> int:
        if self.shape is None or any(d is None for d in self.shape):
            return 0
        return math.prod(self.shape)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": None if self.shape is None else list(self.shape), "trainable": self.trainable, "params": self.params}


@dataclass(frozen=True)
class Asset:
    path: str  # relative to the module directory, POSIX separators
    size_bytes: int


@dataclass(frozen=True)
class RiskyOp:
    """An op that reaches the file system, the network or Python, with where it occurs."""

    op: str
    category: str
    reason: str
    count: int
    locations: tuple[str, ...]  # "graph:<node>" or "function:<function>/<node>", first few only


@dataclass(frozen=True)
class ModuleInfo:
    """Everything :func:`inspect_module` learned about a module. ``to_json()`` is the stable document."""

    path: Path
    format: str
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
        return sum(v.params for v in self.variables)

    @property
    def trainable_param_count(self) -> int | None:
        if any(v.trainable is None for v in self.variables):
            return None
        return sum(v.params for v in self.variables if v.trainable)

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
            "assets": [{"path": a.path, "size_bytes": a.size_bytes} for a in self.assets],
            "size_bytes": self.size_bytes,
            "risky_ops": [
                {"op": r.op, "category": r.category, "reason": r.reason, "count": r.count, "locations": list(r.locations)}
                for r in self.risky_ops
            ],
            "op_libraries": list(self.op_libraries),
            "unknown_ops": list(self.unknown_ops),
        }


# --------------------------------------------------------------------------- entry points


def inspect_module(path: str | Path) -> ModuleInfo:
    """Describe the module at ``path``: a SavedModel directory (TF2, TF1 Hub format, Keras) or a ``.keras`` file.

    Raises:
        NotFoundError: nothing at ``path``.
        InvalidModuleError: not a module, or its files are truncated or corrupt.

    Example:
        >>> info = inspect_module("modules/tiny_text")  # doctest: +SKIP
        >>> info.signature("serving_default").inputs["sentences"]  # doctest: +SKIP
        TensorSpec(name='sentences', dtype='string', shape=(None,), kind='tensor')
    """
    path = Path(path).expanduser().absolute()  # ModuleInfo.path must mean the same from any directory.
    if not path.exists():
        raise NotFoundError(f"no such module path: {path}")
    try:
        if path.is_file():
            if zipfile.is_zipfile(path):
                return _inspect_keras_archive(path)
            if path.suffix == ".keras":
                raise InvalidModuleError(f"{path} is not a Keras file (not a zip archive)")
            raise InvalidModuleError(f"{path} is not a module: expected a SavedModel directory or a .keras file")
        return _inspect_saved_model(path)
    # A corrupt file shows up as a DecodeError, or as a field whose wire type is not the schema's
    # (an int where a message was due, or the reverse), which surfaces as TypeError when used.
    except (pw.DecodeError, TypeError, IndexError, KeyError, ValueError, OverflowError, RecursionError, zipfile.BadZipFile) as err:
        raise InvalidModuleError(f"{path} is damaged: cannot parse it ({type(err).__name__}: {err})") from None
    except OSError as err:
        raise InvalidModuleError(f"cannot read module {path}: {err.strerror or err}") from None


def content_digest(path: str | Path) -> str:
    """A key that changes with any module file: sha256 over the sorted ``(relative path, file sha256)`` list.

    For a module in the hubcli cache whose files still match the cache manifest
    (checked with ``stat``), the recorded per-file sha256s are used, so nothing
    is re-read; elsewhere each file is hashed. Both give the same value.

    Example:
        >>> content_digest("modules/tiny_image")  # doctest: +SKIP
        'sha256:5be1...'
    """
    from hubcli.fsio import sha256_file

    root = Path(path)
    if not root.exists():
        raise NotFoundError(f"no such module path: {root}")
    if root.is_file():
        hashes = {root.name: sha256_file(root)}
    else:
        hashes = _manifest_hashes(root)
        if hashes is None:
            files = (p for p in root.rglob("*") if p.is_file() and not p.is_symlink())
            hashes = {file.relative_to(root).as_posix(): sha256_file(file) for file in files}
    digest = hashlib.sha256()
    for relative, file_hash in sorted(hashes.items()):
        digest.update(f"{relative}\0{file_hash}\n".encode())
    return "sha256:" + digest.hexdigest()


def _manifest_hashes(root: Path) -> dict[str, str] | None:
    """Per-file sha256s from the cache manifest of the entry at ``root``, if it is one and is intact."""
    from hubcli.hub import cache

    sidecar = cache.EntryPaths(root.parent, root.name).sidecar
    if not sidecar.is_file():
        return None
    entry = cache.read_entry(root.parent, root.name)
    if entry is None or not entry.files or cache.quick_problems(entry):
        return None
    return {relative: recorded["sha256"] for relative, recorded in entry.files.items()}


# --------------------------------------------------------------------------- SavedModel


def _inspect_saved_model(root: Path) -> ModuleInfo:
    pb = root / "saved_model.pb"
    if not pb.is_file():
        if (root / "saved_model.pbtxt").is_file():
            raise InvalidModuleError(f"{root} holds a text-format saved_model.pbtxt, which inspect does not read; convert it to saved_model.pb")
        raise InvalidModuleError(f"{root} is not a module: no saved_model.pb (nor a .keras file)")
    data = memoryview(pb.read_bytes())
    meta_graphs = [_MetaGraph(raw) for number, _, raw in pw.fields(data) if number == 2]
    if not meta_graphs:
        raise InvalidModuleError(f"{pb} holds no meta graph (empty, truncated or not a SavedModel)")

    if (root / "tfhub_module.pb").is_file():
        _check_hub_module_def(root / "tfhub_module.pb")
        module_format = TF1_HUB
    elif (root / "keras_metadata.pb").is_file():
        module_format = KERAS
    else:
        module_format = TF2_SAVED_MODEL

    primary = _primary_meta_graph(meta_graphs)
    signatures = tuple(s for mg in meta_graphs for s in mg.signatures())
    objects = primary.object_graph()
    call_variants = objects.call_variants("__call__") if objects else ()
    variables = objects.variables() if objects else primary.graph_variables()

    scan = _OpScan()
    for mg in meta_graphs:
        label = "" if len(meta_graphs) == 1 else f"[{','.join(mg.tags) or 'no tags'}]"
        scan.add_meta_graph(mg, label)

    default_sigs = _default_signatures(signatures, primary.tags)
    assets = _assets(root)
    return ModuleInfo(
        path=root,
        format=module_format,
        tensorflow_version=primary.tensorflow_version,
        tag_sets=tuple(mg.tags for mg in meta_graphs),
        signatures=signatures,
        call_input_specs=call_variants,
        image_size=_image_size(call_variants, default_sigs),
        output_dim=_output_dim(call_variants, default_sigs),
        takes_strings=any(spec.dtype == "string" for spec in _input_specs(call_variants, signatures)),
        variables=variables,
        assets=assets,
        size_bytes=_size_on_disk(root),
        risky_ops=scan.risky_ops(),
        op_libraries=scan.op_libraries(),
        unknown_ops=scan.unknown_ops(),
    )


def _check_hub_module_def(path: Path) -> None:
    # ModuleDef: format = 1 (FORMAT_V3 = 3). Anything else is a format this reader does not know.
    module_format = pw.first(memoryview(path.read_bytes()), 1, 0)
    if module_format != 3:
        raise InvalidModuleError(f"{path}: unsupported TF1 Hub module format {module_format} (expected FORMAT_V3)")


def _primary_meta_graph(meta_graphs: list[_MetaGraph]) -> _MetaGraph:
    # TF1 Hub modules keep inference in the untagged graph (a "train" one may follow); TF2 uses "serve".
    for wanted in ((), ("serve",)):
        for mg in meta_graphs:
            if mg.tags == wanted:
                return mg
    return meta_graphs[0]


class _MetaGraph:
    """Lazy view of one MetaGraphDef (meta_graph.proto)."""

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
            key, value = _map_entry(entry)
            if pw.text(key) == _INIT_OP_SIGNATURE:
                continue
            # SignatureDef: inputs = 1, outputs = 2 (map<string, TensorInfo>), method_name = 3
            sig = pw.collect(value, (1, 2, 3))
            found.append(Signature(
                key=pw.text(key),
                tags=self.tags,
                method_name=pw.text(sig[3][-1]) if sig[3] else "",
                inputs=_tensor_info_map(sig[1]),
                outputs=_tensor_info_map(sig[2]),
            ))
        return sorted(found, key=lambda s: s.key)

    def saver_nodes(self) -> set[str]:
        """Node names of the saver's save and restore ops (SaverDef: save_tensor_name = 2, restore_op_name = 3)."""
        if not self._parts[3]:
            return set()
        saver = pw.collect(self._parts[3][0], (2, 3))
        return {_node_of(pw.text(v)) for v in saver[2] + saver[3]}

    def run_roots(self) -> set[str]:
        """Graph nodes a user of the module can run: every signature's tensors (the init op's too)
        and every node_list collection (main op, table initializers, update ops...)."""
        roots = set()
        for entry in self._parts[5]:
            # SignatureDef: inputs = 1, outputs = 2
            for number, _, tensors in pw.fields(_map_entry(entry)[1]):
                if number in (1, 2):
                    roots.update(_tensor_info_nodes(_map_entry(tensors)[1]))
        for entry in self._parts[4]:
            # CollectionDef: node_list = 1 (NodeList: value = 1)
            node_list = pw.first(_map_entry(entry)[1], 1)
            if node_list is not None:
                roots.update(_node_of(pw.text(v)) for n, _, v in pw.fields(node_list) if n == 1)
        return roots

    def collection(self, name: str) -> list[memoryview]:
        """Items of a bytes_list collection (CollectionDef: bytes_list = 2, BytesList: value = 1)."""
        for entry in self._parts[4]:
            key, value = _map_entry(entry)
            if pw.text(key) == name:
                bytes_list = pw.first(value, 2)
                return [] if bytes_list is None else pw.collect(bytes_list, (1,))[1]
        return []

    def object_graph(self) -> _ObjectGraph | None:
        return _ObjectGraph(self._parts[7][0]) if self._parts[7] else None

    def graph_variables(self) -> tuple[Variable, ...]:
        """TF1 variables: VarHandleOp/VariableV2 nodes; trainable = listed in the trainable_variables collection."""
        # VariableDef: variable_name = 1
        trainable = {_node_of(pw.text(pw.first(item, 1, b""))) for item in self.collection("trainable_variables")}
        found = []
        for number, _, node in pw.fields(self.graph_def):
            if number != 1:
                continue
            name, op = _name_and_op(node)
            if op in _VARIABLE_OPS:
                attrs = _attrs(node)
                # AttrValue: type = 6, shape = 7
                dtype = pw.first(attrs.get("dtype", b""), 6, 0)
                shape_raw = pw.first(attrs.get("shape", b""), 7)
                shape = _shape(shape_raw) if shape_raw is not None else None
                found.append(Variable(name, _dtype(dtype), shape, name in trainable))
        return tuple(found)


class _ObjectGraph:
    """Lazy view of a SavedObjectGraph (saved_object_graph.proto)."""

    def __init__(self, raw: memoryview):
        # nodes = 1 (SavedObject), concrete_functions = 2 (map<string, SavedConcreteFunction>)
        parts = pw.collect(raw, (1, 2))
        self.nodes = parts[1]
        self.concrete = {pw.text(k): v for k, v in map(_map_entry, parts[2])}

    def _kind(self, index: int, number: int):
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
        is_variable = [_has_field(node, 7) for node in self.nodes]
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
        found = []
        for index in self._variable_ids():
            # SavedVariable: dtype = 1, shape = 2, trainable = 3, name = 6
            var = pw.collect(pw.first(self.nodes[index], 7), (1, 2, 3, 6))
            found.append(Variable(
                name=pw.text(var[6][-1]) if var[6] else "",
                dtype=_dtype(var[1][-1] if var[1] else 0),
                shape=_shape(var[2][-1]) if var[2] else (),
                trainable=bool(var[3][-1]) if var[3] else False,
            ))
        return tuple(found)

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
        argspec = _structured(spec[1][-1]) if spec[1] else None
        arg_names = (argspec.fields.get("args") or []) if isinstance(argspec, NamedTuple) else []
        arg_names = tuple(arg_names[1:] if spec[2] and spec[2][-1] else arg_names)
        variants = []
        for name in map(pw.text, parts[1]):
            concrete = self.concrete.get(name)
            if concrete is None:
                continue
            # SavedConcreteFunction: canonicalized_input_signature = 3, output_signature = 4
            signature = pw.collect(concrete, (3, 4))
            inputs = _structured(signature[3][-1]) if signature[3] else ((), {})
            args, kwargs = inputs if isinstance(inputs, tuple) and len(inputs) == 2 else ((), {})
            output = _structured(signature[4][-1]) if signature[4] else None
            variants.append(CallVariant(name, tuple(args), dict(kwargs), output, arg_names[: len(args)]))
        return tuple(variants)


# --------------------------------------------------------------------------- op scan


class _OpScan:
    """Every op used by the graphs and function libraries: risks, libraries, unknown ops."""

    def __init__(self):
        self.ops: set[str] = set()
        self.functions: set[str] = set()
        self.occurrences: list[tuple[str, str, str, str]] = []  # (op, container, node, label)
        self.print_to_file: list[tuple[str, str, str]] = []
        self.exempt: set[tuple[str, str, str]] = set()  # (label, container, node) of saver checkpoint ops

    def add_meta_graph(self, mg: _MetaGraph, label: str) -> None:
        # GraphDef: node = 1, library = 2 (FunctionDefLibrary: function = 1)
        graph = pw.collect(mg.graph_def, (1, 2))
        library = {}
        for lib in graph[2]:
            for number, _, function in pw.fields(lib):
                if number == 1:
                    # FunctionDef: signature = 1 (OpDef: name = 1), node_def = 3
                    library[pw.text(pw.first(pw.first(function, 1, b""), 1, b""))] = function
        self.functions.update(library)

        calls: dict[str, set[str]] = {}  # caller container -> callee functions
        graph_callers: list[tuple[str, set[str]]] = []  # (graph node, callees)
        for node in graph[1]:
            self._scan_node(node, "graph", label, library, graph_callers)
        for fname, function in library.items():
            callees: list[tuple[str, set[str]]] = []
            for number, _, node in pw.fields(function):
                if number == 3:
                    self._scan_node(node, fname, label, library, callees)
            calls[fname] = set().union(*(c for _, c in callees)) if callees else set()

        # Checkpoint ops are expected where the saver runs. In the graph, they count only when a
        # user can run them (a signature, a node collection reaches them); TF1 graphs keep the
        # savers of every meta graph, all unreachable. In functions, they count unless the function
        # is reached only from the saver's nodes.
        saver_names = mg.saver_nodes()
        saver_roots = set().union(*(c for n, c in graph_callers if n in saver_names)) if graph_callers else set()
        called = set().union(*calls.values(), *(c for _, c in graph_callers)) if library else set()
        other_roots = set().union(*(c for n, c in graph_callers if n not in saver_names)) if graph_callers else set()
        objects = mg.object_graph()
        other_roots |= set(objects.concrete) if objects else set()
        other_roots |= set(library) - called
        tainted = _closure(other_roots, calls)
        saver_only = _closure(saver_roots, calls) - tainted
        checkpoint = [(c, n) for op, c, n, where in self.occurrences if where == label and op in _CHECKPOINT_OPS]
        runnable = _reachable(graph[1], mg.run_roots()) if any(c == "graph" for c, _ in checkpoint) else set()
        for container, node in checkpoint:
            if (container == "graph" and node not in runnable) or container in saver_only:
                self.exempt.add((label, container, node))

    def _scan_node(self, node: memoryview, container: str, label: str, library: dict, callers: list) -> None:
        name, op = _name_and_op(node)
        self.ops.add(op)
        if op in _RISKY_OPS:
            self.occurrences.append((op, container, name, label))
        if op == "PrintV2":
            stream = pw.first(_attrs(node).get("output_stream", b""), 2)  # AttrValue.s = 2
            if stream is not None and pw.text(stream).startswith("file://"):
                self.print_to_file.append((container, name, label))
        if op in library:
            callers.append((name, {op}))
        elif op in _core_ops()[1]:
            callers.append((name, _function_refs(node)))

    def risky_ops(self) -> tuple[RiskyOp, ...]:
        grouped: dict[str, list[str]] = {}
        for op, container, node, label in self.occurrences:
            if (label, container, node) not in self.exempt:
                grouped.setdefault(op, []).append(_location(container, node, label))
        for container, node, label in self.print_to_file:
            grouped.setdefault("PrintV2", []).append(_location(container, node, label))
        found = []
        for op, locations in sorted(grouped.items()):
            category, reason = _RISKY_OPS.get(op, _PRINT_TO_FILE)
            found.append(RiskyOp(op, category, reason, len(locations), tuple(locations[:_MAX_LOCATIONS])))
        return tuple(found)

    def _custom_ops(self) -> set[str]:
        return self.ops - self.functions - _core_ops()[0]

    def op_libraries(self) -> tuple[str, ...]:
        return tuple(sorted({lib for op in self._custom_ops() if (lib := _op_library(op))}))

    def unknown_ops(self) -> tuple[str, ...]:
        return tuple(sorted(op for op in self._custom_ops() if not _op_library(op)))


def _location(container: str, node: str, label: str) -> str:
    """``graph:<node>`` or ``function:<function>/<node>``, after the meta graph's tag label if any."""
    return f"{label}graph:{node}" if container == "graph" else f"{label}function:{container}/{node}"


def _node_of(tensor: str) -> str:
    """``"^init"`` / ``"images:0"`` -> the node name."""
    return tensor.lstrip("^").split(":")[0]


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
                found.append(_node_of(pw.text(value)))
            elif number > 3:
                break
        inputs[name] = found
    seen, stack = set(), [r for r in roots if r in inputs]
    while stack:
        name = stack.pop()
        if name not in seen:
            seen.add(name)
            stack.extend(inputs.get(name, ()))
    return seen


def _closure(roots: Iterable[str], calls: dict[str, set[str]]) -> set[str]:
    seen, stack = set(), list(roots)
    while stack:
        name = stack.pop()
        if name not in seen:
            seen.add(name)
            stack.extend(calls.get(name, ()))
    return seen


def _op_library(op: str) -> str | None:
    if op in _TENSORFLOW_TEXT_OPS:
        return "tensorflow_text"
    return next((lib for prefix, lib in _OP_PREFIX_LIBRARIES if op.startswith(prefix)), None)


@lru_cache(maxsize=1)
def _core_ops() -> tuple[frozenset[str], frozenset[str]]:
    """(op names registered by core TensorFlow, those that take function attrs), from package data."""
    document = json.loads(resources.files("hubcli").joinpath("data/tf_core_ops.json").read_text())
    return frozenset(document["ops"]), frozenset(document["function_ops"])


# --------------------------------------------------------------------------- proto helpers


def _name_and_op(node: memoryview) -> tuple[str, str]:
    """NodeDef name = 1, op = 2: they lead the message, so stop reading once both are seen."""
    # Fast path for the layout every serializer writes: tag 0x0A (name), then tag 0x12 (op).
    end = len(node)
    if end > 3 and node[0] == 0x0A:
        length, start = pw.read_varint(node, 1, end)
        stop = start + length
        if stop < end and node[stop] == 0x12:
            op_length, op_start = pw.read_varint(node, stop + 1, end)
            if op_start + op_length <= end:
                return pw.text(node[start:stop]), pw.text(node[op_start : op_start + op_length])
    name = op = ""
    for number, _, value in pw.fields(node):
        if number == 1:
            name = pw.text(value)
        elif number == 2:
            op = pw.text(value)
            break
    return name, op


def _attrs(node: memoryview) -> dict[str, memoryview]:
    """NodeDef attr = 5: map<string, AttrValue>, values left encoded."""
    return {pw.text(k): v for number, _, entry in pw.fields(node) if number == 5 for k, v in [_map_entry(entry)]}


def _function_refs(node: memoryview) -> set[str]:
    """Names of functions a node calls: AttrValue func = 10, or list = 1 with ListValue func = 9."""
    names = set()
    for value in _attrs(node).values():
        for number, _, field in pw.fields(value):
            if number == 10:
                names.add(pw.text(pw.first(field, 1, b"")))
            elif number == 1:
                names.update(pw.text(pw.first(f, 1, b"")) for n, _, f in pw.fields(field) if n == 9)
    return names


def _map_entry(entry: memoryview) -> tuple[memoryview, memoryview]:
    """A map<K, V> entry: key = 1, value = 2 (absent fields are the empty default)."""
    key = value = memoryview(b"")
    for number, _, field in pw.fields(entry):
        if number == 1:
            key = field
        elif number == 2:
            value = field
    return key, value


def _has_field(message: memoryview, wanted: int) -> bool:
    return any(number == wanted for number, _, _ in pw.fields(message))


def _dtype(number: int) -> str:
    if number > 100:
        return _DTYPES.get(number - 100, f"dtype_{number - 100}") + "_ref"
    return _DTYPES.get(number, f"dtype_{number}")


def _shape(raw: memoryview) -> tuple[int | None, ...] | None:
    """TensorShapeProto: dim = 2 (Dim: size = 1, -1 unknown), unknown_rank = 3."""
    dims = []
    for number, _, value in pw.fields(raw):
        if number == 2:
            size = pw.signed64(pw.first(value, 1, 0))
            dims.append(None if size < 0 else size)
        elif number == 3 and value:
            return None
    return tuple(dims)


def _tensor_info_map(entries: list[memoryview]) -> dict[str, TensorSpec]:
    specs = {}
    for entry in entries:
        key, value = _map_entry(entry)
        # TensorInfo: name = 1, dtype = 2, tensor_shape = 3, coo_sparse = 4, composite_tensor = 5
        info = pw.collect(value, (2, 3, 4, 5))
        kind = "sparse" if info[4] else _composite_kind(info[5][-1]) if info[5] else "tensor"
        specs[pw.text(key)] = TensorSpec(
            name=pw.text(key),
            dtype=_dtype(info[2][-1] if info[2] else 0),
            shape=_shape(info[3][-1]) if info[3] else None,
            kind=kind,
        )
    return dict(sorted(specs.items()))


def _tensor_info_nodes(raw: memoryview) -> set[str]:
    """Nodes behind a TensorInfo: name = 1, coo_sparse = 4 (three tensor names), composite_tensor = 5
    (components = 2, each a TensorInfo)."""
    nodes = set()
    for number, _, value in pw.fields(raw):
        if number == 1:
            nodes.add(_node_of(pw.text(value)))
        elif number == 4:
            nodes.update(_node_of(pw.text(v)) for _, _, v in pw.fields(value))
        elif number == 5:
            for n, _, component in pw.fields(value):
                if n == 2:
                    nodes.update(_tensor_info_nodes(component))
    return nodes


def _composite_kind(raw: memoryview) -> str:
    # CompositeTensor: type_spec = 1 (TypeSpecProto)
    return _type_spec_kind(pw.first(raw, 1, b""))


def _type_spec_kind(raw: memoryview) -> str:
    # TypeSpecProto: type_spec_class = 1, type_spec_class_name = 3 (e.g. "RaggedTensorSpec")
    parts = pw.collect(raw, (1, 3))
    if parts[3]:
        name = pw.text(parts[3][-1])
        return name.removesuffix("Spec").removesuffix("Tensor").lower() or name
    return {1: "sparse", 2: "indexed_slices", 3: "ragged"}.get(parts[1][-1] if parts[1] else 0, "composite")


def _structured(raw: memoryview, depth: int = 0) -> Any:
    """Decode a StructuredValue (struct.proto) into Python values with TensorSpec leaves."""
    if depth > _MAX_DEPTH:
        raise pw.DecodeError("structured value nested too deeply")
    for number, _, value in pw.fields(raw):
        if number == 1:  # none_value
            return None
        if number == 11:  # float64_value
            return pw.float64(value)
        if number == 12:  # int64_value (sint64)
            return pw.zigzag(value)
        if number == 13:  # string_value
            return pw.text(value)
        if number == 14:  # bool_value
            return bool(value)
        if number == 31:  # tensor_shape_value
            return _shape(value)
        if number == 32:  # tensor_dtype_value
            return _dtype(value)
        if number in (33, 35):  # tensor_spec_value, bounded_tensor_spec_value: name = 1, shape = 2, dtype = 3
            spec = pw.collect(value, (1, 2, 3))
            return TensorSpec(
                name=pw.text(spec[1][-1]) if spec[1] else None,
                dtype=_dtype(spec[3][-1] if spec[3] else 0),
                shape=_shape(spec[2][-1]) if spec[2] else (),
            )
        if number == 34:  # type_spec_value
            return TensorSpec(name=None, dtype="composite", shape=None, kind=_type_spec_kind(value))
        if number == 51:  # list_value: values = 1
            return [_structured(v, depth + 1) for n, _, v in pw.fields(value) if n == 1]
        if number == 52:  # tuple_value: values = 1
            return tuple(_structured(v, depth + 1) for n, _, v in pw.fields(value) if n == 1)
        if number == 53:  # dict_value: fields = 1 (map<string, StructuredValue>)
            entries = (_map_entry(e) for n, _, e in pw.fields(value) if n == 1)
            return {pw.text(k): _structured(v, depth + 1) for k, v in entries}
        if number == 54:  # named_tuple_value: name = 1, values = 2 (PairValue: key = 1, value = 2)
            parts = pw.collect(value, (1, 2))
            pairs = (_map_entry(p) for p in parts[2])
            return NamedTuple(pw.text(parts[1][-1]) if parts[1] else "", {pw.text(k): _structured(v, depth + 1) for k, v in pairs})
    return None


def _jsonable(value: Any) -> Any:
    if isinstance(value, TensorSpec):
        return {"type": "tensor_spec", **value.to_json()}
    if isinstance(value, NamedTuple):
        return {"type": "namedtuple", "name": value.name, "fields": _jsonable(value.fields)}
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _describe(value: Any) -> str:
    if isinstance(value, TensorSpec):
        return str(value)
    if isinstance(value, NamedTuple):
        return f"{value.name}({', '.join(f'{k}={_describe(v)}' for k, v in value.fields.items())})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_describe(v)}" for k, v in value.items()) + "}"
    if isinstance(value, tuple):
        return "(" + ", ".join(_describe(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, list):
        return "[" + ", ".join(_describe(v) for v in value) + "]"
    return repr(value)


# --------------------------------------------------------------------------- derived facts


def _default_signatures(signatures: tuple[Signature, ...], tags: tuple[str, ...]) -> list[Signature]:
    """The signatures of the primary meta graph, the conventional default first."""
    own = [s for s in signatures if s.tags == tags]
    return sorted(own, key=lambda s: (s.key not in ("serving_default", "default"), s.key))


def _leaves(value: Any) -> Iterable[TensorSpec]:
    if isinstance(value, TensorSpec):
        yield value
    elif isinstance(value, NamedTuple):
        yield from _leaves(value.fields)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _leaves(item)


def _input_specs(call_variants: tuple[CallVariant, ...], signatures: Iterable[Signature]) -> list[TensorSpec]:
    specs = [spec for v in call_variants for spec in _leaves((v.args, v.kwargs))]
    return specs + [spec for s in signatures for spec in s.inputs.values()]


def _image_size(call_variants: tuple[CallVariant, ...], signatures: list[Signature]) -> tuple[int, int] | None:
    """(height, width) of the first float [batch, H, W, 3] input: the call specs first, then signatures."""
    for spec in _input_specs(call_variants, signatures):
        shape = spec.shape
        if spec.dtype in _FLOAT_DTYPES and shape and len(shape) == 4 and shape[3] == 3 and shape[1] and shape[2]:
            return shape[1], shape[2]
    return None


# Output keys that name "the" embedding or feature vector, in order of preference.
_OUTPUT_KEYS = ("default", "feature_vector", "embedding", "embeddings", "pooled_output", "output", "outputs", "output_0")


def _output_dim(call_variants: tuple[CallVariant, ...], signatures: list[Signature]) -> int | None:
    """Last dimension of the [batch, D] output: ``__call__``'s output, then the default signature's."""
    candidates = [v.output for v in call_variants] + [s.outputs for s in signatures]
    for output in candidates:
        if isinstance(output, dict):
            named = [output[k] for k in _OUTPUT_KEYS if k in output]
            rank2 = [s for s in _leaves(output) if s.shape is not None and len(s.shape) == 2]
            output = named[0] if named else rank2[0] if len(rank2) == 1 else None
        if isinstance(output, TensorSpec) and output.shape and len(output.shape) == 2 and output.shape[1]:
            return output.shape[1]
    return None


def _assets(root: Path) -> tuple[Asset, ...]:
    found = []
    for folder in ("assets", "assets.extra"):
        base = root / folder
        if base.is_dir():
            for file in sorted(base.rglob("*")):
                if file.is_file() and not file.is_symlink():
                    found.append(Asset(file.relative_to(root).as_posix(), file.stat().st_size))
    return tuple(found)


def _size_on_disk(root: Path) -> int:
    return sum(p.lstat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


# --------------------------------------------------------------------------- Keras archives


def _inspect_keras_archive(path: Path) -> ModuleInfo:
    """A Keras 3 ``.keras`` zip: config.json (architecture), metadata.json, model.weights.h5."""
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        if "config.json" not in names:
            raise InvalidModuleError(f"{path} is a zip file but not a .keras model (no config.json)")
        config = json.loads(archive.read("config.json"))
        variables = _keras_weights(archive, names)
        assets = tuple(Asset(n, archive.getinfo(n).file_size) for n in sorted(names) if n.startswith("assets/") and not n.endswith("/"))
    inputs = tuple(_keras_inputs(config))
    call_variants = (CallVariant("call", inputs, {}, _keras_output(config)),) if inputs else ()
    lambdas = list(_keras_lambda_layers(config))
    risky = (RiskyOp("Lambda", _PYTHON, "Lambda layer stores Python bytecode that runs when loaded with safe_mode=False", len(lambdas), tuple(lambdas[:_MAX_LOCATIONS])),) if lambdas else ()
    return ModuleInfo(
        path=path,
        format=KERAS,
        tensorflow_version=None,
        tag_sets=(),
        signatures=(),
        call_input_specs=call_variants,
        image_size=_image_size(call_variants, []),
        output_dim=_output_dim(call_variants, []),
        takes_strings=any(spec.dtype == "string" for spec in inputs),
        variables=variables,
        assets=assets,
        size_bytes=path.stat().st_size,
        risky_ops=risky,
        op_libraries=(),
        unknown_ops=(),
    )


def _keras_inputs(config: dict) -> Iterable[TensorSpec]:
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


def _keras_output(config: dict) -> TensorSpec | None:
    # Only a final Dense layer states its width in the config; other heads need tracing.
    layers = (config.get("config") or {}).get("layers") or []
    last = layers[-1] if layers else {}
    units = (last.get("config") or {}).get("units") if last.get("class_name") == "Dense" else None
    return TensorSpec("output", "float32", (None, units)) if units else None


def _keras_lambda_layers(config: Any) -> Iterable[str]:
    if isinstance(config, dict):
        if config.get("class_name") == "Lambda":
            yield (config.get("config") or {}).get("name", "lambda")
        for value in config.values():
            yield from _keras_lambda_layers(value)
    elif isinstance(config, list):
        for item in config:
            yield from _keras_lambda_layers(item)


def _keras_weights(archive: zipfile.ZipFile, names: set[str]) -> tuple[Variable, ...]:
    """Weight shapes from model.weights.h5 (h5py ships with Keras; trainability is not recorded)."""
    if "model.weights.h5" not in names:
        return ()
    try:
        import h5py
    except ImportError:
        return ()
    import io

    found = []
    with h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as weights:
        def visit(name, item):
            if isinstance(item, h5py.Dataset):
                found.append(Variable(name, str(item.dtype), tuple(item.shape), None))
        weights.visititems(visit)
    return tuple(found)
