"""Labelled sentences as one dataset: :func:`load_text_dataset` reads every form a text dataset arrives in.

The forms (CSV/TSV, JSONL, ``sentence<TAB>label`` lines, class folders, TFDS) are
:mod:`hubcli.train.text_readers`'; this module turns their rows into a :class:`TextDataset`
of (text, label) pairs with class names in label-index order.

Every example carries a stable split key: the sha256 of its text (not its file
and line, which move when rows are inserted). Adding, removing or reordering
rows never moves the others between splits (``hubcli.train.splits`` hashes the key),
and a duplicated sentence always lands in one split (no train/test leak).

Example:
    >>> data = load_text_dataset("imdb_labelled.txt")  # doctest: +SKIP
    >>> data.class_names, len(data.texts), data.texts[0][:20]  # doctest: +SKIP
    (['0', '1'], 1000, 'A very, very, very s')
    >>> data.split(validation_split=0.1, test_split=0.2).sizes()  # doctest: +SKIP
    {'train': 709, 'validation': 102, 'test': 189}
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from hubcli import console
from hubcli.errors import DataError, NotFoundError, UsageError
from hubcli.train.splits import Example, LabeledData
from hubcli.train.text_readers import Row, check_encoding, is_int, read_class_folders, read_text_file, read_text_tfds


@dataclass
class TextDataset:
    """Labelled sentences, with class names in label-index order.

    ``splits`` holds each example's split as the dataset itself defines it
    (``"train"``, ``"validation"``, ``"test"``), or is ``None`` when the data
    is one pool to be split by hash of ``keys``.
    """

    texts: list[str]
    labels: list[int]
    class_names: list[str]
    keys: list[str]
    source: str
    format: str
    splits: list[str] | None = None
    skipped_empty: int = 0
    columns: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.texts)

    def class_counts(self) -> dict[str, int]:
        counts = Counter(self.labels)
        return {name: counts.get(index, 0) for index, name in enumerate(self.class_names)}

    def examples(self) -> list[Example]:
        """The sentences as training-core examples: key = text hash, source = the text."""
        own = self.splits or [None] * len(self.texts)
        return [Example(key, label, text, split) for key, label, text, split in zip(self.keys, self.labels, self.texts, own, strict=True)]

    def split(self, validation_split: float = 0.1, test_split: float = 0.1) -> LabeledData:
        """Train/validation/test by the dataset's own splits, else by hash of each text.

        Raises:
            DataError: a single class, or a class with too few examples.
        """
        return LabeledData.from_examples(
            self.class_names, self.examples(), validation_split=validation_split, test_split=test_split, origin=self.source
        )


def text_key(text: str) -> str:
    """A sentence's identity: sha256 of its UTF-8 bytes (split key and feature-cache key)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def load_text_dataset(
    data: str | Path | None = None,
    *,
    tfds: str | None = None,
    text_column: str | None = None,
    label_column: str | None = None,
    encoding: str = "utf-8",
    tfds_data_dir: str | Path | None = None,
) -> TextDataset:
    """Read labelled sentences from ``data`` (file or folder) or a TFDS dataset.

    Labels may be strings or integers; classes are sorted, numerically when
    every label is an integer. Empty texts are skipped, with a warning that
    counts them. A single class is reported by :meth:`TextDataset.split`.

    Raises:
        NotFoundError: ``data`` (or the TFDS dataset) does not exist.
        UsageError: both or neither of ``data`` and ``tfds``; an unknown encoding.
        DataError: undecodable bytes (with file and line), a missing label, a
            label column that does not exist, malformed JSON, no examples.
    """
    if (data is None) == (tfds is None):
        raise UsageError("give a DATA path or --tfds NAME (exactly one)")
    check_encoding(encoding)
    columns: dict[str, str] = {}
    if tfds is not None:
        rows = read_text_tfds(tfds, text_feature=text_column, label_feature=label_column, data_dir=tfds_data_dir)
        fmt, source = "tfds", f"tfds:{tfds}"
    else:
        path = Path(data).expanduser()
        if not path.exists():
            raise NotFoundError(f"no such file or directory: {path}")
        source = str(path)
        if path.is_dir():
            rows, fmt = read_class_folders(path, encoding)
        else:
            rows, fmt, columns = read_text_file(path, encoding=encoding, text_column=text_column, label_column=label_column)
    return _assemble(rows, fmt, source, columns)


def _assemble(rows: list[Row], fmt: str, source: str, columns: dict[str, str]) -> TextDataset:
    kept = [row for row in rows if row[0].strip()]
    skipped = len(rows) - len(kept)
    if skipped:
        console.warn(f"skipped {skipped} empty text{'s' if skipped != 1 else ''} in {source}")
    if not kept:
        raise DataError(f"no labelled texts found in {source}")
    _warn_conflicting_labels(kept)
    # A single class is reported by LabeledData.check_classes when the data is split.
    class_names = _ordered_classes([row[1] for row in kept])
    index = {name: i for i, name in enumerate(class_names)}
    texts = [row[0] for row in kept]
    own_splits = [row[3] for row in kept]
    return TextDataset(
        texts=texts,
        labels=[index[row[1]] for row in kept],
        class_names=class_names,
        keys=[text_key(text) for text in texts],
        source=source,
        format=fmt,
        splits=own_splits if any(split is not None for split in own_splits) else None,
        skipped_empty=skipped,
        columns=columns,
    )


def _ordered_classes(labels: list[str]) -> list[str]:
    distinct = set(labels)
    if all(is_int(label) for label in distinct):
        return sorted(distinct, key=int)
    return sorted(distinct)


def _warn_conflicting_labels(rows: list[Row]) -> None:
    """Warn (with where) about a sentence that appears under two labels: the classes overlap there."""
    first_seen: dict[str, Row] = {}
    clashes = []
    for row in rows:
        other = first_seen.setdefault(row[0], row)
        if other[1] != row[1]:
            clashes.append(f"{other[2]} ({other[1]}) = {row[2]} ({row[1]})")
    if clashes:
        more = f" and {len(clashes) - 3} more" if len(clashes) > 3 else ""
        console.warn(f"{len(clashes)} text(s) appear with two different labels: {'; '.join(clashes[:3])}{more}")
