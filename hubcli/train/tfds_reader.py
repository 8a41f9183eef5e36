"""Labelled records of a TFDS dataset by name, with the dataset's own splits, for images and texts.

Splits named like split folders (``train``, ``validation``/``val``/``valid``/``dev``,
``test``) are read; others (imdb_reviews' ``unsupervised``) hold no labels and are left
out. Which features hold the input and the label is the caller's choice, made from the
dataset's info before anything is downloaded or prepared.

Example:
    >>> pick = lambda info: ("text", "label")  # doctest: +SKIP
    >>> dataset = read_tfds("imdb_reviews", choose_features=pick)  # doctest: +SKIP
    >>> dataset.label_names, dataset.records[0].split  # doctest: +SKIP
    (['neg', 'pos'], 'train')
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hubcli.errors import DataError, NotFoundError
from hubcli.train.splits import SPLIT_FOLDERS


@dataclass(frozen=True)
class TfdsRecord:
    """One example: its split (train/validation/test), TFDS's name for that split, and its values."""

    split: str
    split_name: str
    position: int
    #: The input feature as ``tfds.as_numpy`` gives it (encoded image bytes with ``skip_decoding``, text bytes).
    value: Any
    label: Any


@dataclass(frozen=True)
class TfdsDataset:
    """The labelled records, and the label feature's class names when it is a ClassLabel."""

    label_names: list[str] | None
    records: list[TfdsRecord]


def read_tfds(
    name: str,
    *,
    choose_features: Callable[[Any], tuple[str, str]],
    data_dir: str | os.PathLike | None = None,
    skip_decoding: bool = False,
) -> TfdsDataset:
    """Prepare the TFDS dataset ``name`` (in ``data_dir``) and read every labelled split.

    ``choose_features(info)`` returns the names of the input and label features (raising
    :class:`DataError` when the dataset has no suitable ones). ``skip_decoding`` keeps the
    input encoded (images then decode, hash and cache like files).

    Raises:
        NotFoundError: no TFDS dataset of that name.
        DataError: it cannot be prepared, or has no labelled split.
    """
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=str(data_dir) if data_dir else None)
    except Exception as err:  # noqa: BLE001 - tfds raises its own DatasetNotFoundError / registry errors
        raise NotFoundError(f"TFDS dataset {name!r} not found: {str(err).splitlines()[0]}") from None
    info = builder.info
    input_key, label_key = choose_features(info)
    try:
        builder.download_and_prepare()
    except Exception as err:  # noqa: BLE001 - download and preparation fail in many unrelated types
        raise DataError(f"TFDS dataset {name!r} could not be prepared: {str(err).splitlines()[0]}") from None
    decoders = {input_key: tfds.decode.SkipDecoding()} if skip_decoding else None
    records = []
    for split_name in info.splits:
        split = SPLIT_FOLDERS.get(split_name.lower())
        if split is None:
            continue
        dataset = builder.as_dataset(split=split_name, decoders=decoders)
        for position, example in enumerate(tfds.as_numpy(dataset)):
            records.append(TfdsRecord(split, split_name, position, example[input_key], example[label_key]))
    if not records:
        raise DataError(f"TFDS dataset {name!r} has no train/validation/test split with labels")
    names = getattr(info.features[label_key], "names", None)
    return TfdsDataset(list(names) if names else None, records)
