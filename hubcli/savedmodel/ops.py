"""What an op name tells about a module: whether it is risky, and which op library registers it.

SavedModels are programs. :data:`RISKY_OPS` lists the ops that reach outside
the tensors they are given (files, network, Python callbacks), each with the
reason a person should look before loading the module. Ops that
``import tensorflow`` alone does not register come from op libraries, which
must be imported before ``tf.saved_model.load``; :func:`op_library` names them,
and :func:`core_ops` (``hubcli/data/tf_core_ops.json``) tells them apart.

Example:
    >>> RISKY_OPS["ReadFile"]
    ('filesystem', 'reads any file the process can read')
    >>> op_library("TFText>WordpieceTokenizeWithOffsets"), op_library("NormalizeUTF8"), op_library("MatMul")
    ('tensorflow_text', 'tensorflow_text', None)
    >>> "MatMul" in core_ops().registered, "PartitionedCall" in core_ops().take_functions
    (True, True)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

RiskCategory = Literal["filesystem", "network", "python"]
FILESYSTEM: RiskCategory = "filesystem"
NETWORK: RiskCategory = "network"
PYTHON: RiskCategory = "python"

#: Locations reported per risky op; the count says how many there are in all.
MAX_LOCATIONS = 5

RISKY_OPS: dict[str, tuple[RiskCategory, str]] = {
    # Arbitrary file I/O on a path computed by the graph.
    "ReadFile": (FILESYSTEM, "reads any file the process can read"),
    "WriteFile": (FILESYSTEM, "writes (creates or overwrites) any file the process can write"),
    "MatchingFiles": (FILESYSTEM, "lists directories by glob pattern (reveals the file system)"),
    "ImmutableConst": (FILESYSTEM, "memory-maps the file named in its attrs into a tensor"),
    "LoadAndRemapMatrix": (FILESYSTEM, "reads a checkpoint from a path given at run time"),
    # Checkpoint ops are normal inside the SavedModel's own saver; anywhere else they read or
    # write checkpoint files at a graph-chosen path.
    "Save": (FILESYSTEM, "writes a checkpoint file outside the module's saver"),
    "SaveSlices": (FILESYSTEM, "writes a checkpoint file outside the module's saver"),
    "SaveV2": (FILESYSTEM, "writes a checkpoint file outside the module's saver"),
    "MergeV2Checkpoints": (FILESYSTEM, "moves and deletes checkpoint files outside the module's saver"),
    "Restore": (FILESYSTEM, "reads a checkpoint file outside the module's saver"),
    "RestoreSlice": (FILESYSTEM, "reads a checkpoint file outside the module's saver"),
    "RestoreV2": (FILESYSTEM, "reads a checkpoint file outside the module's saver"),
    # TF1 queue readers and tf.data sources/sinks open the files they are pointed at.
    **{op: (FILESYSTEM, "reads files named at run time") for op in (
        "WholeFileReader", "WholeFileReaderV2", "TextLineReader", "TextLineReaderV2",
        "FixedLengthRecordReader", "FixedLengthRecordReaderV2", "TFRecordReader", "TFRecordReaderV2",
        "LMDBReader", "TFRecordDataset", "TFRecordDatasetV2", "TextLineDataset",
        "FixedLengthRecordDataset", "FixedLengthRecordDatasetV2", "LMDBDataset",
        "ExperimentalLMDBDataset", "CSVDataset", "CSVDatasetV2", "ExperimentalCSVDataset",
        "SqlDataset", "ExperimentalSqlDataset", "LoadDataset",
    )},
    **{op: (FILESYSTEM, "writes files at a path chosen at run time") for op in (
        "SaveDataset", "SaveDatasetV2", "SnapshotDataset", "SnapshotDatasetV2", "DatasetToTFRecord",
        "ExperimentalDatasetToTFRecord", "CacheDataset", "CacheDatasetV2", "CreateSummaryFileWriter",
        "CreateSummaryDbWriter", "DistributedSave",
    )},
    # tfdbg ops send tensors to their debug_urls: file:// writes files, grpc:// opens a connection.
    **{op: (NETWORK, "sends tensors to debug URLs (grpc:// connections or file:// dumps)") for op in (
        "DebugIdentity", "DebugIdentityV2", "DebugIdentityV3", "DebugNanCount", "DebugNumericSummary",
        "DebugNumericSummaryV2",
    )},
    # tf.data service and tf.distribute RPC ops talk to remote servers.
    **{op: (NETWORK, "connects to a tf.data service dispatcher or worker") for op in (
        "DataServiceDataset", "DataServiceDatasetV2", "DataServiceDatasetV3", "DataServiceDatasetV4",
        "RegisterDataset", "RegisterDatasetV2",
    )},
    **{op: (NETWORK, "opens an RPC client or server") for op in (
        "RpcClient", "RpcCall", "RpcServer", "RpcServerStart", "RpcServerRegister",
    )},
    # py_func family: runs a Python callable of the loading process; the code is not in the module,
    # so the module only works next to the program that made it, and does whatever that code does.
    "PyFunc": (PYTHON, "calls back into Python code outside the module"),
    "PyFuncStateless": (PYTHON, "calls back into Python code outside the module"),
    "EagerPyFunc": (PYTHON, "calls back into Python code outside the module"),
}
# InitializeTableFromTextFile(V2) is deliberately absent: it is how vocabulary assets are read,
# and the assets it reads are listed in ModuleInfo.assets.

#: The saver's own ops: risky only where something other than the saver can run them.
CHECKPOINT_OPS = frozenset({"Save", "SaveSlices", "SaveV2", "MergeV2Checkpoints", "Restore", "RestoreSlice", "RestoreV2"})
#: PrintV2 only touches the file system when its output_stream attr is "file://...".
PRINT_TO_FILE: tuple[RiskCategory, str] = (FILESYSTEM, "tf.print appends to a file (output_stream=file://...)")

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


@dataclass(frozen=True)
class RiskyOp:
    """An op that reaches the file system, the network or Python, with where it occurs."""

    op: str
    category: RiskCategory
    reason: str
    count: int
    locations: tuple[str, ...]  # "graph:<node>" or "function:<function>/<node>", first few only

    def to_json(self) -> dict[str, Any]:
        return {"op": self.op, "category": self.category, "reason": self.reason, "count": self.count, "locations": list(self.locations)}


@dataclass(frozen=True)
class CoreOps:
    """The op names core TensorFlow registers, and those of them that call functions (func attrs)."""

    registered: frozenset[str]
    take_functions: frozenset[str]


def op_library(op: str) -> str | None:
    """The Python package whose import registers ``op``, if it is a known library's."""
    if op in _TENSORFLOW_TEXT_OPS:
        return "tensorflow_text"
    return next((lib for prefix, lib in _OP_PREFIX_LIBRARIES if op.startswith(prefix)), None)


@lru_cache(maxsize=1)
def core_ops() -> CoreOps:
    """Core TensorFlow's ops, from package data (read once)."""
    document = json.loads(resources.files("hubcli").joinpath("data/tf_core_ops.json").read_text())
    return CoreOps(frozenset(document["ops"]), frozenset(document["function_ops"]))
