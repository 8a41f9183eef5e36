"""Multi-label manifests: CSV and JSONL, images and texts, and every bad input as one clear error."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hubcli.errors import DataError, NotFoundError
from hubcli.train.manifest import load_manifest, read_manifest
from tests.helpers.synthetic_images import CLASS_STYLES, draw_example


def _images(folder, count):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    names = []
    for index in range(count):
        draw_example(CLASS_STYLES["red_squares"], rng, 16).save(folder / f"{index}.png")
        names.append(f"{index}.png")
    return names


def _csv(path, rows, header="path,labels"):
    path.write_text(header + "\n" + "".join(f"{row}\n" for row in rows), encoding="utf-8")
    return path


def test_csv_manifest_with_relative_absolute_and_empty_labels(tmp_path):
    names = _images(tmp_path / "img", 9)
    rows = [f"img/{n},cat;outdoor" for n in names[:4]] + [f"{tmp_path / 'img' / n},dog; outdoor" for n in names[4:8]] + [f"img/{names[8]},"]
    manifest = read_manifest(_csv(tmp_path / "labels.csv", rows), task="image")
    assert manifest.labels == ["cat", "dog", "outdoor"] and manifest.format == "csv"
    assert [e.label for e in manifest.examples] == [(0, 2)] * 4 + [(1, 2)] * 4 + [()]
    assert manifest.examples[0].key == "img/0.png" and manifest.examples[0].source == tmp_path / "img" / "0.png"
    assert manifest.examples[4].source == tmp_path / "img" / "4.png"


def test_jsonl_manifests_for_images_and_texts(tmp_path):
    names = _images(tmp_path, 4)
    records = [{"path": n, "labels": ["sky", "sea"] if i % 2 else ["sky", "sea", "sand"]} for i, n in enumerate(names)]
    records += [{"path": f"more/{n}", "labels": ["sand"]} for n in _images(tmp_path / "more", 2)]
    image_manifest = tmp_path / "m.jsonl"
    image_manifest.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    manifest = read_manifest(image_manifest, task="image")
    assert manifest.labels == ["sand", "sea", "sky"] and manifest.examples[0].label == (0, 1, 2)
    texts = [{"text": f"sentence {i}", "labels": ["a", "b"][: 1 + i % 2]} for i in range(8)]
    text_manifest = tmp_path / "t.jsonl"
    text_manifest.write_text("".join(json.dumps(t) + "\n" for t in texts), encoding="utf-8")
    manifest = read_manifest(text_manifest, task="text")
    assert manifest.labels == ["a", "b"] and manifest.examples[1].label == (0, 1) and manifest.examples[1].source == "sentence 1"
    assert len(manifest.examples[0].key) == 64  # the text's sha256, as for other text data


def test_a_folder_is_refused_with_a_pointer(tmp_path):
    (tmp_path / "cats").mkdir()
    with pytest.raises(DataError, match="is a folder, but multi-label data is a manifest: a CSV with path,labels columns"):
        read_manifest(tmp_path, task="image")


@pytest.mark.parametrize(
    "header, match",
    [("path,labels,weight", "unknown column.*'weight'"), ("file,labels", "unknown column.*'file'.*missing 'path'"), ("path", "missing 'labels'")],
)
def test_unknown_or_missing_columns_are_one_error(tmp_path, header, match):
    _images(tmp_path, 4)
    with pytest.raises(DataError, match=match):
        read_manifest(_csv(tmp_path / "m.csv", [], header=header), task="image")


def test_missing_files_are_all_listed(tmp_path):
    names = _images(tmp_path, 4)
    rows = [f"{n},cat" for n in names] + ["gone1.png,cat", "sub/gone2.png,cat"]
    with pytest.raises(NotFoundError, match=r"2 image\(s\) listed in .* do not exist: gone1.png \(line 6\), sub/gone2.png \(line 7\)"):
        read_manifest(_csv(tmp_path / "m.csv", rows), task="image")


def test_a_label_used_once_is_named(tmp_path):
    names = _images(tmp_path, 5)
    rows = [f"{n},cat" for n in names[:4]] + [f"{names[4]},cat;zebra"]
    manifest = _csv(tmp_path / "m.csv", rows)
    assert read_manifest(manifest, task="image").labels == ["cat", "zebra"]  # evaluation data may be small
    with pytest.raises(DataError, match=r"each label needs at least 4 usable examples; too few in: 'zebra' \(1\)"):
        load_manifest(manifest, task="image")


def test_a_path_listed_twice_and_malformed_rows(tmp_path):
    names = _images(tmp_path, 4)
    with pytest.raises(DataError, match="listed twice"):
        read_manifest(_csv(tmp_path / "m.csv", [f"{n},cat" for n in names] + [f"{names[0]},cat"]), task="image")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"path": names[0], "labels": "cat;dog"}) + "\n")
    with pytest.raises(DataError, match=r'bad.jsonl:1: "labels" must be a list'):
        read_manifest(bad, task="image")
    bad.write_text(json.dumps({"text": "hello", "labels": ["a"]}) + "\n")
    with pytest.raises(DataError, match=r"line 1: unknown key.*'text'"):
        read_manifest(bad, task="image")
    with pytest.raises(DataError, match="a manifest is a .csv or .jsonl file"):
        read_manifest(_csv(tmp_path / "m.tsv", []), task="image")
    with pytest.raises(NotFoundError, match="no such manifest"):
        read_manifest(tmp_path / "absent.csv", task="image")
