"""Every run writes MODEL_CARD.md and report.html; ``evaluate --report DIR`` writes the report for any labelled set."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from tests.helpers import browser, text_corpus
from tests.helpers.cli_run import error_line, run_hubcli

pytestmark = pytest.mark.slow


def test_a_run_writes_its_model_card_and_report(image_run):
    card = (image_run / "MODEL_CARD.md").read_text(encoding="utf-8")
    metrics = json.loads((image_run / "metrics.json").read_text())
    handle = json.loads((image_run / "run.json").read_text())["module"]["handle"]

    assert card.startswith(f"# Model card: {image_run.name}") and f"`{handle}`" in card
    assert sum(metrics["class_counts"]["train"].values()) == metrics["splits"]["train"]
    for label, count in metrics["class_counts"]["train"].items():
        assert f"| {label} | {count} |" in card
    assert "fine-tuned" in card, "the shared run fine-tuned its module"
    page = (image_run / "report.html").read_text(encoding="utf-8")
    assert "Training curves" in page and "Confusion matrix" in page and page.count("<polyline") == 4


def _swapped_image_data(image_run, tmp_path):
    """The run's photos with every class folder renamed to the next class: each one is now a mistake."""
    source = image_run.parent / "data"
    names = sorted(p.name for p in source.iterdir())
    for index, name in enumerate(names):
        shutil.copytree(source / name, tmp_path / "swapped" / names[(index + 1) % len(names)])
    return tmp_path / "swapped"


def test_evaluate_report_shows_the_mistakes_worst_first(image_run, tmp_path):
    data = _swapped_image_data(image_run, tmp_path)
    done = run_hubcli("evaluate", image_run, data, "--report", tmp_path / "report", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    page = (tmp_path / "report" / "report.html").read_text(encoding="utf-8")

    assert summary["report"] == str(tmp_path / "report" / "report.html") and summary["accuracy"] < 0.2
    wrong = summary["examples"] - round(summary["accuracy"] * summary["examples"])
    assert f"Mistakes ({wrong}), most confident first" in page
    assert page.count("data:image/jpeg;base64,") == min(wrong, 60)
    shown = [float(value) for value in re.findall(r"<figcaption><b>[^<]*</b> ([0-9.]+)", page)]
    assert shown == sorted(shown, reverse=True), "the most confident mistakes come first"


@pytest.mark.skipif(browser.find_browser() is None, reason="no headless Chromium installed (Debian: apt-get install chromium)")
def test_evaluate_report_renders_thumbnails_in_a_browser(image_run, tmp_path):
    data = _swapped_image_data(image_run, tmp_path)
    assert run_hubcli("evaluate", image_run, data, "--report", tmp_path / "report").returncode == 0

    pixels = browser.screenshot(tmp_path / "report" / "report.html", tmp_path / "shot.png")

    # The synthetic photos' shapes are drawn in these colours, which the page itself never uses.
    for colour in ((220, 40, 40), (40, 200, 60), (50, 70, 230)):
        assert browser.pixels_near(pixels, colour, tolerance=30) > 200, f"no thumbnail pixels near {colour}"


def test_text_report_shows_the_sentences(text_run, tmp_path):
    # Sentences under the other class's label (the run's labels are the classes' indices, as written).
    rows = [(text, {"neg": "pos", "pos": "neg"}[label]) for text, label in text_corpus.corpus(per_class=6, seed=3)]
    data = text_corpus.write_tab_lines(tmp_path / "flipped.txt", rows)
    done = run_hubcli("evaluate", text_run, data, "--report", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    page = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "<blockquote>" in page and any(f"<blockquote>{text}</blockquote>" in page for text, _ in rows)


def test_report_must_be_a_directory(image_run, tmp_path):
    taken = tmp_path / "report.html"
    taken.write_text("mine")
    failed = run_hubcli("evaluate", image_run, image_run.parent / "data", "--report", taken)
    assert "--report takes a directory" in error_line(failed, 2, alone=True)
    assert taken.read_text() == "mine"
