"""report.html: one self-contained page that a real browser renders, with the model's mistakes worst first."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image

from hubcli.train.report import GALLERY_LIMIT, find_mistakes, render_report, write_report
from tests.helpers import browser

LABELS = ["cat", "dog", "<b>fox</b>"]
METRICS = {
    "accuracy": 0.5,
    "macro_f1": 0.45,
    "examples": 4,
    "evaluated_on": "test",
    "splits": {"train": 30, "validation": 4, "test": 4},
    "per_class": {
        "cat": {"precision": 1.0, "recall": 0.5, "f1": 0.667, "support": 2},
        "dog": {"precision": 0.5, "recall": 1.0, "f1": 0.667, "support": 1},
        "<b>fox</b>": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1},
    },
    "confusion_matrix": [[1, 1, 0], [0, 1, 0], [0, 1, 0]],
}
HISTORY = {"loss": [1.2, 0.8, 0.5], "val_loss": [1.1, 0.9, 0.7], "accuracy": [0.4, 0.6, 0.8], "val_accuracy": [0.5, 0.5, 0.75]}
#: A colour the page itself never uses, so finding it on screen means a thumbnail was drawn.
MAGENTA = (255, 0, 255)


def _png(colour) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_mistakes_are_ordered_most_confident_first():
    probabilities = np.array([[0.2, 0.8, 0.0], [0.9, 0.1, 0.0], [0.4, 0.55, 0.05], [0.1, 0.1, 0.8]])
    mistakes = find_mistakes(["a", "b", "c", "d"], [0, 0, 2, 2], probabilities, LABELS, texts=["one", "two", "three", "four"])
    assert [(m.key, m.predicted_label, m.probability, m.true_probability) for m in mistakes] == [("a", "dog", 0.8, 0.2), ("c", "dog", 0.55, 0.05)]
    assert mistakes[0].text == "one"


def test_only_shown_mistakes_have_their_images_read():
    read = []
    count = GALLERY_LIMIT + 5
    probabilities = np.tile([[0.1, 0.9, 0.0]], (count, 1))
    find_mistakes([str(i) for i in range(count)], [0] * count, probabilities, LABELS, images=lambda i: read.append(i) or _png(MAGENTA))
    assert len(read) == GALLERY_LIMIT


def test_page_is_self_contained_escaped_and_script_free():
    mistakes = find_mistakes(["x/<img src=y>.png"], [2], np.array([[0.7, 0.2, 0.1]]), LABELS, images=lambda i: _png(MAGENTA))
    page = render_report(title="pets <run>", task="image", labels=LABELS, metrics=METRICS, mistakes=mistakes, history=HISTORY)

    assert "<script" not in page.lower() and "default-src 'none'" in page
    # Nothing is fetched: every src and href is inline data.
    assert all(ref.startswith("data:") for ref in re.findall(r'(?:src|href)="([^"]*)"', page))
    assert "<b>fox</b>" not in page and "&lt;b&gt;fox&lt;/b&gt;" in page and "<img src=y>" not in page
    assert page.count("<polyline") == 4, "training and validation curves for loss and accuracy"
    assert "data:image/jpeg;base64," in page


def test_text_mistakes_show_the_sentence_and_unreadable_images_do_not_break_the_page():
    page = render_report(
        title="t", task="text", labels=LABELS, metrics=METRICS, mistakes=find_mistakes(["1"], [0], np.array([[0.1, 0.9, 0.0]]), LABELS, texts=["a <dull> film"])
    )
    assert "<blockquote>a &lt;dull&gt; film</blockquote>" in page
    broken = find_mistakes(["bad.jpg"], [0], np.array([[0.1, 0.9, 0.0]]), LABELS, images=lambda i: b"not an image")
    assert "unreadable" in render_report(title="t", task="image", labels=LABELS, metrics=METRICS, mistakes=broken)


def test_a_perfect_model_says_so():
    page = render_report(title="t", task="image", labels=LABELS[:2], metrics={"accuracy": 1.0, "confusion_matrix": [[2, 0], [0, 2]]}, mistakes=[])
    assert "No example was misclassified" in page


@pytest.mark.skipif(browser.find_browser() is None, reason="no headless Chromium installed (Debian: apt-get install chromium)")
def test_report_renders_in_a_headless_browser(tmp_path):
    probabilities = np.array([[0.05, 0.95, 0.0], [0.2, 0.3, 0.5]])
    mistakes = find_mistakes(["magenta.png", "b.png"], [0, 0], probabilities, LABELS, images=lambda i: _png(MAGENTA))
    page = write_report(tmp_path / "report.html", title="pets", task="image", labels=LABELS, metrics=METRICS, mistakes=mistakes, history=HISTORY)

    pixels = browser.screenshot(page, tmp_path / "shot.png")

    # The thumbnails decoded and were drawn (two 64x48 images)...
    assert browser.pixels_near(pixels, MAGENTA) >= 2 * 64 * 48 * 0.9
    # ...and so were the full-share confusion cells, the recall bars and the validation curve.
    assert browser.pixels_near(pixels, (37, 99, 235), tolerance=3) > 500
    assert browser.pixels_near(pixels, (251, 146, 60), tolerance=3) > 500
    assert browser.pixels_near(pixels, (234, 88, 12), tolerance=30) > 50
