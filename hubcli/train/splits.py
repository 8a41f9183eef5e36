"""Labelled examples and their stable train/validation/test split.

An example's split depends only on a hash of its key (an image's path
relative to the dataset root, a text's file and line), never on the other
examples. Adding photos therefore never moves an old photo from training to
test, so accuracy stays comparable across runs of a growing dataset.

Example:
    >>> split_of("daisy/001.jpg", validation_split=0.1, test_split=0.1)
    'train'
    >>> data = LabeledData.from_examples(["cat", "dog"], [Example(f"{i}.txt", i % 2, "x") for i in range(40)],
    ...                                  validation_split=0.2, test_split=0.0)
    >>> data.sizes()
    {'train': 31, 'validation': 9, 'test': 0}
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hubcli.errors import DataError, UsageError

SPLITS = ("train", "validation", "test")

#: Folder names of a dataset that arrives split (images or texts), by the split they hold.
SPLIT_FOLDERS = {"train": "train", "val": "validation", "valid": "validation", "validation": "validation", "dev": "validation", "test": "test"}

#: Each class needs this many usable examples; fewer cannot be both learned and validated.
MIN_EXAMPLES_PER_CLASS = 4


@dataclass(frozen=True)
class Example:
    """One labelled example.

    ``key`` identifies it stably (relative path, ``file.tsv:12``) for splitting and
    messages; ``label`` is a class index, or for multi-label data a sorted tuple of label
    indices (possibly empty); ``source`` is modality-specific (a Path or encoded bytes for
    images, a str for text); ``split`` is set when the dataset brings its own split.
    """

    key: str
    label: int | tuple[int, ...]
    source: Any
    split: str | None = None


def _unit_interval(key: str) -> float:
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_of(key: str, validation_split: float, test_split: float) -> str:
    """The split of one key: test below ``test_split``, validation next, train above."""
    position = _unit_interval(key)
    if position < test_split:
        return "test"
    if position < test_split + validation_split:
        return "validation"
    return "train"


def check_fractions(validation_split: float, test_split: float) -> None:
    if not (0.0 <= validation_split < 1.0 and 0.0 <= test_split < 1.0 and validation_split + test_split < 1.0):
        raise UsageError(
            f"--validation-split ({validation_split}) and --test-split ({test_split}) must be in [0, 1) "
            "and leave some data for training"
        )


@dataclass
class LabeledData:
    """Class names plus examples already assigned to train/validation/test."""

    labels: list[str]
    train: list[Example] = field(default_factory=list)
    validation: list[Example] = field(default_factory=list)
    test: list[Example] = field(default_factory=list)
    #: Where the data came from, for run.json ("flowers/", "tfds:tf_flowers").
    origin: str = ""

    @classmethod
    def from_examples(
        cls,
        labels: Sequence[str],
        examples: Sequence[Example],
        validation_split: float = 0.1,
        test_split: float = 0.1,
        origin: str = "",
    ) -> LabeledData:
        """Assign each example to its own split, or to a hashed one, then check the classes.

        Validation and test examples a dataset brings keep their split. Everything
        else (unsplit examples, and a dataset's own training examples) is hashed into
        whichever of validation and test the dataset does not bring itself.
        """
        check_fractions(validation_split, test_split)
        has_own = {example.split for example in examples if example.split}
        hashed_validation = 0.0 if "validation" in has_own else validation_split
        hashed_test = 0.0 if "test" in has_own else test_split
        data = cls(labels=list(labels), origin=origin)
        for example in examples:
            split = example.split
            if split in (None, "train"):
                split = split_of(example.key, hashed_validation, hashed_test)
            getattr(data, split).append(example)
        data.check_classes()
        return data

    def sizes(self) -> dict[str, int]:
        return {name: len(getattr(self, name)) for name in SPLITS}

    def all_examples(self) -> list[Example]:
        return [*self.train, *self.validation, *self.test]

    @property
    def multi_label(self) -> bool:
        """Whether examples carry label tuples (a multi-label manifest) rather than one class."""
        return any(isinstance(example.label, tuple) for example in self.all_examples())

    def class_counts(self, splits: Sequence[str] = SPLITS) -> dict[str, int]:
        """Examples per class (per label, for multi-label data) in ``splits``, every class listed."""
        counts = _label_counts(example for name in splits for example in getattr(self, name))
        return {name: counts.get(index, 0) for index, name in enumerate(self.labels)}

    def check_classes(self) -> None:
        """One clear DataError for a dataset that cannot train a classifier."""
        noun = "label" if self.multi_label else "class"
        if len(self.labels) < (1 if self.multi_label else 2):
            found = f"only one class ({self.labels[0]!r})" if self.labels else "no classes"
            raise DataError(f"a classifier needs at least 2 classes; found {found}")
        counts = self.class_counts()
        too_few = [f"{name!r} ({count})" for name, count in counts.items() if count < MIN_EXAMPLES_PER_CLASS]
        if too_few:
            raise DataError(
                f"each {noun} needs at least {MIN_EXAMPLES_PER_CLASS} usable examples; too few in: {', '.join(too_few)}"
            )
        missing = [repr(name) for name, count in self.class_counts(("train",)).items() if not count]
        if missing:
            raise DataError(f"no training examples for {noun} {', '.join(missing)}; lower --validation-split/--test-split")


def _label_counts(examples) -> Counter:
    """How many examples carry each label index (an int label, or each index of a label tuple)."""
    counts: Counter = Counter()
    for example in examples:
        counts.update(example.label if isinstance(example.label, tuple) else (example.label,))
    return counts
