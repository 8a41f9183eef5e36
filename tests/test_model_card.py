"""MODEL_CARD.md: module, data, metrics, training, intended use and the considerations of reusing a module."""

from __future__ import annotations

import json

from hubcli.train.model_card import model_card, module_licence, write_model_card

RUN = {
    "task": "image",
    "labels": ["daisy", "rose", "tulip"],
    "module": {"handle": "efficientnet_lite0", "path": "/nonexistent", "sha256": "ab" * 32},
    "config": {"epochs": 40, "learning_rate": 0.003, "fine_tune": False, "data": "flowers/", "validation_split": 0.1, "test_split": 0.1, "seed": 3},
    "created": "2026-02-03T04:05:06+00:00",
}
METRICS = {
    "accuracy": 0.8,
    "macro_f1": 0.78,
    "examples": 10,
    "evaluated_on": "test",
    "splits": {"train": 80, "validation": 10, "test": 10},
    "class_counts": {
        "train": {"daisy": 30, "rose": 30, "tulip": 20},
        "validation": {"daisy": 4, "rose": 3, "tulip": 3},
        "test": {"daisy": 4, "rose": 3, "tulip": 3},
    },
    "per_class": {
        "daisy": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 4},
        "rose": {"precision": 0.6, "recall": 1.0, "f1": 0.75, "support": 3},
        "tulip": {"precision": 1.0, "recall": 0.333, "f1": 0.5, "support": 3},
    },
    "confusion_matrix": [[4, 0, 0], [0, 3, 0], [0, 2, 1]],
    "skipped": [{"key": "rose/broken.jpg", "reason": "not a recognised image format"}],
    "epochs_run": 12,
}
MODULE = {
    "description": "EfficientNet-Lite0 feature vector, converted by hubcli.",
    "licence": {"spdx": "Apache-2.0", "weights": "weights by their authors"},
    "provenance": {"source_model": "efficientnet-lite0 (PyTorch)", "weights_sha256": "cd" * 32},
}


def test_card_has_every_section_with_the_run_facts():
    card = model_card(RUN, METRICS, module_meta=MODULE, name="flowers")

    for heading in ("# Model card: flowers", "## Module", "## Data", "## Metrics", "## Training", "## Intended use", "## Limitations and considerations"):
        assert heading in card
    assert "`efficientnet_lite0`" in card and "ab" * 32 in card and "| licence | Apache-2.0 |" in card
    assert "| provenance: source model | efficientnet-lite0 (PyTorch) |" in card
    assert "| tulip | 20 | 3 | 3 |" in card and "| **total** | 80 | 10 | 10 |" in card
    assert "Skipped 1 unreadable example(s)" in card and "`rose/broken.jpg`: not a recognised image format" in card
    assert "accuracy **0.800**" in card and "| tulip | 1.000 | 0.333 | 0.500 | 3 |" in card
    assert "| **tulip** | 0 | 2 | 1 |" in card
    assert "12 of at most 40" in card and "no (module frozen)" in card


def test_card_states_the_considerations_of_reusing_a_module():
    card = model_card(RUN, METRICS, module_meta=MODULE, name="flowers")
    assert "The module is code from its publisher" in card and "hubcli inspect" in card
    assert "pretraining data" in card and "biases" in card and "efficientnet-lite0 (PyTorch)" in card
    # The weakest class is named with its figures; the perfect one is not.
    weak = next(line for line in card.splitlines() if "Per-class figures show where it is weak" in line)
    assert "`tulip` is found 33%" in weak and "daisy" not in weak
    assert "as few as 3 example(s) per class" in card


def test_card_without_module_label_or_evaluation_split_says_so():
    metrics = {**METRICS, "evaluated_on": "train", "class_counts": None, "skipped": []}
    card = model_card({**RUN, "task": "text"}, metrics, module_meta=None, name="reviews")
    assert "not stated by the module" in card and "| provenance | not recorded by the module |" in card
    assert "on the training data" in card and "No examples were skipped." in card
    assert "Classifies sentences" in card and "| 80 | 10 | 10 |" in card
    assert module_licence(None) is None and module_licence({"licence": "MIT"}) == "MIT"


def test_export_section_and_markdown_safe_cells():
    export = {
        "format": "tflite",
        "path": "/runs/x/export/model_int8.tflite",
        "size_bytes": 1234567,
        "quantize": "int8",
        "labels_path": "/runs/x/export/labels.txt",
        "agreement": {"samples": 200, "top1_agreement": 0.985, "max_abs_diff": 0.03},
    }
    run = {**RUN, "labels": ["a|b", "c"]}
    metrics = {**METRICS, "per_class": {"a|b": METRICS["per_class"]["daisy"]}, "class_counts": None, "confusion_matrix": [[1, 0], [0, 1]]}
    card = model_card(run, metrics, export=export, name="x")
    assert "## This export" in card and "`model_int8.tflite`" in card and "1,234,567 bytes" in card
    assert "0.985 top-1 on 200 samples" in card and "`labels.txt` beside it" in card
    assert "| a\\|b |" in card, "a | in a class name must not split the table"


def test_write_model_card_reads_the_run_directory(tmp_path):
    module_dir = tmp_path / "module"
    module_dir.mkdir()
    (module_dir / "hubcli_module.json").write_text(json.dumps(MODULE), encoding="utf-8")
    run_dir = tmp_path / "flowers-run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps({**RUN, "module": {**RUN["module"], "path": str(module_dir)}}), encoding="utf-8")
    (run_dir / "metrics.json").write_text(json.dumps(METRICS), encoding="utf-8")

    target = write_model_card(run_dir, run_dir / "MODEL_CARD.md")

    card = target.read_text(encoding="utf-8")
    assert card.startswith("# Model card: flowers-run") and "| licence | Apache-2.0 |" in card
