"""What ``hubcli extract`` reads: class-folder trees (local or on any Beam filesystem), CSV manifests, TFDS.

Every source becomes items ``(key, label, source)``: the key is the example's path relative
to the dataset root (as ``retrain-images`` names it), the label its class name ("" when the
source has none), and the source a path or URL to read, or the encoded bytes themselves.
A local tree is scanned here with the same rules as ``retrain-images`` (so extraction covers
exactly the files a run will use); a tree behind a URL (``gs://``...) is listed by a pipeline
worker with the same rules over its paths.

Example:
    >>> label_of(["daisy", "1.jpg"]), label_of(["train", "daisy", "1.jpg"]), label_of([".git", "x.jpg"])
    ('daisy', 'daisy', None)
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from hubcli.errors import DataError, NotFoundError, UsageError
from hubcli.train.splits import SPLIT_FOLDERS

#: One example to extract: (key, class name or "", path/URL or encoded bytes).
Item = tuple[str, str, "str | bytes"]


def is_url(location: str) -> bool:
    """Whether ``location`` names a Beam filesystem other than the local one (``gs://``, ``s3://``...)."""
    return "://" in location and not location.startswith("file://")


def label_of(parts: Sequence[str]) -> str | None:
    """The class of a file at ``parts`` (path components below the root), or None to skip it.

    The rules of ``retrain-images``: an image suffix, no hidden component, the class folder
    first or below a split folder (``train``, ``val``...).
    """
    from hubcli.train.images import IMAGE_SUFFIXES

    if len(parts) < 2 or any(part.startswith(".") for part in parts):
        return None
    if Path(parts[-1]).suffix.lower() not in IMAGE_SUFFIXES:
        return None
    if parts[0].lower() in SPLIT_FOLDERS:
        return parts[1] if len(parts) >= 3 else None
    return parts[0]


def list_folder(root: str) -> list[Item]:
    """Items of a class-folder (or pre-split) tree at a local path, scanned as ``retrain-images`` does."""
    from hubcli.train.images import scan_image_folder

    labels, examples = scan_image_folder(root)
    return [(example.key, labels[example.label], str(example.source)) for example in examples]


def list_remote_folder(root: str) -> Iterator[Item]:
    """Items of a class-folder tree behind a URL, listed through Beam's filesystems (on a worker)."""
    from apache_beam.io.filesystems import FileSystems

    prefix = root.rstrip("/") + "/"
    for match in FileSystems.match([prefix + "**"]):
        for metadata in match.metadata_list:
            relative = metadata.path[len(prefix) :]
            label = label_of(relative.split("/"))
            if label is not None:
                yield relative, label, metadata.path


def read_manifest(path: str) -> list[Item]:
    """Items of a CSV manifest: a ``path`` column (relative to the CSV's folder, absolute, or a URL)
    and optionally ``label`` (one class) or ``labels`` (``;``-separated; the first is kept)."""
    from apache_beam.io.filesystems import FileSystems

    try:
        with FileSystems.open(path) as stream:
            text = io.TextIOWrapper(stream, encoding="utf-8-sig").read()
    except (OSError, ValueError) as err:
        raise NotFoundError(f"cannot read the manifest {path}: {err}") from None
    reader = csv.DictReader(io.StringIO(text))
    columns = reader.fieldnames or []
    if "path" not in columns:
        raise DataError(f"{path}: a manifest needs a 'path' column (it has {', '.join(columns) or 'none'})")
    label_column = "label" if "label" in columns else "labels" if "labels" in columns else None
    folder = path.rsplit("/", 1)[0] if is_url(path) else os.path.dirname(os.path.abspath(path))
    items = []
    for line, row in enumerate(reader, start=2):
        location = (row.get("path") or "").strip()
        if not location:
            raise DataError(f"{path}:{line}: empty path")
        if not (is_url(location) or os.path.isabs(location)):
            location = f"{folder}/{location}"
        label = (row.get(label_column) or "").split(";")[0].strip() if label_column else ""
        items.append(((row.get("path") or "").strip(), label, location))
    if not items:
        raise DataError(f"{path}: the manifest lists no files")
    return items


def read_tfds(name: str) -> list[Item]:
    """Items of a TFDS image dataset (all of its splits), with the encoded bytes in memory."""
    from hubcli.train.images import load_tfds

    data = load_tfds(name)
    return [(example.key, data.labels[example.label], example.source) for example in data.all_examples()]


def describe_data(data: str | None, tfds_name: str | None) -> str:
    """A short name of the data for messages and the default output folder."""
    if (data is None) == (tfds_name is None):
        raise UsageError("give DATA (a folder, URL or manifest .csv) or --tfds NAME (one of them)")
    if tfds_name:
        return tfds_name
    name = data.rstrip("/").rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[0] if name.lower().endswith(".csv") else name
