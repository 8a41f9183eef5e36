"""``report.html``: one self-contained page to look at a run or an evaluation.

The page holds the headline metrics, the training curves (when there was
training), the confusion matrix, per-class precision and recall bars, and a
gallery of the examples the model got wrong, worst first: the most confident
wrong answers lead. Images appear as inline JPEG thumbnails, sentences as
text, each with its true and predicted label and probabilities.

Everything is inline (SVG charts, CSS, ``data:`` images); a Content Security
Policy forbids any network request and any script, so the file opens the same
from a mail attachment, an artifact store or a laptop offline. Every label,
file name and sentence is HTML-escaped. The module needs no TensorFlow.

Example:
    >>> page = render_report(title="flowers", task="image", labels=["a", "b"],
    ...                      metrics={"accuracy": 0.5, "confusion_matrix": [[1, 1], [0, 0]]}, mistakes=[])
    >>> page.startswith("<!DOCTYPE html>") and "<script" not in page
    True
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Mistakes shown in the gallery, worst first; the page says how many more there were.
GALLERY_LIMIT = 60
THUMBNAIL_SIZE = 128
_TRAIN_COLOUR, _VALIDATION_COLOUR = "#2563eb", "#ea580c"


@dataclass(frozen=True)
class Mistake:
    """One wrongly classified example, as the gallery shows it."""

    key: str
    true_label: str
    predicted_label: str
    #: Probability the model gave its (wrong) answer, and the true class.
    probability: float
    true_probability: float
    text: str | None = None
    #: The example's encoded image (any format PIL reads); thumbnailed when the page is written.
    image: bytes | None = None


def find_mistakes(keys: Sequence[str], truth: Sequence[int], probabilities: np.ndarray, labels: Sequence[str], *, texts=None, images=None) -> list[Mistake]:
    """The wrong answers among ``probabilities`` (one row per example), most confident first.

    ``texts`` (sentences) or ``images`` (callable: position -> encoded bytes) give what the gallery shows.

    Example:
        >>> found = find_mistakes(["a.jpg", "b.jpg"], [0, 1], np.array([[0.9, 0.1], [0.8, 0.2]]), ["cat", "dog"])
        >>> [(m.key, m.true_label, m.predicted_label, m.probability) for m in found]
        [('b.jpg', 'dog', 'cat', 0.8)]
    """
    probabilities = np.asarray(probabilities)
    predicted = probabilities.argmax(axis=1)
    wrong = [i for i in range(len(truth)) if predicted[i] != truth[i]]
    wrong.sort(key=lambda i: (-probabilities[i, predicted[i]], probabilities[i, truth[i]]))
    # Only the mistakes the gallery shows need their image read.
    shown = set(wrong[:GALLERY_LIMIT])
    return [
        Mistake(
            key=str(keys[i]),
            true_label=labels[truth[i]],
            predicted_label=labels[predicted[i]],
            probability=round(float(probabilities[i, predicted[i]]), 4),
            true_probability=round(float(probabilities[i, truth[i]]), 4),
            text=texts[i] if texts is not None else None,
            image=images(i) if images is not None and i in shown else None,
        )
        for i in wrong
    ]


def example_mistakes(examples: Sequence, truth: Sequence[int], probabilities: np.ndarray, labels: Sequence[str], task: str) -> list[Mistake]:
    """:func:`find_mistakes` for a list of :class:`~hubcli.train.splits.Example`: sentences for text, image bytes otherwise.

    ``truth`` holds each example's class as an index into ``labels`` (the model's order).
    """
    keys = [example.key for example in examples]
    if task == "text":
        return find_mistakes(keys, truth, probabilities, labels, texts=[str(example.source) for example in examples])

    from hubcli.train.image_decode import read_source

    def image(position: int) -> bytes | None:
        try:
            return read_source(examples[position].source)
        except OSError:
            return None  # the gallery shows the file as unreadable

    return find_mistakes(keys, truth, probabilities, labels, images=image)


def write_report(path: str | Path, **page) -> Path:
    """Write :func:`render_report` (same keyword arguments) to ``path`` atomically."""
    from hubcli.fsio import write_text_atomic

    write_text_atomic(Path(path), render_report(**page))
    return Path(path)


def render_report(
    *,
    title: str,
    task: str,
    labels: Sequence[str],
    metrics: Mapping,
    mistakes: Sequence[Mistake],
    history: Mapping | None = None,
    subtitle: str = "",
) -> str:
    """The HTML page (a string) for one run or evaluation."""
    parts = [
        _headline(metrics),
        _curves(history) if history and history.get("loss") else "",
        _confusion(metrics.get("confusion_matrix"), labels),
        _class_bars(metrics.get("per_class") or {}, labels),
        _gallery(mistakes, task),
    ]
    body = "\n".join(part for part in parts if part)
    return _PAGE.format(title=_e(title), subtitle=_e(subtitle), body=body)


# -- sections ------------------------------------------------------------------------------------


def _headline(metrics: Mapping) -> str:
    tiles = [("accuracy", metrics.get("accuracy")), ("macro F1", metrics.get("macro_f1")), ("examples evaluated", metrics.get("examples"))]
    if metrics.get("validation_accuracy") is not None:
        tiles.append(("validation accuracy", metrics["validation_accuracy"]))
    for split, size in (metrics.get("splits") or {}).items():
        tiles.append((f"{split} examples", size))
    cells = "".join(
        f'<div class="tile"><div class="value">{_e(_format(value))}</div><div class="name">{_e(name)}</div></div>'
        for name, value in tiles
        if value is not None
    )
    where = metrics.get("evaluated_on")
    note = f"<p>Figures on the {_e(where)} split.</p>" if where else ""
    return f'<section><h2>Headline</h2><div class="tiles">{cells}</div>{note}</section>'


def _curves(history: Mapping) -> str:
    charts = []
    for metric, title in (("loss", "Loss"), ("accuracy", "Accuracy")):
        series = [(name, history.get(key)) for name, key in (("training", metric), ("validation", f"val_{metric}")) if history.get(key)]
        if series:
            charts.append(_line_chart(title, series, zero_to_one=metric == "accuracy"))
    return f'<section><h2>Training curves</h2><div class="charts">{"".join(charts)}</div></section>' if charts else ""


def _line_chart(title: str, series, zero_to_one: bool, width: int = 420, height: int = 240) -> str:
    left, right, top, bottom = 48, 12, 28, 32
    longest = max(len(values) for _, values in series)
    top_value = 1.0 if zero_to_one else max(max(values) for _, values in series) * 1.05 or 1.0
    x_scale = (width - left - right) / max(longest - 1, 1)
    y_scale = (height - top - bottom) / top_value

    def point(index: int, value: float) -> str:
        return f"{left + index * x_scale:.1f},{height - bottom - min(value, top_value) * y_scale:.1f}"

    def gridline(fraction: float) -> str:
        y = height - bottom - fraction * (height - top - bottom)
        return (
            f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">{fraction * top_value:.2g}</text>'
        )

    grid = "".join(gridline(fraction) for fraction in (0.0, 0.25, 0.5, 0.75, 1.0))
    lines, legend = [], []
    for position, (name, values) in enumerate(series):
        colour = _TRAIN_COLOUR if name == "training" else _VALIDATION_COLOUR
        lines.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(point(i, v) for i, v in enumerate(values))}"/>')
        legend.append(f'<text x="{left + 8 + position * 110}" y="18" class="legend" fill="{colour}">■ {_e(name)}</text>')
    axis = f'<text x="{(left + width - right) / 2:.0f}" y="{height - 6}" class="tick" text-anchor="middle">epoch (1-{longest})</text>'
    return (
        f'<figure><figcaption>{_e(title)}</figcaption><svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img">{grid}{"".join(lines)}{"".join(legend)}{axis}</svg></figure>'
    )


def _confusion(matrix, labels: Sequence[str]) -> str:
    if not matrix:
        return ""
    header = "".join(f'<th class="column">{_e(label)}</th>' for label in labels)
    rows = []
    for position, (label, row) in enumerate(zip(labels, matrix, strict=False)):
        total = sum(row) or 1
        cells = "".join(
            f'<td style="background: rgba(37, 99, 235, {count / total:.3f}); color: {"#fff" if count / total > 0.55 else "#111"}"'
            f'{" class=diagonal" if column == position else ""}>{count}</td>'
            for column, count in enumerate(row)
        )
        rows.append(f"<tr><th>{_e(label)}</th>{cells}</tr>")
    return (
        '<section><h2>Confusion matrix</h2><p>Rows: true class; columns: predicted class; shading: share of the row.</p>'
        f'<table class="confusion"><tr><th></th>{header}</tr>{"".join(rows)}</table></section>'
    )


def _class_bars(per_class: Mapping, labels: Sequence[str]) -> str:
    rows = []
    for label in labels:
        entry = per_class.get(label)
        if not entry:
            continue
        bars = "".join(
            f'<div class="bar"><span class="fill {kind}" style="width: {100 * entry.get(kind, 0.0):.1f}%"></span>'
            f'<span class="figure">{kind} {entry.get(kind, 0.0):.2f}</span></div>'
            for kind in ("precision", "recall")
        )
        rows.append(f'<div class="class-row"><div class="class-name">{_e(label)} <small>({entry.get("support", 0)})</small></div><div>{bars}</div></div>')
    return f'<section><h2>Per class</h2>{"".join(rows)}</section>' if rows else ""


def _gallery(mistakes: Sequence[Mistake], task: str) -> str:
    if not mistakes:
        return "<section><h2>Mistakes</h2><p>No example was misclassified.</p></section>"
    cards = []
    for mistake in mistakes[:GALLERY_LIMIT]:
        if task == "text":
            shown = f'<blockquote>{_e(mistake.text if mistake.text is not None else mistake.key)}</blockquote>'
        else:
            thumbnail = _thumbnail(mistake.image) if mistake.image is not None else None
            shown = f'<img alt="{_e(mistake.key)}" src="data:image/jpeg;base64,{thumbnail}">' if thumbnail else '<div class="unreadable">unreadable</div>'
        cards.append(
            f'<figure class="card">{shown}<figcaption><b>{_e(mistake.predicted_label)}</b> {mistake.probability:.2f}'
            f"<br>true: {_e(mistake.true_label)} {mistake.true_probability:.2f}"
            f'<br><span class="key">{_e(mistake.key)}</span></figcaption></figure>'
        )
    more = f"<p>... and {len(mistakes) - GALLERY_LIMIT} more.</p>" if len(mistakes) > GALLERY_LIMIT else ""
    return f'<section><h2>Mistakes ({len(mistakes)}), most confident first</h2><div class="gallery">{"".join(cards)}</div>{more}</section>'


def _thumbnail(data: bytes) -> str | None:
    from PIL import Image, ImageOps

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.seek(0)
            picture = ImageOps.exif_transpose(image).convert("RGB")
            picture.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
            buffer = io.BytesIO()
            picture.save(buffer, format="JPEG", quality=85)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _format(value) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _e(text) -> str:
    return html.escape(str(text), quote=True)


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #111; background: #fafafa; }}
h1 {{ margin-bottom: 0; }} h2 {{ border-bottom: 1px solid #ddd; padding-bottom: .2rem; }}
.subtitle {{ color: #555; margin-top: .3rem; }}
.tiles {{ display: flex; flex-wrap: wrap; gap: .8rem; }}
.tile {{ background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: .6rem 1rem; min-width: 7rem; }}
.tile .value {{ font-size: 1.6rem; font-weight: 600; }} .tile .name {{ color: #555; font-size: .85rem; }}
.charts {{ display: flex; flex-wrap: wrap; gap: 1rem; }} figure {{ margin: 0; }}
svg {{ background: #fff; border: 1px solid #ddd; }} .grid {{ stroke: #e5e5e5; }} .tick {{ font-size: 10px; fill: #555; }}
.legend {{ font-size: 12px; }}
table.confusion {{ border-collapse: collapse; }} .confusion td, .confusion th {{ border: 1px solid #ccc; padding: .3rem .6rem; text-align: center; }}
.confusion td.diagonal {{ outline: 2px solid #111; outline-offset: -2px; }}
.class-row {{ display: grid; grid-template-columns: 14rem 1fr; gap: .5rem; margin: .3rem 0; align-items: center; }}
.bar {{ position: relative; background: #eee; height: 1.1rem; margin: 2px 0; max-width: 30rem; }}
.fill {{ position: absolute; left: 0; top: 0; bottom: 0; }} .fill.precision {{ background: #60a5fa; }} .fill.recall {{ background: #fb923c; }}
.figure {{ position: relative; font-size: .75rem; padding-left: .3rem; }}
.gallery {{ display: flex; flex-wrap: wrap; gap: .8rem; }}
.card {{ background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: .5rem; width: 10rem; font-size: .8rem; }}
.card img {{ display: block; max-width: {thumb}px; max-height: {thumb}px; margin: 0 auto .3rem; }}
.card blockquote {{ margin: 0 0 .3rem; font-style: italic; }} .key {{ color: #777; word-break: break-all; }}
.unreadable {{ color: #a00; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p class="subtitle">{subtitle}</p>
{body}
</body>
</html>
""".replace("{thumb}", str(THUMBNAIL_SIZE))
