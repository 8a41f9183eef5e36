"""Text classification data: labelled sentences from files, folders or TFDS, and the text Modality.

One entry point, :func:`load_text_dataset`, reads every form a text dataset
arrives in and returns a :class:`TextDataset` of (text, label) pairs:

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
- A TFDS dataset by name (``tfds="imdb_reviews"``), with its own splits.

:class:`TextModality` is the text side of the training core (``hubcli.train.core``),
and :func:`classify_text` is the library behind ``hubcli classify-text``.

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

import csv
import hashlib
import io
import json
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hubcli import console
from hubcli.errors import DataError, NotFoundError, UsageError
from hubcli.train.module_ref import ModuleRef
from hubcli.train.rundir import default_output
from hubcli.train.splits import SPLIT_FOLDERS, Example, LabeledData

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
        return [Example(key, label, text, split) for key, label, text, split in zip(self.keys, self.labels, self.texts, own)]

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
    _check_encoding(encoding)
    if tfds is not None:
        rows, fmt, source = _read_tfds(tfds, text_column, label_column, tfds_data_dir)
        columns = {}
    else:
        path = Path(data).expanduser()
        if not path.exists():
            raise NotFoundError(f"no such file or directory: {path}")
        source = str(path)
        columns = {}
        if path.is_dir():
            rows, fmt = _read_class_folders(path, encoding)
        elif path.suffix.lower() in JSONL_SUFFIXES:
            rows, columns = _read_jsonl(path, encoding, text_column, label_column)
            fmt = "jsonl"
        else:
            rows, fmt, columns = _read_delimited(path, encoding, text_column, label_column)
    return _assemble(rows, fmt, source, columns)


# A row before assembly: (text, raw label, where it came from, own split or None).
_Row = tuple[str, str, str, "str | None"]


def _assemble(rows: list[_Row], fmt: str, source: str, columns: dict[str, str]) -> TextDataset:
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
    if all(_is_int(label) for label in distinct):
        return sorted(distinct, key=int)
    return sorted(distinct)


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def _warn_conflicting_labels(rows: list[_Row]) -> None:
    """Warn (with where) about a sentence that appears under two labels: the classes overlap there."""
    first_seen: dict[str, _Row] = {}
    clashes = []
    for row in rows:
        other = first_seen.setdefault(row[0], row)
        if other[1] != row[1]:
            clashes.append(f"{other[2]} ({other[1]}) = {row[2]} ({row[1]})")
    if clashes:
        more = f" and {len(clashes) - 3} more" if len(clashes) > 3 else ""
        console.warn(f"{len(clashes)} text(s) appear with two different labels: {'; '.join(clashes[:3])}{more}")


def _label_text(value) -> str:
    """A label as a class name: ints and bools as digits, strings stripped, None as ''."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


# --- decoding ---------------------------------------------------------------------------------


def _check_encoding(encoding: str) -> None:
    import codecs

    try:
        codecs.lookup(encoding)
    except LookupError:
        raise UsageError(f"unknown encoding {encoding!r} (try utf-8, latin-1, cp1252)") from None


def _decode(raw: bytes, path: Path, encoding: str) -> str:
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
    text = _decode(path.read_bytes(), path, encoding)
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
    looks_like_names = all(cell and not cell.split()[1:] and not _is_int(cell) for cell in cells)
    later_labels = {line.rpartition(delimiter)[2].strip() for line in lines[1:]}
    return looks_like_names and cells[-1] not in later_labels


def _read_sentence_label_lines(path: Path, lines: list[str]) -> list[_Row]:
    rows: list[_Row] = []
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
    rows: list[_Row] = []
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
        cells = [_label_text(cell) for cell in values[name]]
        distinct = len(set(cells))
        if 2 <= distinct <= max(2, len(cells) // 2) and (best_count is None or distinct < best_count):
            best, best_count = name, distinct
    return best


# --- JSONL -------------------------------------------------------------------------------------


def _read_jsonl(path: Path, encoding: str, text_column: str | None, label_column: str | None):
    text = _decode(path.read_bytes(), path, encoding)
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
    if not records:
        raise DataError(f"no labelled texts found in {path}")
    names = list(dict.fromkeys(key for _, record in records for key in record))
    values = {name: [record.get(name) for _, record in records] for name in names}
    text_name, label_name = _choose_columns(path, names, values, text_column, label_column)
    rows: list[_Row] = []
    for number, record in records:
        label = _label_text(record.get(label_name))
        if not label:
            raise DataError(f"{path}:{number}: missing label {label_name!r}")
        value = record.get(text_name)
        rows.append(("" if value is None else str(value).strip(), label, f"{path}:{number}", None))
    return rows, {"text": text_name, "label": label_name}


# --- class folders -----------------------------------------------------------------------------


def _read_class_folders(root: Path, encoding: str) -> tuple[list[_Row], str]:
    subdirs = _visible_dirs(root)
    split_dirs = {SPLIT_FOLDERS[d.name.lower()]: d for d in subdirs if d.name.lower() in SPLIT_FOLDERS}
    if split_dirs:
        if "train" not in split_dirs:
            raise DataError(f"{root} has {', '.join(d.name for d in split_dirs.values())}/ but no train/ folder")
        train_classes = {d.name for d in _class_dirs(split_dirs["train"])}
        rows: list[_Row] = []
        for split, folder in split_dirs.items():
            classes = {d.name for d in _class_dirs(folder)}
            extra = sorted(classes - train_classes)
            if extra:
                raise DataError(f"{folder} has class folder(s) {', '.join(extra)} that train/ lacks")
            rows += _read_class_dirs(root, folder, encoding, split)
        return rows, "class_folders_split"
    return _read_class_dirs(root, root, encoding, None), "class_folders"


def _visible_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _class_dirs(folder: Path) -> list[Path]:
    return [d for d in _visible_dirs(folder) if d.name.lower() not in UNLABELLED_FOLDERS]


def _read_class_dirs(root: Path, folder: Path, encoding: str, split: str | None) -> list[_Row]:
    rows: list[_Row] = []
    for class_dir in _class_dirs(folder):
        for file in sorted(class_dir.rglob("*.txt")):
            if any(part.startswith(".") for part in file.relative_to(class_dir).parts):
                continue
            text = _decode(file.read_bytes(), file, encoding)
            rows.append((text.strip(), class_dir.name, str(file.relative_to(root)), split))
    if not rows and split is None:
        raise DataError(f"no .txt files found in class folders under {folder}")
    return rows


# --- TFDS --------------------------------------------------------------------------------------


def _read_tfds(name: str, text_key_name: str | None, label_key_name: str | None, data_dir):
    """Every split of a TFDS dataset, with its text and label features as given or supervised keys."""
    try:
        import tensorflow_datasets as tfds
    except ImportError:  # pragma: no cover - a declared dependency
        raise UsageError("--tfds needs the tensorflow-datasets package") from None
    try:
        builder = tfds.builder(name, data_dir=str(data_dir) if data_dir else None)
    except Exception as err:  # tfds raises its own DatasetNotFoundError / registry errors
        raise NotFoundError(f"TFDS dataset {name!r} not found: {str(err).splitlines()[0]}") from None
    info = builder.info
    supervised = info.supervised_keys or (None, None)
    features = list(info.features.keys())
    text_name = text_key_name or (supervised[0] if isinstance(supervised[0], str) else None)
    label_name = label_key_name or (supervised[1] if isinstance(supervised[1], str) else None)
    text_name = text_name or _by_name(features, TEXT_COLUMN_NAMES, exclude=label_name)
    label_name = label_name or _by_name(features, LABEL_COLUMN_NAMES, exclude=text_name)
    for given, role in ((text_name, "text"), (label_name, "label")):
        if given is None or given not in features:
            shown = f"{role} feature {given!r} not found" if given else f"cannot tell which feature holds the {role}"
            raise DataError(f"{shown} in TFDS dataset {name!r}; features: {', '.join(features)}")
    try:
        builder.download_and_prepare()
    except Exception as err:
        raise DataError(f"TFDS dataset {name!r} could not be prepared: {str(err).splitlines()[0]}") from None
    label_feature = info.features[label_name]
    names = getattr(label_feature, "names", None)
    rows: list[_Row] = []
    for split_name in info.splits.keys():
        split = {"val": "validation", "valid": "validation", "dev": "validation"}.get(split_name, split_name)
        if split not in ("train", "validation", "test"):
            continue  # e.g. imdb_reviews' "unsupervised": no labels
        for number, example in enumerate(tfds.as_numpy(builder.as_dataset(split=split_name))):
            raw_text = example[text_name]
            text = raw_text.decode("utf-8", errors="replace") if isinstance(raw_text, bytes) else str(raw_text)
            label = example[label_name]
            label = names[int(label)] if names else _label_text(label.decode() if isinstance(label, bytes) else label.item())
            rows.append((text.strip(), label, f"{name}/{split_name}[{number}]", split))
    if not rows:
        raise DataError(f"TFDS dataset {name!r} has no train/validation/test split with labels")
    return rows, "tfds", f"tfds:{name}"


# --- the text side of the training core --------------------------------------------------------

#: Bumped when the way a sentence reaches the module changes (cache keys change with it).
TEXT_PREPROCESSING_VERSION = 1
REPRESENTATIVE_TEXTS = 200


class TextModality:
    """Sentences as module inputs: a :class:`~hubcli.train.modality.Modality`.

    Raw inputs are the sentences themselves (``tf.string [batch]``): the module
    tokenizes, handles unknown words and truncates long texts. With a
    ``preprocessor`` (a resolved :class:`~hubcli.train.module_ref.ModuleRef`), the encoder is a
    :class:`~hubcli.train.layer.PreprocessedEncoder` and the preprocessor's
    digest is part of every cached feature's key.

    Example:
        >>> modality = TextModality()
        >>> modality.preprocessing
        'text-v1-raw'
        >>> [(pos, list(batch)) for pos, batch in modality.iter_inputs([Example("k", 0, "good film")], 8)]
        [([0], ['good film'])]
    """

    task = "text"
    supports_augmentation = False
    representative_limit = REPRESENTATIVE_TEXTS

    def __init__(self, preprocessor=None):
        self.preprocessor = preprocessor
        self.preprocessing = f"text-v{TEXT_PREPROCESSING_VERSION}-" + (
            f"preprocessor-{preprocessor.sha256}" if preprocessor is not None else "raw"
        )
        self.failures: list[tuple[str, str]] = []

    def content_hash(self, example: Example) -> str:
        return text_key(example.source)

    def iter_inputs(self, examples: Sequence[Example], batch_size: int) -> Iterator[tuple[list[int], np.ndarray]]:
        # Nothing to decode: sentences are already in memory.
        for start in range(0, len(examples), batch_size):
            batch = examples[start : start + batch_size]
            yield list(range(start, start + len(batch))), np.array([e.source for e in batch], dtype=object)

    def model_inputs(self, raw):
        return raw

    def augment(self, raw, seeds):
        """Sentences are not augmented (``supports_augmentation`` is False): the identity."""
        return raw

    def keras_input(self):
        import keras

        return keras.Input((), dtype="string", name="text")

    def build_encoder(self, module, trainable: bool):
        if self.preprocessor is None:
            from hubcli.train.layer import HubLayer

            return HubLayer(module.layer_handle, trainable=trainable, settings=module.settings)
        from hubcli.train.layer import PreprocessedEncoder

        return PreprocessedEncoder(self.preprocessor.layer_handle, module.layer_handle, trainable=trainable, settings=module.settings)

    def serving_signatures(self, model, labels: Sequence[str]) -> dict:
        import tensorflow as tf

        from hubcli.train.serving import classify_outputs

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def serving_default(text):
            return classify_outputs(model(text, training=False), labels)

        return {"serving_default": serving_default}

    def run_fields(self) -> dict:
        preprocessor = self.preprocessor.to_json() if self.preprocessor is not None else None
        return {"image_size": None, "preprocessor": preprocessor}

    # -- using a finished run (evaluate, predict) ----------------------------------------------
    @classmethod
    def from_run(cls, run) -> TextModality:
        # The run's model/ carries the preprocessor; evaluation feeds it raw sentences.
        return cls()

    def load_evaluation_data(self, path, **options) -> tuple[list[str], list[Example]]:
        """Every labelled sentence of ``path`` (any DATA form), whatever its split.

        ``options``: ``text_column``, ``label_column``, ``encoding``.
        """
        data = load_text_dataset(path, **options)
        return data.class_names, data.examples()

    def prediction_inputs(self, sentences: Sequence[str]) -> np.ndarray:
        return np.array(list(sentences), dtype=object)


def read_sentences(texts: Sequence[str] | None = None, files: Sequence[str | Path] = (), stdin=None, encoding: str = "utf-8") -> list[str]:
    """Sentences for ``predict``: ``--text`` values, else each line of ``files``, else stdin lines.

    ``--text -`` also reads stdin. Blank lines are dropped; nothing left is a DataError.

    Example:
        >>> read_sentences(["a fine film", "dull"])
        ['a fine film', 'dull']
        >>> read_sentences(["-"], stdin=io.StringIO("one\\n\\ntwo\\n"))
        ['one', 'two']
    """
    texts = list(texts or [])
    if "-" in texts and len(texts) > 1:
        raise UsageError("--text - (read stdin) cannot be combined with other --text values")
    if texts and texts != ["-"]:
        if files:
            raise UsageError("give sentences with --text or in FILES, not both")
        sentences = texts
    elif files and not texts:
        sentences = []
        for file in files:
            path = Path(file)
            if not path.is_file():
                raise NotFoundError(f"{path}: no such file")
            sentences += _decode(path.read_bytes(), path, encoding).split("\n")
    else:
        sentences = (stdin or sys.stdin).read().replace("\r\n", "\n").split("\n")
    sentences = [sentence.strip() for sentence in sentences if sentence.strip()]
    if not sentences:
        raise DataError('no sentences to classify: give --text "...", FILES, or one sentence per line on stdin')
    return sentences


def classify_text(
    data,
    module_handle: str,
    settings,
    config,
    output=None,
    overwrite: bool = False,
    tfds_name: str | None = None,
    text_column: str | None = None,
    label_column: str | None = None,
    encoding: str = "utf-8",
    preprocessor_handle: str | None = None,
    validation_split: float = 0.1,
    test_split: float = 0.1,
    tfds_data_dir=None,
) -> dict:
    """The library behind ``hubcli classify-text``: labelled sentences + text module -> a run directory.

    ``data`` is a path (any form :func:`load_text_dataset` reads), ``None`` with
    ``tfds_name``, or a :class:`TextDataset` already loaded (the CLI loads it
    first, so bad data is reported before TensorFlow starts).

    Example:
        >>> from hubcli import Settings  # doctest: +SKIP
        >>> from hubcli.train.config import TrainConfig  # doctest: +SKIP
        >>> summary = classify_text("imdb_labelled.txt", ".modules/minilm_l6_v2", Settings.load(), TrainConfig())  # doctest: +SKIP
        >>> summary["accuracy"], summary["output"]  # doctest: +SKIP
        (0.8913, 'runs/imdb_labelled')
    """
    if isinstance(data, TextDataset):
        dataset = data
    else:
        dataset = load_text_dataset(
            data, tfds=tfds_name, text_column=text_column, label_column=label_column, encoding=encoding, tfds_data_dir=tfds_data_dir
        )
    split = dataset.split(validation_split, test_split)
    check_text_module(module_handle, preprocessor_handle, settings)
    # Imported only now, so bad data or a wrong module is reported without waiting for TensorFlow.
    from hubcli.train.core import train

    module = ModuleRef.resolve(module_handle, settings)
    preprocessor = ModuleRef.resolve(preprocessor_handle, settings) if preprocessor_handle else None
    if output is None:
        source = Path(dataset.source.removeprefix("tfds:")).resolve()
        output = default_output(source.stem if source.is_file() else source.name)
    data_config = {
        "validation_split": validation_split,
        "test_split": test_split,
        "format": dataset.format,
        "columns": dataset.columns or None,
        "skipped_empty_texts": dataset.skipped_empty,
    }
    return train(
        split, TextModality(preprocessor), module=module, config=config, output=output, overwrite=overwrite, data_config=data_config
    )


def check_text_module(module_handle: str, preprocessor_handle: str | None, settings) -> None:
    """Refuse a module that cannot take sentences, without loading TensorFlow (inspection only).

    With a preprocessor, the preprocessor is what takes the strings.

    Raises:
        InvalidModuleError: the module fed with sentences does not take tf.string.
        NotFoundError: a handle resolves to nothing.
    """
    from hubcli.errors import InvalidModuleError
    from hubcli.hub.pull import resolve_module_path
    from hubcli.savedmodel.inspector import inspect_module

    handle = preprocessor_handle or module_handle
    info = inspect_module(resolve_module_path(handle, settings))
    if info.image_size:
        # An image module given by mistake: the BERT hint below would send the user the wrong way.
        raise InvalidModuleError(f"module {handle} takes images, not strings; use retrain-images")
    if not info.takes_strings:
        hint = "" if preprocessor_handle else "; BERT-style encoders need --preprocessor HANDLE"
        raise InvalidModuleError(f"module {handle} does not take strings{hint}")
