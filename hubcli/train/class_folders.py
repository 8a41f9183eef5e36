"""Datasets laid out as one folder per class, for images and texts alike.

``root/<class>/...`` holds one pool of examples; ``root/{train,val,test}/<class>/...``
(also ``validation``, ``valid``, ``dev``) brings its own splits, and then the classes are
train/'s and every other split must use the same names. Files are found at any depth
below a class folder. Hidden files and folders are ignored, and so are run directories
(``cd flowers && hubcli retrain-images .`` writes ``runs/`` beside the class folders).

Example:
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> for name in ("train/cat/a.txt", "train/dog/b.txt", "test/dog/c.TXT", "train/.cache/d.txt"):
    ...     (root / name).parent.mkdir(parents=True, exist_ok=True)
    ...     _ = (root / name).write_text("x")
    >>> found = scan_class_folders(root, suffixes={".txt"})
    >>> found.class_names, found.pre_split
    (['cat', 'dog'], True)
    >>> [(f.path.relative_to(root).as_posix(), f.class_name, f.split) for f in found.files]
    [('test/dog/c.TXT', 'dog', 'test'), ('train/cat/a.txt', 'cat', 'train'), ('train/dog/b.txt', 'dog', 'train')]
"""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from hubcli.errors import DataError
from hubcli.train.rundir import holds_runs, is_run
from hubcli.train.splits import SPLIT_FOLDERS


@dataclass(frozen=True)
class ClassFile:
    """One file of a class folder, and the split its folder names (None in an unsplit dataset)."""

    path: Path
    class_name: str
    split: str | None


@dataclass(frozen=True)
class ClassFolders:
    """What a class-folder dataset holds: class names (sorted) and files (sorted by path)."""

    class_names: list[str]
    files: list[ClassFile]
    pre_split: bool


def scan_class_folders(root: str | os.PathLike, *, suffixes: Collection[str], ignored_folders: Collection[str] = ()) -> ClassFolders:
    """The class folders under the directory ``root`` and their files whose suffix is in ``suffixes``.

    ``suffixes`` are lower-case (``".jpg"``) and match in any case; folders named in
    ``ignored_folders`` (lower-case, e.g. aclImdb's ``unsup``) are not classes.

    Raises:
        DataError: split folders without a train/ folder, or a split with a class train/ lacks.
    """
    root = Path(root)
    ignored = {name.lower() for name in ignored_folders}
    split_folders = {SPLIT_FOLDERS[d.name.lower()]: d for d in _subfolders(root, ignored) if d.name.lower() in SPLIT_FOLDERS}
    if not split_folders:
        class_names = [d.name for d in _subfolders(root, ignored)]
        files = [file for folder in _subfolders(root, ignored) for file in _files(root, folder, suffixes, None)]
    else:
        if "train" not in split_folders:
            raise DataError(f"{root} has {', '.join(d.name for d in split_folders.values())}/ but no train/ folder")
        class_names = [d.name for d in _subfolders(split_folders["train"], ignored)]
        files = []
        for split, split_folder in split_folders.items():
            for folder in _subfolders(split_folder, ignored):
                if folder.name not in class_names:
                    raise DataError(f"{folder.relative_to(root)}: class {folder.name!r} is not in train/")
                files += _files(root, folder, suffixes, split)
    files.sort(key=lambda file: file.path.relative_to(root).as_posix())
    return ClassFolders(class_names, files, pre_split=bool(split_folders))


def _subfolders(folder: Path, ignored: set[str]) -> list[Path]:
    """Visible folders directly in ``folder`` that are neither ignored nor runs, sorted by name."""
    return sorted(
        d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".") and d.name.lower() not in ignored and not holds_runs(d)
    )


def _files(root: Path, class_folder: Path, suffixes: Collection[str], split: str | None) -> list[ClassFile]:
    found = []
    for dirpath, dirnames, filenames in os.walk(class_folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and not is_run(Path(dirpath) / d)]
        found.extend(
            ClassFile(Path(dirpath) / name, class_folder.name, split)
            for name in filenames
            if not name.startswith(".") and Path(name).suffix.lower() in suffixes
        )
    return found
