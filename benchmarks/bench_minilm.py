"""Embedding throughput of the MiniLM text module (sentences per second), tokenization included.

``--module .modules/universal_sentence_encoder_multilingual`` measures the
universal sentence encoder the same way (any module taking a batch of strings).

Loads the module built by ``make modules`` (or builds it), warms it up, then
embeds real sentences in batches and reports the median over repeats. The
sentences are the UCI IMDB ones when ``../shared`` has them, else the
agreement test's reference sentences.

Example:
    .venv/bin/python -m benchmarks.bench_minilm --batch-size 32
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMDB = REPO.parent / "shared" / "datasets" / "sentiment" / "imdb_labelled.txt"
REFERENCE = REPO / "tests" / "data" / "reference" / "minilm_reference.npz"


def load_sentences(limit: int) -> tuple[list[str], str]:
    import numpy as np

    if IMDB.is_file():
        lines = IMDB.read_text(encoding="utf-8").splitlines()
        return [line.split("\t")[0] for line in lines if line.strip()][:limit], str(IMDB)
    with np.load(REFERENCE) as data:
        return [str(s) for s in data["sentences"]], str(REFERENCE)


def measure(module_dir: Path, batch_size: int, sentences: list[str], repeats: int) -> dict:
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  registers the tokenizer ops the module's graph uses

    module = tf.saved_model.load(str(module_dir))
    batches = [tf.constant(sentences[i : i + batch_size]) for i in range(0, len(sentences), batch_size)]
    module(batches[0]).numpy()  # warm-up: first call builds kernels and the vocabulary table
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        for batch in batches:
            module(batch).numpy()
        rates.append(len(sentences) / (time.perf_counter() - started))
    return {
        "batch_size": batch_size,
        "sentences": len(sentences),
        "repeats": repeats,
        "sentences_per_second_median": round(statistics.median(rates), 1),
        "sentences_per_second_all": [round(r, 1) for r in rates],
        "cpu_count": os.cpu_count(),
        "tensorflow": tf.__version__,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", type=Path, default=REPO / ".modules" / "minilm_l6_v2")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--sentences", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if not (args.module / "saved_model.pb").is_file():
        from recipes import minilm

        minilm.build(args.module)
    sentences, source = load_sentences(args.sentences)
    result = measure(args.module, args.batch_size, sentences, args.repeats)
    print(json.dumps({"benchmark": "minilm_throughput", "source": source, **result}, indent=2))


if __name__ == "__main__":
    main()
