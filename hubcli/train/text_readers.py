"""Labelled sentences from files and folders: CSV, TSV, JSONL, ``sentence<TAB>label`` lines, class folders, TFDS.

Each reader returns rows, ``(text, label, where, own split or None)`` tuples, that
:func:`hubcli.train.text_dataset.load_text_dataset` assembles into a dataset:

- CSV or TSV with a header row. ``text_column`` / ``label_column`` choose the
  columns; without them a column named like ``text``/``sentence``/``review``
  and one named like ``label``/``sentiment``/``class`` are used, else the
  column of longest strings and the column with fewest distinct values.
- JSONL (``.jsonl``/``.ndjson``): one object per line, keys chosen the same way.
- Headerless ``sentence<TAB>label`` lines (the UCI sentiment files). The label
  is what follows the last tab; quotes and odd characters in the sentence are
  kept verbatim (no CSV quoting rules apply).
- A folder with one sub-folder of ``.txt`` files per class, optionally split
  into ``train/`` / ``validation/`` / ``test/`` as aclImdb is (its ``unsup``
  folder of unlabelled reviews is ignored).
- A TFDS dataset by name, with its own splits.

Undecodable bytes are reported with file and line.

Example:
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "reviews.csv"
    >>> _ = path.write_text('review,stars\\n"Loved it, truly",5\\nDull,1\\n')
    >>> rows, fmt, columns = read_text_file(path, encoding="utf-8", text_column=None, label_column=None)
    >>> fmt, columns, [row[:2] for row in rows]
    ('csv', {'text': 'review', 'label': 'stars'}, [('Loved it, truly', '5'), ('Dull', '1')])
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from hubcli.errors import DataError, UsageError
from hubcli.train.class_folders import scan_class_folders
from hubcli.train.tfds_reader import read_tfds

#: Column (or JSON key) names tried, in order, when none is given. Compared case-insensitively.
TEXT_COLUMN_NAMES = (
    "text", "sentence", "review", "content", "body", "document", "comment", "tweet",
    "message", "utterance", "review_text", "abstract", "description", "question", "query",
)
LABEL_COLUMN_NAMES = (
    "label", "labels", "sentiment", "class", "target", "category", "polarity", "intent",
    "topic", "y", "rating", "stars",
)
#: Folders of unlabelled text that sit beside the class folders (aclImdb's ``unsup``).
UNLABELLED_FOLDERS = {"unsup", "unlabeled", "unlabelled"}
JSONL_SUFFIXES = {".jsonl", ".ndjson"}

#: A sentence before assembly: (text, raw label, where it came from, own split or None).
Row = tuple[str, str, str, "str | None"]


def read_text_file(path: Path, *, encoding: str, text_column: str | None, label_column: str | None) -> tuple[list[Row], str, dict[str, str]]:
    """Rows of a JSONL, CSV, TSV or ``sentence<TAB>label`` file, its format and the columns used."""
    if path.suffix.lower() in JSONL_SUFFIXES:
        rows, columns = _read_jsonl(path, encoding, text_column, label_column)
        return rows, "jsonl", columns
    return _read_delimited(path, encoding, text_column, label_column)


def is_int(text: str) -> bool:
    """Whether ``text`` is an integer literal (labels like ``"0"``/``"1"`` sort numerically)."""
    try:
        int(text)
    except ValueError:
        return False
    return True


def label_text(value) -> str:
    """A label as a class name: ints and bools as digits, strings stripped, None as ''."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


# --- decoding ---------------------------------------------------------------------------------


def check_encoding(encoding: str) -> None:
    import codecs

    try:
        codecs.lookup(encoding)
    except LookupError:
        raise UsageError(f"unknown encoding {encoding!r} (try utf-8, latin-1, cp1252)") from None


def decode_text(raw: bytes, path: Path, encoding: str) -> str:
    """Decode a whole file, naming the file and line of the first bad byte."""
    # A UTF-8 byte-order mark is not part of the first column's name or the first sentence.
    codec = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
    try:
        text = raw.decode(codec)
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        bad = raw[err.start : err.end].hex(" ")
        raise DataError(
            f"{path}:{line}: cannot decode byte(s) 0x{bad} as {encoding}; set the file's encoding with --encoding (e.g. latin-1)"
        ) from None
    # Only \n (and \r\n) end a line: these files contain U+0085 and U+2028 inside sentences,
    # which str.splitlines() would wrongly treat as line breaks.
    return text.replace("\r\n", "\n")


# --- delimited files --------------------------------------------------------------------------


def _read_delimited(path: Path, encoding: str, text_column: str | None, label_column: str | None):
    text = decode_text(path.read_bytes(), path, encoding)
    lines = [line for line in text.split("\n") if line.strip()]
    first = lines[0] if lines else ""
    suffix = path.suffix.lower()
    delimiter = "," if suffix == ".csv" else "\t" if suffix == ".tsv" or "\t" in first else ","
    if not _has_header(lines, delimiter, suffix, text_column, label_column):
        if text_column or label_column:
            raise DataError(
                f"{path} has no header row, so --text-column/--label-column cannot apply; "
                "headerless files are read as sentence<TAB>label lines"
            )
        if delimiter != "\t":
            raise DataError(f"{path}: cannot tell the text and label apart; give a header row or use sentence<TAB>label lines")
        return _read_sentence_label_lines(path, text.split("\n")), "sentence_tab_label", {}
    return _read_table(path, text, delimiter, text_column, label_column)


def _has_header(lines: list[str], delimiter: str, suffix: str, text_column: str | None, label_column: str | None) -> bool:
    """Whether the first line names the columns.

    Known or requested column names decide it; a ``.csv`` always has one. Other
    tabbed files are headerless ``sentence<TAB>label`` lines, except a ``.tsv``
    whose first-line cells all look like names (one word, not a number) and
    whose last cell never recurs as a label below: ``great film<TAB>pos``
    followed by more ``pos`` lines is data.
    """
    cells = [cell.strip().strip('"') for cell in lines[0].split(delimiter)] if lines else []
    lowered = {cell.lower() for cell in cells}
    wanted = {name.lower() for name in (text_column, label_column) if name}
    if lowered & (wanted | set(TEXT_COLUMN_NAMES) | set(LABEL_COLUMN_NAMES)):
        return True
    if suffix == ".csv" or not cells:
        return True
    if suffix != ".tsv":
        return False
    looks_like_names = all(cell and not cell.split()[1:] and not is_int(cell) for cell in cells)
    later_labels = {line.rpartition(delimiter)[2].strip() for line in lines[1:]}
    return looks_like_names and cells[-1] not in later_labels


def _read_sentence_label_lines(path: Path, lines: list[str]) -> list[Row]:
    rows: list[Row] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        sentence, tab, label = line.rpartition("\t")
        if not tab or not label.strip():
            raise DataError(f"{path}:{number}: missing label (expected sentence<TAB>label)")
        rows.append((sentence.strip(), label.strip(), f"{path}:{number}", None))
    return rows


def _read_table(path: Path, text: str, delimiter: str, text_column: str | None, label_column: str | None):
    # TSV cells are taken verbatim (no quoting); CSV needs its quoting rules for commas in sentences.
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting)
    try:
        header = next(row for row in reader if any(cell.strip() for cell in row))
        records = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    except csv.Error as err:
        raise DataError(f"{path}:{reader.line_num}: malformed {'CSV' if delimiter == ',' else 'TSV'}: {err}") from None
    header = [cell.strip() for cell in header]
    columns = {name: [row[i] if i < len(row) else "" for _, row in records] for i, name in enumerate(header)}
    text_name, label_name = _choose_columns(path, header, columns, text_column, label_column)
    ti, li = header.index(text_name), header.index(label_name)
    rows: list[Row] = []
    for number, row in records:
        label = row[li].strip() if li < len(row) else ""
        if not label:
            raise DataError(f"{path}:{number}: missing label in column {label_name!r}")
        rows.append(((row[ti] if ti < len(row) else "").strip(), label, f"{path}:{number}", None))
    fmt = "csv" if delimiter == "," else "tsv"
    return rows, fmt, {"text": text_name, "label": label_name}


def _choose_columns(where, names: list[str], values: dict[str, list], text_column: str | None, label_column: str | None):
    """Pick the text and label columns: as given, by name, then by content."""
    for given, role in ((text_column, "text"), (label_column, "label")):
        if given is not None and given not in names:
            raise DataError(f"{role} column {given!r} not found in {where}; columns: {', '.join(names)}")
    text_name = text_column or _by_name(names, TEXT_COLUMN_NAMES, exclude=label_column)
    label_name = label_column or _by_name(names, LABEL_COLUMN_NAMES, exclude=text_name)
    if text_name is None:
        candidates = [n for n in names if n != label_name]
        text_name = max(candidates, key=lambda n: _mean_length(values[n]), default=None)
    if label_name is None:
        label_name = _guess_label_column(names, values, text_name)
    if text_name is None or label_name is None or text_name == label_name:
        raise DataError(
            f"cannot tell which columns of {where} hold the text and the label; "
            f"pass --text-column and --label-column (columns: {', '.join(names)})"
        )
    return text_name, label_name


def _by_name(names: list[str], preferred: tuple[str, ...], exclude: str | None) -> str | None:
    lowered = {name.lower(): name for name in names if name != exclude}
    return next((lowered[p] for p in preferred if p in lowered), None)


def _mean_length(cells: list) -> float:
    return sum(len(str(cell)) for cell in cells) / max(len(cells), 1)


def _guess_label_column(names: list[str], values: dict[str, list], text_name: str | None) -> str | None:
    # A label column repeats a few values; an id or text column is (nearly) all distinct.
    best, best_count = None, None
    for name in names:
        if name == text_name:
            continue
        cells = [label_text(cell) for cell in values[name]]
        distinct = len(set(cells))
        if 2 <= distinct <= max(2, len(cells) // 2) and (best_count is None or distinct < best_count):
            best, best_count = name, distinct
    return best


# --- JSONL -------------------------------------------------------------------------------------


def json_records(path: Path, text: str) -> list[tuple[int, dict]]:
    """``(line number, object)`` for each non-blank line of a decoded JSONL file; bad lines are one DataError.

    Example:
        >>> json_records(Path("m.jsonl"), '{"text": "hi"}\\n\\n{"text": "yo"}\\n')
        [(1, {'text': 'hi'}), (3, {'text': 'yo'})]
    """
    records: list[tuple[int, dict]] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{number}: not valid JSON ({err.msg})") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}:{number}: expected a JSON object per line, got {type(record).__name__}")
        records.append((number, record))
    return records


def _read_jsonl(path: Path, encoding: str, text_column: str | None, label_column: str | None):
    records = json_records(path, decode_text(path.read_bytes(), path, encoding))
    if not records:
        raise DataError(f"no labelled texts found in {path}")
    names = list(dict.fromkeys(key for _, record in records for key in record))
    values = {name: [record.get(name) for _, record in records] for name in names}
    text_name, label_name = _choose_columns(path, names, values, text_column, label_column)
    rows: list[Row] = []
    for number, record in records:
        label = label_text(record.get(label_name))
        if not label:
            raise DataError(f"{path}:{number}: missing label {label_name!r}")
        value = record.get(text_name)
        rows.append(("" if value is None else str(value).strip(), label, f"{path}:{number}", None))
    return rows, {"text": text_name, "label": label_name}


# --- class folders -----------------------------------------------------------------------------


def read_class_folders(root: Path, encoding: str) -> tuple[list[Row], str]:
    """One row per ``.txt`` file of ``root/<class>/`` (or ``root/<split>/<class>/``), and the layout's format."""
    found = scan_class_folders(root, suffixes={".txt"}, ignored_folders=UNLABELLED_FOLDERS)
    rows: list[Row] = [
        (decode_text(file.path.read_bytes(), file.path, encoding).strip(), file.class_name, str(file.path.relative_to(root)), file.split)
        for file in found.files
    ]
    if not rows:
        raise DataError(f"no .txt files found in class folders under {root}")
    return rows, "class_folders_split" if found.pre_split else "class_folders"


# --- TFDS --------------------------------------------------------------------------------------


def read_text_tfds(name: str, *, text_feature: str | None, label_feature: str | None, data_dir: str | os.PathLike | None) -> list[Row]:
    """Every labelled split of a TFDS dataset; text and label features as given, else its supervised keys."""

    def choose_features(info) -> tuple[str, str]:
        supervised = info.supervised_keys or (None, None)
        features = list(info.features.keys())
        text_name = text_feature or (supervised[0] if isinstance(supervised[0], str) else None)
        label_name = label_feature or (supervised[1] if isinstance(supervised[1], str) else None)
        text_name = text_name or _by_name(features, TEXT_COLUMN_NAMES, exclude=label_name)
        label_name = label_name or _by_name(features, LABEL_COLUMN_NAMES, exclude=text_name)
        for given, role in ((text_name, "text"), (label_name, "label")):
            if given is None or given not in features:
                shown = f"{role} feature {given!r} not found" if given else f"cannot tell which feature holds the {role}"
                raise DataError(f"{shown} in TFDS dataset {name!r}; features: {', '.join(features)}")
        return text_name, label_name

    dataset = read_tfds(name, choose_features=choose_features, data_dir=data_dir)
    rows: list[Row] = []
    for record in dataset.records:
        raw_text = record.value
        text = raw_text.decode("utf-8", errors="replace") if isinstance(raw_text, bytes) else str(raw_text)
        label = record.label
        if dataset.label_names:
            label = dataset.label_names[int(label)]
        else:
            label = label_text(label.decode() if isinstance(label, bytes) else label.item())
        rows.append((text.strip(), label, f"{name}/{record.split_name}[{record.position}]", record.split))
    return rows
