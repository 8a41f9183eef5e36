"""`inspect` reads real SavedModels without TensorFlow and agrees with what TensorFlow itself says."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from hubcli.errors import InvalidModuleError, NotFoundError
from hubcli.savedmodel import protowire as pw
from hubcli.savedmodel.inspector import content_digest, inspect_module
from hubcli.savedmodel.specs import TensorSpec
from tests.helpers.cli_run import run_hubcli, run_in_terminal

QUIET = {"TF_CPP_MIN_LOG_LEVEL": "3", "HUBCLI_QUIET": "1"}


# --------------------------------------------------------------------------- modules built here


@pytest.fixture(scope="session")
def risky_module(tmp_path_factory):
    """Reads and writes files, calls Python, and writes a checkpoint outside the saver."""
    module = tf.Module()
    module.v = tf.Variable([1.0, 2.0])

    @tf.function(input_signature=[tf.TensorSpec([], tf.string)])
    def read(path):
        return tf.io.read_file(path)

    @tf.function(input_signature=[tf.TensorSpec([], tf.string), tf.TensorSpec([], tf.string)])
    def write(path, contents):
        tf.io.write_file(path, contents)
        return contents

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def python(x):
        return tf.py_function(lambda t: t * 2.0, [x], tf.float32)

    @tf.function(input_signature=[tf.TensorSpec([], tf.string)])
    def dump(prefix):
        tf.raw_ops.SaveV2(prefix=prefix, tensor_names=["v"], shape_and_slices=[""], tensors=[module.v])
        return prefix

    @tf.function(input_signature=[tf.TensorSpec([], tf.float32)])
    def log(x):
        tf.print(x, output_stream="file:///tmp/hubcli-inspect-test.log")  # appends to a file
        tf.print(x)  # stderr: harmless
        return x

    module.read, module.write, module.python, module.dump, module.log = read, write, python, dump, log
    path = tmp_path_factory.mktemp("modules") / "risky"
    tf.saved_model.save(module, str(path))
    return path


@pytest.fixture(scope="session")
def tf_text_module(tmp_path_factory):
    """Normalizes and splits text with tensorflow_text ops (not registered by TF alone)."""
    import tensorflow_text as tf_text

    module = tf.Module()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def tokens(text):
        folded = tf_text.case_fold_utf8(tf_text.normalize_utf8(text, "NFKC"))
        return tf_text.regex_split(folded, r"\s").flat_values

    module.__call__ = tokens
    path = tmp_path_factory.mktemp("modules") / "tf_text"
    tf.saved_model.save(module, str(path))
    return path


@pytest.fixture(scope="session")
def vocab_module(tmp_path_factory):
    """A lookup table initialized from a vocabulary asset file."""
    vocab = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    vocab.write_text("the\ncat\nsat\n")
    module = tf.Module()
    index = tf.lookup.TextFileIndex
    initializer = tf.lookup.TextFileInitializer(str(vocab), tf.string, index.WHOLE_LINE, tf.int64, index.LINE_NUMBER)
    module.table = tf.lookup.StaticHashTable(initializer, -1)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="words")])
    def ids(words):
        return tf.expand_dims(module.table.lookup(words), -1)

    module.__call__ = ids
    path = tmp_path_factory.mktemp("modules") / "vocab"
    tf.saved_model.save(module, str(path), signatures={"serving_default": ids})
    return path


@pytest.fixture(scope="session")
def keras_file(tmp_path_factory):
    import keras

    model = keras.Sequential([
        keras.Input((16, 16, 3)),
        keras.layers.Conv2D(4, 3),
        keras.layers.BatchNormalization(),
        keras.layers.Lambda(lambda x: x * 2.0),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(5),
    ])
    path = tmp_path_factory.mktemp("keras") / "model.keras"
    model.save(path)
    return path, model.count_params()


# --------------------------------------------------------------------------- agreement with TF


def _tf_spec(spec) -> tuple:
    return spec.dtype.name, None if spec.shape.rank is None else tuple(spec.shape.as_list())


def _ours(spec: TensorSpec) -> tuple:
    return spec.dtype, spec.shape


@pytest.mark.parametrize("fixture", ["tiny_image_module", "tiny_text_module", "tiny_tf1_module", "vocab_module"])
def test_signatures_match_tensorflow(fixture, request):
    path = request.getfixturevalue(fixture)
    info = inspect_module(path)
    loaded = tf.saved_model.load(str(path), tags=list(info.tag_sets[0]))
    assert sorted(s.key for s in info.signatures) == sorted(loaded.signatures.keys())
    for key, function in loaded.signatures.items():
        ours = info.signature(key)
        _, tf_inputs = function.structured_input_signature
        assert {k: _ours(v) for k, v in ours.inputs.items()} == {k: _tf_spec(v) for k, v in tf_inputs.items()}
        assert {k: _ours(v) for k, v in ours.outputs.items()} == {k: _tf_spec(v) for k, v in function.structured_outputs.items()}


def _tf_structure(value):
    """TF's structured_input_signature in the JSON form of ModuleInfo.to_json()."""
    if isinstance(value, tf.TensorSpec):
        return {"type": "tensor_spec", "name": value.name, "dtype": value.dtype.name, "shape": value.shape.as_list(), "kind": "tensor"}
    if isinstance(value, dict):
        return {k: _tf_structure(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_tf_structure(v) for v in value]
    return value


@pytest.mark.parametrize("fixture", ["tiny_image_module", "tiny_text_module"])
def test_call_variants_match_tensorflow(fixture, request):
    path = request.getfixturevalue(fixture)
    info = inspect_module(path)
    loaded = tf.saved_model.load(str(path))
    theirs = sorted((json.dumps(_tf_structure(cf.structured_input_signature)), tuple(cf.output_shapes.as_list())) for cf in loaded.__call__.concrete_functions)
    ours = sorted((json.dumps([v.to_json()["args"], v.to_json()["kwargs"]]), v.output.shape) for v in info.call_input_specs)
    assert ours == theirs


def test_image_module_call_spec_lists_training_variants(tiny_image_module):
    info = inspect_module(tiny_image_module)
    assert sorted(v.args[1] for v in info.call_input_specs) == [False, True]
    assert all(v.arg_names == ("images", "training") for v in info.call_input_specs)
    assert (info.format, info.image_size, info.output_dim, info.takes_strings) == ("tf2_saved_model", (32, 32), 8, False)


def test_text_module_takes_strings(tiny_text_module):
    info = inspect_module(tiny_text_module)
    assert (info.image_size, info.output_dim, info.takes_strings) == (None, 16, True)


@pytest.mark.parametrize("fixture", ["tiny_image_module", "tiny_text_module"])
def test_variables_match_tensorflow(fixture, request):
    path = request.getfixturevalue(fixture)
    info = inspect_module(path)
    loaded = tf.saved_model.load(str(path))
    assert info.variable_count == len(loaded.variables)
    assert [v.name for v in info.variables if v.trainable] == [v.name.split(":")[0] for v in loaded.trainable_variables]
    assert info.param_count == sum(int(np.prod(v.shape)) for v in loaded.variables)
    assert info.trainable_param_count == sum(int(np.prod(v.shape)) for v in loaded.trainable_variables)
    assert info.non_trainable_param_count == info.param_count - info.trainable_param_count


def test_tf1_hub_module_variables_match_tensorflow(tiny_tf1_module):
    info = inspect_module(tiny_tf1_module)
    assert info.format == "tf1_hub" and info.tag_sets == ((),)
    assert (info.image_size, info.output_dim) == ((32, 32), 8)
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        tf.compat.v1.saved_model.load(session, [], str(tiny_tf1_module))
        everything = tf.compat.v1.global_variables()
        trainable = tf.compat.v1.trainable_variables()
        expected = {v.op.name: (v.shape.as_list(), v in trainable) for v in everything}
    assert {v.name: (list(v.shape), v.trainable) for v in info.variables} == expected


def _build_tf1_two_graphs(path, checkpoint_in_signature: bool = False):
    """A TF1 Hub module with an untagged inference graph and a {"train"} one, as hub exports them."""
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default(), v1.Session(graph=graph) as session:
        text = v1.placeholder(tf.string, [None], name="text")
        table = v1.get_variable("table", [7, 4], trainable=True)
        v1.get_variable("steps", [], trainable=False, initializer=v1.zeros_initializer())
        embedding = tf.gather(table, tf.strings.to_hash_bucket_fast(text, 7))
        if checkpoint_in_signature:  # every call writes the table to a file named by the input
            save = tf.raw_ops.SaveV2(prefix=text[0], tensor_names=["t"], shape_and_slices=[""], tensors=[table.read_value()], name="leak")
            with tf.control_dependencies([save]):
                embedding = tf.identity(embedding)
        session.run(v1.global_variables_initializer())
        builder = v1.saved_model.Builder(str(path))
        signature = v1.saved_model.predict_signature_def({"text": text}, {"default": embedding})
        builder.add_meta_graph_and_variables(session, tags=[], signature_def_map={"default": signature})
        builder.add_meta_graph(tags=["train"], signature_def_map={"default": signature})
        builder.save()
    (path / "tfhub_module.pb").write_bytes(b"\x08\x03")
    return path


def test_tf1_module_with_train_graph_lists_both_tag_sets(tmp_path):
    path = _build_tf1_two_graphs(tmp_path / "tf1_two_graphs")
    info = inspect_module(path)
    assert info.format == "tf1_hub" and info.tag_sets == ((), ("train",))
    assert [(s.key, s.tags) for s in info.signatures] == [("default", ()), ("default", ("train",))]
    for tags in ([], ["train"]):
        loaded = tf.saved_model.load(str(path), tags=tags).signatures["default"]
        ours = next(s for s in info.signatures if list(s.tags) == tags)
        assert {k: _ours(v) for k, v in ours.inputs.items()} == {k: _tf_spec(v) for k, v in loaded.structured_input_signature[1].items()}
    assert (info.takes_strings, info.output_dim, info.image_size) == (True, 4, None)
    assert {(v.name, v.trainable) for v in info.variables} == {("table", True), ("steps", False)}
    assert (info.param_count, info.trainable_param_count) == (29, 28)
    # Both savers (save/ and the train graph's save_1/) hold SaveV2/RestoreV2 that no signature runs.
    assert info.risky_ops == ()


def test_tf1_checkpoint_op_reached_by_a_signature_is_risky(tmp_path):
    info = inspect_module(_build_tf1_two_graphs(tmp_path / "leaky", checkpoint_in_signature=True))
    (risk,) = info.risky_ops
    assert risk.op == "SaveV2" and sorted(risk.locations) == ["[no tags]graph:leak", "[train]graph:leak"]


# --------------------------------------------------------------------------- risks, libraries, assets


def test_risky_ops_are_flagged_with_locations(risky_module):
    risks = {r.op: r for r in inspect_module(risky_module).risky_ops}
    assert {"ReadFile", "WriteFile", "EagerPyFunc", "SaveV2"} <= set(risks)
    assert risks["ReadFile"].category == "filesystem" and risks["EagerPyFunc"].category == "python"
    # The saver's own SaveV2/MergeV2Checkpoints are expected; only the one in `dump` is a risk.
    assert risks["SaveV2"].count == 1 and "dump" in risks["SaveV2"].locations[0]
    assert "MergeV2Checkpoints" not in risks and "RestoreV2" not in risks
    # tf.print only counts when it writes to a file.
    assert risks["PrintV2"].count == 1 and risks["PrintV2"].category == "filesystem"


@pytest.mark.parametrize("fixture", ["tiny_image_module", "tiny_text_module", "tiny_tf1_module", "vocab_module"])
def test_ordinary_modules_have_no_risks_or_libraries(fixture, request):
    info = inspect_module(request.getfixturevalue(fixture))
    assert info.risky_ops == () and info.op_libraries == () and info.unknown_ops == ()


def test_tensorflow_text_ops_name_their_library(tf_text_module):
    info = inspect_module(tf_text_module)
    assert info.op_libraries == ("tensorflow_text",) and info.unknown_ops == ()
    # And TF really cannot load it without that library.
    code = f"import tensorflow as tf; tf.saved_model.load({str(tf_text_module)!r})"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=300)
    output = result.stderr + result.stdout
    assert result.returncode != 0 and ("NormalizeUTF8" in output or "CaseFoldUTF8" in output)


def test_assets_and_size_on_disk(vocab_module):
    info = inspect_module(vocab_module)
    assert [(a.path, a.size_bytes) for a in info.assets] == [("assets/vocab.txt", len("the\ncat\nsat\n"))]
    assert info.size_bytes == sum(p.stat().st_size for p in vocab_module.rglob("*") if p.is_file())
    assert info.takes_strings and info.output_dim == 1


def test_core_op_list_matches_installed_tensorflow():
    # hubcli/data/tf_core_ops.json is what tells custom ops apart; it must track the TF we depend on.
    code = (
        "import json, tensorflow as tf\n"
        "from tensorflow.python.client import pywrap_tf_session as c\n"
        "from tensorflow.core.framework import op_def_pb2\n"
        "ops = op_def_pb2.OpList.FromString(c.TF_GetBuffer(c.TF_GetAllOpList()))\n"
        "print(json.dumps({'ops': sorted(o.name for o in ops.op), 'function_ops': sorted(o.name for o in ops.op "
        "if any(a.type in ('func', 'list(func)') for a in o.attr)), 'tensorflow_version': tf.__version__}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=300)
    current = json.loads(result.stdout.strip().splitlines()[-1])
    from importlib import resources

    shipped = json.loads(resources.files("hubcli").joinpath("data/tf_core_ops.json").read_text())
    assert (shipped["ops"], shipped["function_ops"]) == (current["ops"], current["function_ops"]), (
        f"regenerate hubcli/data/tf_core_ops.json for TensorFlow {current['tensorflow_version']}"
    )


# --------------------------------------------------------------------------- Keras


def test_keras_archive(keras_file):
    path, keras_params = keras_file
    info = inspect_module(path)
    assert (info.format, info.image_size, info.output_dim) == ("keras", (16, 16), 5)
    assert info.param_count == keras_params
    assert [r.op for r in info.risky_ops] == ["Lambda"] and info.risky_ops[0].category == "python"


# --------------------------------------------------------------------------- bad input


def test_missing_and_non_module_paths(tmp_path):
    with pytest.raises(NotFoundError):
        inspect_module(tmp_path / "absent")
    with pytest.raises(InvalidModuleError, match="not a module"):
        inspect_module(tmp_path)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InvalidModuleError, match="not a module"):
        inspect_module(tmp_path / "notes.txt")
    (tmp_path / "model.keras").write_text("hello")
    with pytest.raises(InvalidModuleError, match=r"model.keras is not a Keras file \(not a zip archive\)"):
        inspect_module(tmp_path / "model.keras")


def test_every_truncation_is_a_clean_error(tiny_image_module, tmp_path):
    module = tmp_path / "module"
    shutil.copytree(tiny_image_module, module)
    original = (tiny_image_module / "saved_model.pb").read_bytes()
    for cut in sorted({*range(0, len(original), max(1, len(original) // 40)), len(original) - 1, 1, 2, 3}):
        (module / "saved_model.pb").write_bytes(original[:cut])
        with pytest.raises(InvalidModuleError):
            inspect_module(module)


def test_flipped_bytes_never_crash(tiny_text_module, tmp_path):
    module = tmp_path / "module"
    shutil.copytree(tiny_text_module, module)
    original = (tiny_text_module / "saved_model.pb").read_bytes()
    rng = random.Random(7)
    for _ in range(150):
        damaged = bytearray(original)
        for _ in range(3):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        (module / "saved_model.pb").write_bytes(bytes(damaged))
        try:
            inspect_module(module)
        except InvalidModuleError:
            pass


def test_cli_reports_corrupt_module_in_one_line(tiny_image_module, tmp_path):
    module = tmp_path / "module"
    shutil.copytree(tiny_image_module, module)
    data = (module / "saved_model.pb").read_bytes()
    (module / "saved_model.pb").write_bytes(data[: len(data) // 2])
    result = run_hubcli("inspect", str(module), env=QUIET)
    assert result.returncode == InvalidModuleError.exit_code
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


# --------------------------------------------------------------------------- CLI


def test_cli_json_without_importing_tensorflow(tiny_image_module):
    result = run_hubcli("inspect", str(tiny_image_module), "--json", env={**QUIET, "PYTHONPROFILEIMPORTTIME": "1"})
    assert result.returncode == 0, result.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "hubcli.savedmodel.inspector" in imported
    assert not {name for name in imported if name.split(".")[0] in ("tensorflow", "keras", "tensorflow_text")}
    document = json.loads(result.stdout)
    assert document["schema"] == "hubcli.inspect/1"
    assert {k: v for k, v in document.items() if k not in ("schema", "module")} == inspect_module(tiny_image_module).to_json()


def test_cli_human_output_shows_risks(risky_module):
    result = run_hubcli("inspect", str(risky_module), env=QUIET)
    assert result.returncode == 0, result.stderr
    for text in ("TF2 SavedModel", "Risky ops", "ReadFile", "EagerPyFunc", "writes (creates or overwrites)"):
        assert text in result.stdout


def test_cli_tables_fit_a_narrow_terminal(tiny_image_module):
    lines = run_in_terminal(["inspect", str(tiny_image_module)], columns=60)
    assert max(len(line) for line in lines) <= 60
    header = next(line for line in lines if "Signature" in line and "Dtype" in line)
    assert "Name" in header and "Shape" in header  # Squeezed columns wrap; none disappears.


def test_cli_json_path_is_absolute_for_a_relative_module_path(tiny_image_module):
    result = run_hubcli("inspect", tiny_image_module.name, "--json", cwd=tiny_image_module.parent)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["path"] == str(tiny_image_module)


def test_cli_inspects_a_handle_through_the_cache(tiny_text_archive, tmp_path):
    cache = tmp_path / "cache"
    result = run_hubcli("inspect", str(tiny_text_archive), "--cache-dir", str(cache), "--json", env=QUIET)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["path"].startswith(str(cache)) and document["takes_strings"] is True


# --------------------------------------------------------------------------- content digest


def test_content_digest_tracks_content_and_uses_cache_manifest(tiny_image_archive, tiny_image_module, tmp_path):
    from hubcli import Settings
    from hubcli.hub.pull import resolve_module_path

    cached = resolve_module_path(str(tiny_image_archive), Settings.load(cache_dir=tmp_path / "cache"))
    copy = tmp_path / "copy"
    shutil.copytree(tiny_image_module, copy)
    # The manifest shortcut (cache entry) and hashing every file (plain copy) agree.
    assert content_digest(cached) == content_digest(copy) == content_digest(tiny_image_module)
    variables = next((copy / "variables").glob("*.data-*"))
    data = bytearray(variables.read_bytes())
    data[0] ^= 0xFF
    variables.write_bytes(bytes(data))
    assert content_digest(copy) != content_digest(tiny_image_module)


# --------------------------------------------------------------------------- wire format


def test_protowire_decodes_what_protobuf_encodes():
    from tensorflow.core.framework import attr_value_pb2, tensor_shape_pb2
    from tensorflow.core.protobuf import struct_pb2

    shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=-1), tensor_shape_pb2.TensorShapeProto.Dim(size=300)])
    dims = [pw.signed64(pw.first(d, 1, 0)) for n, _, d in pw.fields(shape.SerializeToString()) if n == 2]
    assert dims == [-1, 300]

    values = attr_value_pb2.AttrValue(list=attr_value_pb2.AttrValue.ListValue(i=[1, -2, 1 << 40], f=[0.5]))
    listed = pw.first(values.SerializeToString(), 1)
    assert [pw.signed64(v) for v in pw.packed_varints(pw.first(listed, 3))] == [1, -2, 1 << 40]
    assert [pw.float32(int.from_bytes(pw.first(listed, 4), "little"))] == [0.5]

    assert pw.float32(pw.first(attr_value_pb2.AttrValue(f=1.25).SerializeToString(), 4)) == 1.25
    assert pw.zigzag(pw.first(struct_pb2.StructuredValue(int64_value=-5).SerializeToString(), 12)) == -5
    assert pw.float64(pw.first(struct_pb2.StructuredValue(float64_value=-2.5).SerializeToString(), 11)) == -2.5
    with pytest.raises(pw.DecodeError):
        list(pw.fields(shape.SerializeToString()[:-1]))
