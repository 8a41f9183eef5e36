"""Small labelled text corpora for the classify-text tests, written in every DATA form.

:func:`corpus` makes sentences that are learnable but not trivially so: each
class has its own vocabulary, and every sentence is padded with filler words
shared by all classes. :func:`build_tfds_dataset` prepares a real TFDS dataset
on disk (in a subprocess: TFDS cannot locate builder code defined inside a
test package here).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap
from pathlib import Path

CLASS_WORDS = {
    "neg": ["awful", "boring", "dull", "terrible", "waste", "worst", "bland", "poor"],
    "pos": ["great", "wonderful", "superb", "loved", "brilliant", "moving", "best", "fun"],
    "mixed": ["uneven", "partly", "somewhat", "average", "okay", "middling", "fine", "decent"],
}
FILLER = ["the", "movie", "film", "was", "a", "and", "plot", "actors", "story", "it", "this", "really"]


def corpus(per_class: int = 24, classes=("neg", "pos"), seed: int = 0) -> list[tuple[str, str]]:
    """``[(sentence, class name), ...]``, shuffled, distinct sentences."""
    rng = random.Random(seed)
    rows, seen = [], set()
    for name in classes:
        made = 0
        while made < per_class:
            words = rng.sample(CLASS_WORDS[name], 3) + rng.sample(FILLER, 3)
            rng.shuffle(words)
            sentence = " ".join(words)
            if sentence not in seen:
                seen.add(sentence)
                rows.append((sentence, name))
                made += 1
    rng.shuffle(rows)
    return rows


def write_tab_lines(path: Path, rows) -> Path:
    """Headerless ``sentence<TAB>label`` lines, labels as 0/1/2 indices like the UCI files."""
    names = sorted({label for _, label in rows})
    path.write_text("".join(f"{text}\t{names.index(label)}\n" for text, label in rows), encoding="utf-8")
    return path


def write_csv(path: Path, rows) -> Path:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "review", "sentiment"])
        writer.writerows((i, text, label) for i, (text, label) in enumerate(rows))
    return path


def write_tsv(path: Path, rows) -> Path:
    """A TSV with a header; cells verbatim (no quoting), label column first."""
    path.write_text("sentiment\tsentence\n" + "".join(f"{label}\t{text}\n" for text, label in rows), encoding="utf-8")
    return path


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps({"text": text, "label": label}) + "\n" for text, label in rows), encoding="utf-8")
    return path


def write_class_folders(root: Path, rows, split_test: bool = False) -> Path:
    """One folder per class; with ``split_test``, aclImdb-style train/ and test/ (+ an unsup/)."""
    for i, (text, label) in enumerate(rows):
        split = ("test" if i % 4 == 0 else "train") if split_test else ""
        folder = root / split / label
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i}.txt").write_text(text, encoding="utf-8")
    if split_test:
        (root / "train" / "unsup").mkdir(parents=True, exist_ok=True)
        (root / "train" / "unsup" / "0.txt").write_text("no label for this one", encoding="utf-8")
    return root


_TFDS_BUILDER = textwrap.dedent(
    '''
    import json, sys
    import tensorflow_datasets as tfds

    rows = json.loads(open(sys.argv[2]).read())
    names = sorted({label for _, label in rows})

    class CLASS_NAME(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            features = tfds.features.FeaturesDict(
                {"text": tfds.features.Text(), "label": tfds.features.ClassLabel(names=names)}
            )
            return tfds.core.DatasetInfo(builder=self, features=features, supervised_keys=("text", "label"))

        def _split_generators(self, dl_manager):
            cut = len(rows) * 3 // 4
            return {
                "train": self._generate_examples(rows[:cut]),
                "test": self._generate_examples(rows[cut:]),
                "unsupervised": self._generate_examples([("no label here", None)]),
            }

        def _generate_examples(self, part):
            for i, (text, label) in enumerate(part):
                yield i, {"text": text, "label": names.index(label) if label else -1}

    CLASS_NAME(data_dir=sys.argv[1]).download_and_prepare()
    '''
)


def build_tfds_dataset(data_dir: Path, rows, name: str = "tiny_reviews_for_hubcli") -> str:
    """Prepare a TFDS dataset ``name`` (train 3/4, test 1/4, plus an unlabelled split) in ``data_dir``."""
    class_name = "".join(part.title() for part in name.split("_"))
    work = Path(data_dir).parent
    (work / "rows.json").write_text(json.dumps(rows), encoding="utf-8")
    script = work / "build_tfds.py"
    script.write_text(_TFDS_BUILDER.replace("CLASS_NAME", class_name), encoding="utf-8")
    subprocess.run(
        [sys.executable, str(script), str(data_dir), str(work / "rows.json")],
        check=True, capture_output=True, text=True,
    )
    return name


def multilabel_corpus(count: int = 60, seed: int = 0) -> list[tuple[str, list[str]]]:
    """``[(sentence, labels), ...]``: each of the CLASS_WORDS topics is in a sentence with
    probability 0.45 and then brings two of its words; filler pads every sentence."""
    rng = random.Random(seed)
    rows, seen = [], set()
    while len(rows) < count:
        labels = sorted(name for name in CLASS_WORDS if rng.random() < 0.45)
        words = [word for name in labels for word in rng.sample(CLASS_WORDS[name], 2)] + rng.sample(FILLER, 3)
        rng.shuffle(words)
        sentence = " ".join(words)
        if sentence not in seen:
            seen.add(sentence)
            rows.append((sentence, labels))
    return rows


def write_jsonl_manifest(path: Path, rows) -> Path:
    """A multi-label JSONL manifest: ``{"text": ..., "labels": [...]}`` per line."""
    path.write_text("".join(json.dumps({"text": text, "labels": labels}) + "\n" for text, labels in rows), encoding="utf-8")
    return path
