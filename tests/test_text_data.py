"""Reading labelled sentences in every form classify-text accepts, from real files."""

from __future__ import annotations

import json

import pytest

from hubcli.errors import DataError, NotFoundError, UsageError
from hubcli.train.text_dataset import load_text_dataset, text_key
from tests.helpers.text_corpus import build_tfds_dataset, corpus, write_class_folders, write_tab_lines

POS = ["a wonderful film", "truly great acting", "I loved it, really"]
NEG = ["a dull film", "terrible acting", 'the "plot" was awful']


def write(path, text, encoding="utf-8"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return path


def as_pairs(data):
    return sorted((text, data.class_names[label]) for text, label in zip(data.texts, data.labels, strict=True))


EXPECTED = sorted([(t, "pos") for t in POS] + [(t, "neg") for t in NEG])


def test_csv_header_with_guessed_columns_and_quoted_commas(tmp_path):
    rows = ["id,review,sentiment"] + [f'{i},"{t.replace(chr(34), 2 * chr(34))}",pos' for i, t in enumerate(POS)]
    rows += [f'{i + 9},"{t.replace(chr(34), 2 * chr(34))}",neg' for i, t in enumerate(NEG)]
    data = load_text_dataset(write(tmp_path / "reviews.csv", "\n".join(rows) + "\n"))
    assert data.format == "csv"
    assert data.columns == {"text": "review", "label": "sentiment"}
    assert as_pairs(data) == EXPECTED
    assert data.class_names == ["neg", "pos"]
    assert data.splits is None


def test_csv_columns_guessed_by_content_when_names_are_unknown(tmp_path):
    # No recognisable names: the longest strings are the text, the few repeated values the label.
    rows = ["uid,words,kind"] + [f"{i},{t.replace(',', '')},{'p' if t in POS else 'n'}" for i, t in enumerate(POS + NEG)]
    data = load_text_dataset(write(tmp_path / "d.csv", "\n".join(rows)))
    assert data.columns == {"text": "words", "label": "kind"}
    assert data.class_names == ["n", "p"]


def test_csv_explicit_columns_override_guesses(tmp_path):
    rows = ["text,label,other_text,flag"] + [f"x,y,{t.replace(',', '')},{int(t in POS)}" for t in POS + NEG]
    data = load_text_dataset(write(tmp_path / "d.csv", "\n".join(rows)), text_column="other_text", label_column="flag")
    assert data.class_names == ["0", "1"]
    assert sorted(data.texts) == sorted(t.replace(",", "") for t in POS + NEG)


def test_tsv_with_header_keeps_quotes_verbatim(tmp_path):
    rows = ["sentence\tlabel"] + [f"{t}\t1" for t in POS] + [f"{t}\t0" for t in NEG]
    data = load_text_dataset(write(tmp_path / "d.tsv", "\n".join(rows) + "\n"))
    assert data.format == "tsv"
    assert 'the "plot" was awful' in data.texts
    assert data.class_names == ["0", "1"]


def test_jsonl_with_integer_labels_and_multiclass(tmp_path):
    records = [{"content": t, "target": i % 3} for i, t in enumerate(POS + NEG)]
    data = load_text_dataset(write(tmp_path / "d.jsonl", "\n".join(json.dumps(r) for r in records) + "\n\n"))
    assert data.format == "jsonl"
    assert data.class_names == ["0", "1", "2"]
    assert data.class_counts() == {"0": 2, "1": 2, "2": 2}
    assert data.labels[data.texts.index(POS[1])] == 1


def test_headerless_sentence_tab_label_keeps_odd_characters(tmp_path):
    # As in the UCI files: quotes, a U+0085 inside a sentence, trailing spaces before the tab, CRLF.
    lines = ['He said "wow\tstill the sentence  \t1', "The script is\x85was there a script?  \t0", "Good.\t1", "Bad.\t0"]
    data = load_text_dataset(write(tmp_path / "labelled.txt", "\r\n".join(lines) + "\r\n"))
    assert data.format == "sentence_tab_label"
    assert data.texts == ['He said "wow\tstill the sentence', "The script is\x85was there a script?", "Good.", "Bad."]
    assert data.labels == [1, 0, 1, 0]


def test_headerless_string_labels_are_not_mistaken_for_a_header(tmp_path):
    lines = [f"{t}\tpos" for t in POS] + [f"{t}\tneg" for t in NEG]
    data = load_text_dataset(write(tmp_path / "d.tsv", "\n".join(lines)))
    assert as_pairs(data) == EXPECTED


def test_class_folders(tmp_path):
    for i, t in enumerate(POS):
        write(tmp_path / "pos" / f"{i}.txt", t + "\n")
    for i, t in enumerate(NEG):
        write(tmp_path / "neg" / f"{i}.txt", t)
    write(tmp_path / "pos" / ".hidden.txt", "not a review")
    write(tmp_path / "pos" / "notes.md", "not a review")
    data = load_text_dataset(tmp_path)
    assert data.format == "class_folders"
    assert as_pairs(data) == EXPECTED
    assert data.splits is None



def test_class_folders_skip_runs_written_inside_them_and_read_any_suffix_case(tmp_path):
    # `cd reviews && hubcli classify-text .` puts its default runs/ beside the class folders.
    for i, t in enumerate(POS):
        write(tmp_path / "pos" / f"{i}.TXT", t)
    for i, t in enumerate(NEG):
        write(tmp_path / "neg" / f"{i}.txt", t)
    for run in (tmp_path / "runs" / "reviews", tmp_path / "pos" / "run"):
        write(run / "run.json", "{}")
        write(run / "labels.txt", "neg\npos\n")
    data = load_text_dataset(tmp_path)
    assert data.class_names == ["neg", "pos"] and as_pairs(data) == EXPECTED


def test_split_folders_without_train_are_an_error(tmp_path):
    write(tmp_path / "test" / "pos" / "0.txt", POS[0])
    with pytest.raises(DataError, match="has test/ but no train/ folder"):
        load_text_dataset(tmp_path)

def test_aclimdb_layout_uses_its_own_splits_and_ignores_unsup(tmp_path):
    root = tmp_path / "aclImdb"
    write(root / "imdb.vocab", "the\nmovie\n")
    for split, texts in (("train", (POS[:2], NEG[:2])), ("test", (POS[2:], NEG[2:]))):
        for i, t in enumerate(texts[0]):
            write(root / split / "pos" / f"{i}_9.txt", t)
        for i, t in enumerate(texts[1]):
            write(root / split / "neg" / f"{i}_2.txt", t)
        write(root / split / "urls_pos.txt", "http://example.com\n")
    write(root / "train" / "unsup" / "0_0.txt", "an unlabelled review")
    data = load_text_dataset(root)
    assert data.format == "class_folders_split"
    assert as_pairs(data) == EXPECTED
    assert data.class_names == ["neg", "pos"]
    by_text = dict(zip(data.texts, data.splits, strict=True))
    assert by_text[POS[0]] == "train" and by_text[NEG[2]] == "test"


def test_split_keys_are_content_hashes_unmoved_by_added_rows(tmp_path):
    lines = [f"{t}\t1" for t in POS] + [f"{t}\t0" for t in NEG]
    before = load_text_dataset(write(tmp_path / "a.txt", "\n".join(lines)))
    after = load_text_dataset(write(tmp_path / "b.txt", "\n".join(["brand new one\t1"] + lines[::-1])))
    assert dict(zip(before.texts, before.keys, strict=True)).items() <= dict(zip(after.texts, after.keys, strict=True)).items()
    assert before.keys[0] == text_key(POS[0])
    # And so the hashed splits of old rows stay put when a corpus grows.
    rows = corpus(per_class=40)
    small = load_text_dataset(write_tab_lines(tmp_path / "small.txt", rows[:60])).split(0.2, 0.2)
    grown = load_text_dataset(write_tab_lines(tmp_path / "grown.txt", rows[::-1])).split(0.2, 0.2)
    where = {e.source: name for name in ("train", "validation", "test") for e in getattr(grown, name)}
    for name in ("train", "validation", "test"):
        assert all(where[e.source] == name for e in getattr(small, name))
    assert min(small.sizes().values()) > 0


def test_split_keeps_the_datasets_own_test_and_hashes_validation_out_of_train(tmp_path):
    root = write_class_folders(tmp_path / "acl", corpus(per_class=20), split_test=True)
    data = load_text_dataset(root).split(validation_split=0.25, test_split=0.5)
    test_files = {p.read_text() for p in (root / "test").rglob("*.txt")}
    assert {e.source for e in data.test} == test_files  # --test-split does not apply
    assert data.sizes()["validation"] > 0
    assert not {e.source for e in data.validation} & test_files


def test_tfds_dataset_with_its_own_splits(tmp_path):
    rows = [(t, "pos") for t in POS] + [(t, "neg") for t in NEG]
    name = build_tfds_dataset(tmp_path / "tfds", rows)
    data = load_text_dataset(tfds=name, tfds_data_dir=tmp_path / "tfds")
    assert data.format == "tfds" and data.source == f"tfds:{name}"
    assert data.class_names == ["neg", "pos"]
    assert as_pairs(data) == EXPECTED  # "unsupervised" has no labels and is left out
    assert sorted(set(data.splits)) == ["test", "train"]


# --- bad input --------------------------------------------------------------------------------


def test_undecodable_bytes_name_file_and_line_and_encoding_fixes_it(tmp_path):
    path = write(tmp_path / "d.txt", b"fine line\t1\nalso fine\t0\ncaf\xe9 au lait\t1\n")
    with pytest.raises(DataError, match=r"d\.txt:3: cannot decode byte\(s\) 0xe9 as utf-8.*--encoding"):
        load_text_dataset(path)
    data = load_text_dataset(path, encoding="latin-1")
    assert "café au lait" in data.texts


def test_undecodable_file_in_class_folder_is_named(tmp_path):
    write(tmp_path / "pos" / "a.txt", "good")
    write(tmp_path / "neg" / "b.txt", b"first\nsecond \xff\n")
    with pytest.raises(DataError, match=r"neg/b\.txt:2: cannot decode"):
        load_text_dataset(tmp_path)


def test_unknown_encoding_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="unknown encoding 'klingon'"):
        load_text_dataset(write(tmp_path / "d.txt", "a\t1\nb\t0\n"), encoding="klingon")


def test_empty_texts_are_skipped_with_a_count(tmp_path, capsys):
    lines = [f"{t}\t1" for t in POS] + ["   \t1", "\t0"] + [f"{t}\t0" for t in NEG]
    data = load_text_dataset(write(tmp_path / "d.txt", "\n".join(lines) + "\n\n"))
    assert len(data) == 6 and data.skipped_empty == 2
    assert "skipped 2 empty texts" in capsys.readouterr().err


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("d.txt", "good\t1\nno label here\nbad\t0\n", r"d\.txt:2: missing label"),
        ("d.txt", "good\t1\nbad\t   \n", r"d\.txt:2: missing label"),
        ("d.csv", "text,label\ngood,1\nbad,\n", r"d\.csv:3: missing label in column 'label'"),
        ("d.jsonl", '{"text": "good", "label": 1}\n{"text": "bad"}\n', r"d\.jsonl:2: missing label 'label'"),
    ],
)
def test_missing_labels_are_one_clear_error(tmp_path, name, content, message):
    with pytest.raises(DataError, match=message):
        load_text_dataset(write(tmp_path / name, content))


def test_single_class_is_an_error(tmp_path):
    data = load_text_dataset(write(tmp_path / "d.txt", "".join(f"good {i}\t1\n" for i in range(9))))
    with pytest.raises(DataError, match=r"only one class \('1'\)"):
        data.split()


def test_label_column_that_does_not_exist(tmp_path):
    path = write(tmp_path / "d.csv", "text,label\ngood,1\nbad,0\n")
    with pytest.raises(DataError, match=r"label column 'stars' not found in .*d\.csv; columns: text, label"):
        load_text_dataset(path, label_column="stars")
    jsonl = write(tmp_path / "d.jsonl", '{"text": "good", "label": 1}\n{"text": "bad", "label": 0}\n')
    with pytest.raises(DataError, match=r"text column 'body' not found"):
        load_text_dataset(jsonl, text_column="body")


def test_invalid_json_line(tmp_path):
    with pytest.raises(DataError, match=r"d\.jsonl:2: not valid JSON"):
        load_text_dataset(write(tmp_path / "d.jsonl", '{"text": "good", "label": 1}\n{"text": oops}\n'))


def test_missing_path_and_missing_tfds_dataset(tmp_path):
    with pytest.raises(NotFoundError, match="no such file or directory"):
        load_text_dataset(tmp_path / "nope.csv")
    with pytest.raises(NotFoundError, match="TFDS dataset 'no_such_dataset_xyz' not found"):
        load_text_dataset(tfds="no_such_dataset_xyz", tfds_data_dir=tmp_path)


def test_very_long_texts_pass_through_untruncated(tmp_path):
    long_text = "word " * 20000
    data = load_text_dataset(write(tmp_path / "d.txt", f"{long_text}\t1\nshort\t0\n"))
    assert data.texts[0] == long_text.strip()


def test_a_sentence_under_two_labels_is_reported_with_its_lines(tmp_path, capsys):
    data = load_text_dataset(write(tmp_path / "d.txt", "same words\t1\nother\t0\nsame words\t0\n"))
    assert len(data) == 3
    assert "1 text(s) appear with two different labels" in capsys.readouterr().err.replace("\n", "")
