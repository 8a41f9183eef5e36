"""classify-text end to end: every DATA form, the feature cache, fine-tuning, exports, bad input.

Real TF training on the lead's tiny hashed bag-of-words module and a small
synthetic corpus whose classes have their own words mixed with shared filler.
A few runs go through the real ``hubcli`` command in a subprocess (a fresh
process is the only honest test that tensorflow-text ops get registered);
the rest call the library the command calls.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hubcli.config import Settings
from hubcli.train.config import TrainConfig
from hubcli.train.text import classify_text
from hubcli.train.text_dataset import load_text_dataset
from tests.helpers import text_corpus
from tests.helpers.cli_run import error_line, run_hubcli
from tests.helpers.text_modules import build_text_encoder, build_text_preprocessor

FAST = dict(epochs=40, learning_rate=0.05, patience=5)
SPLITS = dict(validation_split=0.15, test_split=0.3)
QUIET = {"TF_CPP_MIN_LOG_LEVEL": "3", "HUBCLI_QUIET": "1"}


@pytest.fixture(scope="module")
def rows():
    return text_corpus.corpus(per_class=30)


def train(data, module, tmp_path, name="run", cache="cache", **options):
    settings = Settings.load(cache_dir=tmp_path / cache)
    config = TrainConfig(**{**FAST, **options.pop("config", {})})
    return classify_text(data, str(module), settings=settings, config=config, output=tmp_path / name, **{**SPLITS, **options})


# --- every DATA form --------------------------------------------------------------------------


def test_tab_lines_through_the_cli_then_predict_and_evaluate(tiny_text_module, rows, tmp_path):
    # One very long text rides along: the module, not hubcli, decides what to do with its length.
    data = text_corpus.write_tab_lines(tmp_path / "reviews.txt", rows + [(" ".join(["superb film"] * 20000), "pos")])
    result = run_hubcli(
        "classify-text", data, "--module", tiny_text_module, "--output", tmp_path / "run", "--cache-dir", tmp_path / "cache",
        "--epochs", 40, "--learning-rate", 0.05, "--validation-split", 0.15, "--test-split", 0.3, "--json", env=QUIET,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["schema"] == "hubcli.classify-text/1" and summary["task"] == "text"
    assert summary["labels"] == ["0", "1"]  # neg, pos as 0/1 like the UCI files
    assert summary["accuracy"] >= 0.9 and summary["examples"] >= 10
    run = tmp_path / "run"
    meta = json.loads((run / "run.json").read_text())
    assert meta["task"] == "text" and meta["image_size"] is None and meta["labels"] == ["0", "1"]
    assert (run / "labels.txt").read_text() == "0\n1\n"
    for name in ("metrics.json", "model.keras", "model/saved_model.pb", "plots/selection.png", "plots/confusion_matrix.png"):
        assert (run / name).is_file(), name
    with np.load(run / "representative.npz") as samples:
        assert samples["inputs"].dtype.kind == "U" and len(samples["inputs"]) == summary["splits"]["train"]

    # predict: repeated --text, and stdin (explicit '-' or no inputs at all).
    result = run_hubcli("predict", run, "--text", "great superb wonderful film", "--text", "awful boring worst plot", "--json", env=QUIET)
    assert result.returncode == 0, result.stderr
    tops = [p["top"][0]["label"] for p in json.loads(result.stdout)["predictions"]]
    assert tops == ["1", "0"]
    for extra in (["--text", "-"], []):
        result = run_hubcli("predict", run, *extra, "-k", "2", "--json", stdin="superb brilliant fun movie\n\nbland poor waste of a story\n", env=QUIET)
        assert result.returncode == 0, result.stderr
        predictions = json.loads(result.stdout)["predictions"]
        assert [p["input"] for p in predictions] == ["superb brilliant fun movie", "bland poor waste of a story"]
        assert [p["top"][0]["label"] for p in predictions] == ["1", "0"] and len(predictions[0]["top"]) == 2
    # FILES of a text run hold one sentence per line.
    sentences = tmp_path / "sentences.txt"
    sentences.write_text("superb brilliant fun movie\r\n\nbland poor waste of a story\n")
    result = run_hubcli("predict", run, sentences, "--json", env=QUIET)
    assert result.returncode == 0, result.stderr
    predictions = json.loads(result.stdout)["predictions"]
    assert [(p["input"], p["top"][0]["label"]) for p in predictions] == [("superb brilliant fun movie", "1"), ("bland poor waste of a story", "0")]

    # evaluate on a CSV of the same sentences (another DATA form, string labels mapped by name).
    evaluation = text_corpus.write_csv(tmp_path / "eval.csv", [(t, "1" if label == "pos" else "0") for t, label in rows])
    result = run_hubcli("evaluate", run, evaluation, "--json", env=QUIET)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["task"] == "text" and report["examples"] == len(rows) and report["accuracy"] >= 0.9


@pytest.mark.parametrize("form", ["csv", "tsv", "jsonl", "class_folders", "aclimdb"])
def test_every_file_form_trains(form, tiny_text_module, rows, tmp_path):
    if form == "csv":
        data = text_corpus.write_csv(tmp_path / "reviews.csv", rows)
    elif form == "tsv":
        data = text_corpus.write_tsv(tmp_path / "reviews.tsv", rows)
    elif form == "jsonl":
        data = text_corpus.write_jsonl(tmp_path / "reviews.jsonl", rows)
    else:
        data = text_corpus.write_class_folders(tmp_path / "reviews", rows, split_test=form == "aclimdb")
    summary = train(data, tiny_text_module, tmp_path)
    assert summary["labels"] == ["neg", "pos"]
    assert summary["accuracy"] >= 0.85
    if form == "aclimdb":
        # The dataset's own test/ folder is the test split (every 4th row); unsup/ is ignored.
        assert summary["splits"]["test"] == len(rows[::4])
        assert sum(summary["splits"].values()) == len(rows)


def test_tfds_dataset_trains_on_its_own_splits(tiny_text_module, rows, tmp_path):
    name = text_corpus.build_tfds_dataset(tmp_path / "tfds", rows)
    summary = train(None, tiny_text_module, tmp_path, tfds_name=name, tfds_data_dir=tmp_path / "tfds")
    assert summary["labels"] == ["neg", "pos"]
    assert summary["splits"]["test"] == len(rows) - len(rows) * 3 // 4
    assert summary["accuracy"] >= 0.85
    assert json.loads((tmp_path / "run" / "run.json").read_text())["config"]["data"] == f"tfds:{name}"


def test_multiclass_string_labels(tiny_text_module, tmp_path):
    rows = text_corpus.corpus(per_class=30, classes=("neg", "pos", "mixed"))
    summary = train(text_corpus.write_jsonl(tmp_path / "three.jsonl", rows), tiny_text_module, tmp_path)
    assert summary["labels"] == ["mixed", "neg", "pos"]
    assert summary["accuracy"] >= 0.8  # chance is 1/3


# --- the feature cache, fine-tuning, exports --------------------------------------------------


def test_second_run_makes_no_module_forward_pass(tiny_text_module, rows, tmp_path):
    data = text_corpus.write_tab_lines(tmp_path / "reviews.txt", rows)
    first = train(data, tiny_text_module, tmp_path, name="first")
    assert first["extraction"]["features_computed"] == len(rows) and first["extraction"]["forward_batches"] > 0
    # Other head settings, same module and texts: every embedding comes from the cache.
    second = train(data, tiny_text_module, tmp_path, name="second", config={"learning_rate": 0.02, "dropout": 0.0})
    assert second["extraction"]["features_computed"] == 0 and second["extraction"]["forward_batches"] == 0
    assert second["extraction"]["features_cached"] == len(rows)
    # Growing the corpus computes only the new sentences.
    grown = text_corpus.write_tab_lines(tmp_path / "grown.txt", rows + text_corpus.corpus(per_class=3, seed=99))
    third = train(grown, tiny_text_module, tmp_path, name="third")
    assert third["extraction"]["features_computed"] == 6


def _encoder_weights(run: Path) -> dict[str, np.ndarray]:
    import keras

    from hubcli.train.layer import HubLayer

    model = keras.models.load_model(run / "model.keras")
    (encoder,) = [layer for layer in model.layers if isinstance(layer, HubLayer)]
    return {weight.name: np.asarray(weight) for weight in encoder.weights}


def test_fine_tune_changes_module_weights_but_not_the_module(tiny_text_module, rows, tmp_path):
    from hubcli.savedmodel.inspector import content_digest

    before = content_digest(tiny_text_module)
    data = text_corpus.write_tab_lines(tmp_path / "reviews.txt", rows)
    frozen = train(data, tiny_text_module, tmp_path, name="frozen")
    tuned = train(data, tiny_text_module, tmp_path, name="tuned", config={"fine_tune": True, "fine_tune_epochs": 2})
    assert tuned["fine_tuned"] and not frozen["fine_tuned"]
    import tensorflow as tf

    table = tf.saved_model.load(str(tiny_text_module)).embeddings.numpy()
    (frozen_table,) = _encoder_weights(tmp_path / "frozen").values()
    (tuned_table,) = _encoder_weights(tmp_path / "tuned").values()
    np.testing.assert_array_equal(frozen_table, table)
    assert np.abs(tuned_table - table).max() > 1e-4
    assert content_digest(tiny_text_module) == before  # the shared module on disk is untouched


def test_exported_models_reproduce_in_process_predictions(tiny_text_module, rows, tmp_path):
    import keras
    import tensorflow as tf

    from hubcli.train import layer  # noqa: F401 - registers hubcli>HubLayer for load_model
    from hubcli.train.metrics import confusion_matrix

    data = text_corpus.write_tab_lines(tmp_path / "reviews.txt", rows)
    summary = train(data, tiny_text_module, tmp_path)
    test = load_text_dataset(data).split(**SPLITS).test
    texts, truth = [e.source for e in test], [e.label for e in test]
    run = tmp_path / "run"

    serving = tf.saved_model.load(str(run / "model")).signatures["serving_default"]
    outputs = serving(text=tf.constant(texts))
    from_savedmodel = outputs["probabilities"].numpy()
    from_keras = np.asarray(keras.models.load_model(run / "model.keras")(tf.constant(texts), training=False))
    np.testing.assert_allclose(from_savedmodel, from_keras, atol=1e-5)
    labels = summary["labels"]
    assert [c.decode() for c in outputs["classes"].numpy()] == [labels[i] for i in from_savedmodel.argmax(1)]
    # The in-process metrics came from the head on cached embeddings: same matrix, same loss.
    assert confusion_matrix(truth, from_savedmodel.argmax(1), len(labels)).tolist() == summary["confusion_matrix"]
    loss = float(np.mean(-np.log(from_savedmodel[np.arange(len(truth)), truth])))
    assert loss == pytest.approx(summary["loss"], abs=1e-3)


# --- BERT-style preprocessor + encoder ---------------------------------------------------------


@pytest.fixture(scope="module")
def bert_style_pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("bert_style")
    return build_text_preprocessor(root / "preprocess"), build_text_encoder(root / "encoder")


def test_preprocessor_and_encoder_pair_with_tensorflow_text_ops(bert_style_pair, rows, tmp_path):
    preprocessor, encoder = bert_style_pair
    data = text_corpus.write_tab_lines(tmp_path / "reviews.txt", rows)
    # Without --preprocessor the encoder cannot take sentences: one clear line.
    result = run_hubcli("classify-text", data, "--module", encoder, "--output", tmp_path / "bad", "--cache-dir", tmp_path / "cache", env=QUIET)
    assert result.returncode == 7 and result.stderr.splitlines() == [
        f"error: module {encoder} does not take strings; BERT-style encoders need --preprocessor HANDLE"
    ]
    # A fresh process: only HubLayer's import of the ops library (inspect lists it) lets the preprocessor load.
    result = run_hubcli(
        "classify-text", data, "--module", encoder, "--preprocessor", preprocessor, "--output", tmp_path / "run",
        "--cache-dir", tmp_path / "cache", "--epochs", 40, "--learning-rate", 0.05, "--validation-split", 0.15,
        "--test-split", 0.3, "--json", env=QUIET,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["accuracy"] >= 0.85
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["preprocessor"]["op_libraries"] == ["tensorflow_text"]
    # Longer than the preprocessor's seq_length: truncated inside the module.
    sentences = ["superb brilliant fun movie", "the story was awful dull waste " * 50]
    result = run_hubcli("predict", tmp_path / "run", "--text", sentences[0], "--text", sentences[1], "--json", env=QUIET)
    assert result.returncode == 0, result.stderr
    predicted = [p["top"][0]["probability"] for p in json.loads(result.stdout)["predictions"]]

    # The .keras model reloads both modules (the pair is one registered layer) and agrees with model/ and predict.
    import keras
    import tensorflow as tf

    from hubcli.train.layer import PreprocessedEncoder

    model = keras.models.load_model(tmp_path / "run" / "model.keras")
    assert any(isinstance(layer, PreprocessedEncoder) for layer in model.layers)
    texts = tf.constant(sentences)
    serving = tf.saved_model.load(str(tmp_path / "run" / "model")).signatures["serving_default"]
    from_savedmodel = serving(text=texts)["probabilities"].numpy()
    np.testing.assert_allclose(np.asarray(model(texts)), from_savedmodel, atol=1e-5)
    np.testing.assert_allclose(predicted, from_savedmodel.max(axis=1), atol=1e-5)


# --- bad input through the real command --------------------------------------------------------


@pytest.mark.parametrize(
    "name, content, extra, code, message",
    [
        ("bytes.txt", b"good film\t1\nbad film\t0\ncaf\xe9 film\t1\n", [], 8,
         r"bytes\.txt:3: cannot decode byte\(s\) 0xe9 as utf-8; set the file's encoding with --encoding"),
        ("nolabel.txt", "good film\t1\nno label on this line\n", [], 8, r"nolabel\.txt:2: missing label"),
        ("one.txt", "".join(f"good film {i}\t1\n" for i in range(8)), [], 8, r"only one class \('1'\)"),
        ("cols.csv", "text,label\ngood,1\nbad,0\n", ["--label-column", "stars"], 8,
         r"label column 'stars' not found in .*cols\.csv; columns: text, label"),
        ("enc.txt", "good\t1\nbad\t0\n", ["--encoding", "klingon"], 2, r"unknown encoding 'klingon'"),
        ("missing.txt", None, [], 3, r"no such file or directory"),
    ],
)
def test_bad_input_is_one_line_and_nothing_written(name, content, extra, code, message, tmp_path):
    import re

    data = tmp_path / name
    if content is not None:
        data.write_bytes(content if isinstance(content, bytes) else content.encode())
    result = run_hubcli("classify-text", data, "--module", tmp_path / "never-loaded", "--output", tmp_path / "run", *extra, env=QUIET)
    lines = result.stderr.splitlines()  # data is checked before TensorFlow (and its log lines) load
    assert result.returncode == code, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and re.search(message, lines[0]), lines
    assert "Traceback" not in result.stderr and not (tmp_path / "run").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".run")]


def test_encoding_option_reads_latin1(tiny_text_module, rows, tmp_path):
    data = tmp_path / "latin1.txt"
    data.write_bytes("".join(f"{t} café\t{int(label == 'pos')}\n" for t, label in rows).encode("latin-1"))
    summary = train(data, tiny_text_module, tmp_path, encoding="latin-1")
    assert summary["accuracy"] >= 0.85


def test_empty_texts_are_skipped_with_a_count(tiny_text_module, rows, tmp_path, capsys):
    data = text_corpus.write_csv(tmp_path / "gaps.csv", rows + [("", "pos"), ("   ", "neg")])
    summary = train(data, tiny_text_module, tmp_path)
    assert sum(summary["splits"].values()) == len(rows)
    assert "skipped 2 empty texts" in capsys.readouterr().err
    assert json.loads((tmp_path / "run" / "run.json").read_text())["config"]["skipped_empty_texts"] == 2


def test_an_image_module_or_no_module_is_refused(tiny_image_module, rows, tmp_path):
    data = text_corpus.write_tab_lines(tmp_path / "reviews.txt", rows)
    result = run_hubcli("classify-text", data, "--module", tiny_image_module, "--output", tmp_path / "run", "--cache-dir", tmp_path / "c", env=QUIET)
    assert result.returncode == 7 and result.stderr.splitlines() == [
        f"error: module {tiny_image_module} takes images, not strings; use retrain-images"
    ]
    result = run_hubcli("classify-text", data, "--module", tmp_path / "nowhere", "--output", tmp_path / "run", "--cache-dir", tmp_path / "c", env=QUIET)
    assert result.returncode == 3 and len(result.stderr.splitlines()) == 1 and "nowhere" in result.stderr
    assert not (tmp_path / "run").exists()


def test_predict_and_evaluate_bad_text_input(tiny_text_module, rows, tmp_path):
    data = text_corpus.write_tab_lines(tmp_path / "reviews.txt", rows)
    train(data, tiny_text_module, tmp_path)
    run = tmp_path / "run"
    result = run_hubcli("predict", run, "--text", "-", stdin="\n  \n", env=QUIET)
    assert error_line(result, 8, alone=True) == 'error: no sentences to classify: give --text "...", FILES, or one sentence per line on stdin'
    unknown = tmp_path / "unknown.txt"
    unknown.write_text("good film\tpos\nbad film\tneg\n")
    result = run_hubcli("evaluate", run, unknown, env=QUIET)
    error_line(result, 8, alone=True)
    assert "are not among the model's labels: 0, 1" in result.stderr
