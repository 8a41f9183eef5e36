"""Multi-label dataset manifests: which images (or texts) carry which labels.

Two forms, for ``retrain-images MANIFEST --multi-label`` and ``classify-text MANIFEST
--multi-label``:

- CSV with a header naming exactly two columns: ``path`` (images; relative to the CSV's
  folder, or absolute) or ``text`` (texts), and ``labels``, ``;``-separated. An empty
  ``labels`` cell means the example has none of the labels (a true negative for all).
- JSONL (``.jsonl``/``.ndjson``): one object per line with ``"path"`` or ``"text"`` and
  ``"labels"``, a list of strings (``[]`` for none).

Anything else is one clear error: other columns or keys, a folder of class folders,
image paths that do not exist (all listed), the same path twice; for training
(:func:`load_manifest`), also a label too rare to learn and check (fewer than
``MIN_EXAMPLES_PER_CLASS`` examples). Keys for the stable split hash are the path as
written (posix), or the text's sha256 as for other text data.

Example:
    >>> manifest = read_manifest("photos/labels.csv", task="image")  # doctest: +SKIP
    >>> manifest.labels, manifest.examples[0].label  # doctest: +SKIP
    (['cat', 'dog', 'outdoor'], (0, 2))
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from hubcli import console
from hubcli.errors import DataError, NotFoundError
from hubcli.train.splits import Example, LabeledData
from hubcli.train.text_dataset import text_key
from hubcli.train.text_readers import decode_text, json_records

MANIFEST_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
#: The column (key) that names an example, by task.
SOURCE_FIELD = {"image": "path", "text": "text"}
LABEL_SEPARATOR = ";"
_SHOWN = 10


@dataclass
class Manifest:
    """Label names (sorted) and examples whose ``label`` is a sorted tuple of label indices."""

    labels: list[str]
    examples: list[Example]
    source: str
    format: str
    skipped_empty: int = 0


def _listing(items: list[str]) -> str:
    more = f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
    return ", ".join(items[:_SHOWN]) + more


def read_manifest(path, *, task: str, encoding: str = "utf-8") -> Manifest:
    """Read a CSV or JSONL manifest of ``task`` ("image" or "text") examples.

    Raises:
        NotFoundError: the manifest, or image files it lists, do not exist.
        DataError: a folder instead of a manifest, unknown columns or keys, a malformed
            row, a path listed twice, or no labels at all.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise DataError(
            f"{path} is a folder, but multi-label data is a manifest: a CSV with {SOURCE_FIELD[task]},labels columns, or JSONL "
            "(class folders train a single-label run, without --multi-label)"
        )
    if not path.is_file():
        raise NotFoundError(f"no such manifest: {path}")
    fmt = MANIFEST_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise DataError(f"{path}: a manifest is a .csv or .jsonl file")
    text = decode_text(path.read_bytes(), path, encoding)
    rows = _csv_rows(path, text, task) if fmt == "csv" else _jsonl_rows(path, text, task)
    return _assemble(path, rows, task, fmt)


def load_manifest(path, *, task: str, validation_split: float = 0.1, test_split: float = 0.1, encoding: str = "utf-8") -> LabeledData:
    """A manifest's examples in their stable hash splits, checked as training data.

    Example:
        >>> data = load_manifest("photos/labels.csv", task="image", validation_split=0.1, test_split=0.2)  # doctest: +SKIP
        >>> data.multi_label, data.labels  # doctest: +SKIP
        (True, ['cat', 'dog', 'outdoor'])
    """
    manifest = read_manifest(path, task=task, encoding=encoding)
    return LabeledData.from_examples(manifest.labels, manifest.examples, validation_split, test_split, origin=manifest.source)


# A row before assembly: (source as written, label names, line number).
_Row = tuple[str, list[str], int]


def _check_fields(path: Path, found: list[str], task: str, where: str) -> None:
    expected = [SOURCE_FIELD[task], "labels"]
    unknown = [name for name in found if name not in expected]
    missing = [name for name in expected if name not in found]
    if unknown or missing:
        problem = f"unknown {'column' if where == 'header' else 'key'}(s) {', '.join(map(repr, unknown))}" if unknown else ""
        problem += ("; " if problem else "") + (f"missing {', '.join(map(repr, missing))}" if missing else "")
        raise DataError(f"{path} {where}: {problem}; a {task} manifest has exactly {', '.join(expected)}")


def _csv_rows(path: Path, text: str, task: str) -> list[_Row]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next((row for row in reader if any(cell.strip() for cell in row)), None)
        if header is None:
            raise DataError(f"{path} is empty; a manifest needs a header row ({SOURCE_FIELD[task]},labels)")
        header = [cell.strip() for cell in header]
        _check_fields(path, header, task, "header")
        source_at, labels_at = header.index(SOURCE_FIELD[task]), header.index("labels")
        rows: list[_Row] = []
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if len(row) > len(header):
                raise DataError(f"{path}:{reader.line_num}: {len(row)} cells for {len(header)} columns (quote cells that contain commas)")
            row = row + [""] * (len(header) - len(row))
            names = [name.strip() for name in row[labels_at].split(LABEL_SEPARATOR)]
            rows.append((row[source_at].strip(), [name for name in names if name], reader.line_num))
    except csv.Error as err:
        raise DataError(f"{path}:{reader.line_num}: malformed CSV: {err}") from None
    return rows


def _jsonl_rows(path: Path, text: str, task: str) -> list[_Row]:
    rows: list[_Row] = []
    for number, record in json_records(path, text):
        _check_fields(path, list(record), task, f"line {number}")
        labels, source = record["labels"], record[SOURCE_FIELD[task]]
        if not isinstance(labels, list) or not all(isinstance(name, str | int) and not isinstance(name, bool) for name in labels):
            raise DataError(f'{path}:{number}: "labels" must be a list of label names, e.g. ["cat", "outdoor"]')
        if not isinstance(source, str):
            raise DataError(f'{path}:{number}: "{SOURCE_FIELD[task]}" must be a string')
        rows.append((source.strip(), [str(name).strip() for name in labels if str(name).strip()], number))
    return rows


def _assemble(path: Path, rows: list[_Row], task: str, fmt: str) -> Manifest:
    kept = [row for row in rows if row[0]]
    skipped = len(rows) - len(kept)
    if skipped:
        noun = "path" if task == "image" else "text"
        console.warn(f"skipped {skipped} row(s) with an empty {noun} in {path}")
    if not kept:
        raise DataError(f"no examples in {path}")
    labels = sorted({name for _, names, _ in kept for name in names})
    if not labels:
        raise DataError(f"no example in {path} has a label; give each row its labels, {LABEL_SEPARATOR}-separated")
    index = {name: i for i, name in enumerate(labels)}
    examples = _image_examples(path, kept, index) if task == "image" else _text_examples(path, kept, index)
    return Manifest(labels=labels, examples=examples, source=str(path), format=fmt, skipped_empty=skipped)


def _label_tuple(names: list[str], index: dict[str, int]) -> tuple[int, ...]:
    return tuple(sorted({index[name] for name in names}))


def _image_examples(path: Path, rows: list[_Row], index: dict[str, int]) -> list[Example]:
    root = path.parent
    first_line: dict[str, int] = {}
    missing, examples = [], []
    for written, names, line in rows:
        key = Path(written).as_posix()
        if key in first_line:
            raise DataError(f"{path}:{line}: {written} is listed twice (also on line {first_line[key]}); give each image one row")
        first_line[key] = line
        file = Path(written).expanduser()
        file = file if file.is_absolute() else root / file
        if not file.is_file():
            missing.append(f"{written} (line {line})")
            continue
        examples.append(Example(key, _label_tuple(names, index), file))
    if missing:
        raise NotFoundError(f"{len(missing)} image(s) listed in {path} do not exist: {_listing(missing)}")
    return examples


def _text_examples(path: Path, rows: list[_Row], index: dict[str, int]) -> list[Example]:
    first_line: dict[str, int] = {}
    examples = []
    for text, names, line in rows:
        key = text_key(text)
        if key in first_line:
            raise DataError(f"{path}:{line}: the same text is listed twice (also on line {first_line[key]}); give each text one row")
        first_line[key] = line
        examples.append(Example(key, _label_tuple(names, index), text))
    return examples
