"""``MODEL_CARD.md``: what a run (or an export of it) is, how it was made, how well it does, and where not to use it.

A card is written into every run directory and beside every export. It reads
only the run's own records (``run.json``, ``metrics.json``) and the module's
label (``hubcli_module.json`` at the module root, when the module has one), so
it is plain Markdown that a code review or a model registry can show as is:

- the module: handle, sha256, provenance and licence;
- the data: where it came from, class counts, split sizes, skipped files;
- metrics: overall, per class, and the confusion matrix;
- how it was trained;
- intended use, limitations, and the considerations of reusing a module:
  modules are runnable code from their publisher, the biases of their
  pretraining data carry over, and the per-class figures show where the model
  is weak;
- for an export: the format, file, size and its agreement with the run.

Example:
    >>> card = model_card(run_meta, metrics, module_meta=None)  # doctest: +SKIP
    >>> card.splitlines()[0]  # doctest: +SKIP
    '# Model card: flowers'
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

#: Below this many evaluation examples per class, the card says the per-class figures are rough.
_FEW_PER_CLASS = 30
_SHOWN_SKIPS = 10


def model_card(run_meta: Mapping, metrics: Mapping, *, module_meta: Mapping | None = None, export: Mapping | None = None, name: str | None = None) -> str:
    """The Markdown card of a run (``run.json`` and ``metrics.json`` contents), and of one export's ``--json`` result.

    Example:
        >>> run = {"task": "image", "labels": ["cat", "dog"], "module": {"handle": "mobilenet_v2", "sha256": "ab" * 32},
        ...        "config": {"epochs": 3, "data": "pets/"}, "created": "2026-01-01T00:00:00+00:00"}
        >>> metrics = {"accuracy": 0.9, "macro_f1": 0.89, "examples": 10, "evaluated_on": "test",
        ...            "splits": {"train": 80, "validation": 10, "test": 10}, "confusion_matrix": [[5, 0], [1, 4]],
        ...            "per_class": {"cat": {"precision": 0.83, "recall": 1.0, "f1": 0.91, "support": 5},
        ...                          "dog": {"precision": 1.0, "recall": 0.8, "f1": 0.89, "support": 5}}}
        >>> card = model_card(run, metrics, name="pets")
        >>> card.splitlines()[0], "| dog | 1.000 | 0.800 | 0.890 | 5 |" in card
        ('# Model card: pets', True)
    """
    labels = list(run_meta.get("labels") or metrics.get("labels") or [])
    sections = [
        _summary(run_meta, labels, name),
        _module_section(run_meta, module_meta),
        _data_section(run_meta, metrics, labels),
        _metrics_section(metrics, labels),
        _training_section(run_meta, metrics),
        _use_section(run_meta, metrics, module_meta, labels),
    ]
    if export:
        sections.append(_export_section(export))
    return "\n\n".join(section.strip() for section in sections) + "\n"


def write_model_card(run_dir: str | Path, target: str | Path, *, export: Mapping | None = None, name: str | None = None) -> Path:
    """Write the card of the run in ``run_dir`` (and of ``export``, an export's ``--json`` result) to ``target``.

    ``name`` titles the card (default: the run directory's name).
    """
    from hubcli.fsio import write_text_atomic
    from hubcli.train.rundir import METRICS_FILE, RUN_FILE

    run_dir, target = Path(run_dir), Path(target)
    run_meta = json.loads((run_dir / RUN_FILE).read_text(encoding="utf-8"))
    metrics = json.loads((run_dir / METRICS_FILE).read_text(encoding="utf-8"))
    card = model_card(run_meta, metrics, module_meta=module_metadata(run_meta), export=export, name=name or run_dir.resolve().name)
    write_text_atomic(target, card)
    return target


def module_metadata(run_meta: Mapping) -> dict | None:
    """The ``hubcli_module.json`` label of the run's module, if the module directory still has one."""
    path = (run_meta.get("module") or {}).get("path")
    if not path:
        return None
    try:
        value = json.loads((Path(path) / "hubcli_module.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def module_licence(module_meta: Mapping | None) -> str | None:
    """The module's SPDX licence from its label, or None when it states none."""
    licence = (module_meta or {}).get("licence")
    if isinstance(licence, Mapping):
        licence = licence.get("spdx")
    return str(licence) if licence else None


# -- sections --------------------------------------------------------------------------------


def _summary(run_meta: Mapping, labels: Sequence[str], name: str | None) -> str:
    task = run_meta.get("task", "image")
    handle = (run_meta.get("module") or {}).get("handle", "an unknown module")
    kind = "sentences" if task == "text" else "images"
    title = name or "classifier"
    lines = [
        f"# Model card: {title}",
        "",
        f"Classifies {kind} into {len(labels)} classes ({_listing(labels)}). A linear softmax head trained by hubcli "
        f"on the outputs of the module `{handle}`"
        + (", which was then fine-tuned with it." if (run_meta.get("config") or {}).get("fine_tune") else ", which stayed frozen."),
    ]
    if run_meta.get("created"):
        lines.append(f"Trained {run_meta['created']}.")
    return "\n".join(lines)


def _module_section(run_meta: Mapping, module_meta: Mapping | None) -> str:
    module = run_meta.get("module") or {}
    rows = [("handle", f"`{module.get('handle', '?')}`"), ("sha256 (content)", f"`{module.get('sha256', '?')}`")]
    preprocessor = run_meta.get("preprocessor")
    if preprocessor:
        rows.append(("preprocessor", f"`{preprocessor.get('handle')}` (sha256 `{preprocessor.get('sha256')}`)"))
    meta = module_meta or {}
    if meta.get("description"):
        rows.append(("description", meta["description"]))
    rows.append(("licence", module_licence(meta) or "not stated by the module: check its publisher's terms before use"))
    licence = meta.get("licence")
    if isinstance(licence, Mapping) and licence.get("weights"):
        rows.append(("weights licence", licence["weights"]))
    provenance = meta.get("provenance") or {}
    for key in sorted(provenance):
        rows.append((f"provenance: {key.replace('_', ' ')}", f"`{provenance[key]}`" if "sha256" in key else str(provenance[key])))
    if not provenance:
        rows.append(("provenance", "not recorded by the module"))
    return "## Module\n\n" + _table(("", ""), rows)


def _data_section(run_meta: Mapping, metrics: Mapping, labels: Sequence[str]) -> str:
    config = run_meta.get("config") or {}
    splits = metrics.get("splits") or {}
    lines = ["## Data", "", f"Source: `{config.get('data', 'unknown')}`."]
    counts = metrics.get("class_counts")
    names = [name for name in ("train", "validation", "test") if name in splits]
    if counts:
        rows = [(label, *(counts.get(split, {}).get(label, 0) for split in names)) for label in labels]
        rows.append(("**total**", *(splits[split] for split in names)))
        lines += ["", _table(("class", *names), rows)]
    else:
        lines += ["", _table(tuple(names), [tuple(splits[split] for split in names)])]
    validation, test = config.get("validation_split"), config.get("test_split")
    if validation is not None and test is not None:
        lines += ["", f"Splits come from a stable hash of each example's name ({validation:.0%} validation, {test:.0%} test)."]
    skipped = metrics.get("skipped") or []
    if skipped:
        shown = "\n".join(f"- `{item.get('key')}`: {item.get('reason')}" for item in skipped[:_SHOWN_SKIPS])
        more = f"\n- ... and {len(skipped) - _SHOWN_SKIPS} more" if len(skipped) > _SHOWN_SKIPS else ""
        lines += ["", f"Skipped {len(skipped)} unreadable example(s):", "", shown + more]
    else:
        lines += ["", "No examples were skipped."]
    return "\n".join(lines)


def _metrics_section(metrics: Mapping, labels: Sequence[str]) -> str:
    split = metrics.get("evaluated_on", "test")
    lines = [
        "## Metrics",
        "",
        f"On the {split} split ({metrics.get('examples', '?')} examples): accuracy **{_number(metrics.get('accuracy'))}**, "
        f"macro F1 {_number(metrics.get('macro_f1'))}"
        + (f", loss {_number(metrics.get('loss'))}" if metrics.get("loss") is not None else "")
        + (f"; validation accuracy {_number(metrics.get('validation_accuracy'))}" if metrics.get("validation_accuracy") is not None else "")
        + ".",
    ]
    if split == "train":
        lines += ["", "**These figures are on the training data** (there was no validation or test split) and say little."]
    per_class = metrics.get("per_class") or {}
    if per_class:
        rows = [
            (label, *(_number(per_class[label].get(key)) for key in ("precision", "recall", "f1")), per_class[label].get("support", 0))
            for label in labels
            if label in per_class
        ]
        lines += ["", _table(("class", "precision", "recall", "F1", "support"), rows)]
    matrix = metrics.get("confusion_matrix")
    if matrix:
        rows = [(f"**{label}**", *row) for label, row in zip(labels, matrix, strict=False)]
        lines += ["", "Confusion matrix (rows: true class, columns: predicted class):", "", _table(("", *labels), rows)]
    return "\n".join(lines)


def _training_section(run_meta: Mapping, metrics: Mapping) -> str:
    config = run_meta.get("config") or {}
    stopping = f"early stopping, patience {config.get('patience', '?')}, best weights kept"
    fine_tune_rate = config.get("fine_tune_learning_rate") or "learning rate / 10"
    rows = [
        ("epochs run", f"{metrics.get('epochs_run', '?')} of at most {config.get('epochs', '?')} ({stopping})"),
        ("optimizer", f"{config.get('optimizer', '?')}, learning rate {config.get('learning_rate', '?')}, batch size {config.get('batch_size', '?')}"),
        ("regularisation", f"dropout {config.get('dropout', '?')}, L2 {config.get('l2', '?')}, label smoothing {config.get('label_smoothing', '?')}"),
        ("augmentation", f"{config.get('augment_copies', 0)} augmented copies per training image" if config.get("augment_copies") else "none"),
        ("fine-tuning", f"yes, {config.get('fine_tune_epochs')} epochs at learning rate {fine_tune_rate}" if config.get("fine_tune") else "no (module frozen)"),
        ("seed", config.get("seed", "?")),
    ]
    if metrics.get("training_time_s") is not None:
        rows.append(("training time", f"{metrics['training_time_s']} s"))
    return "## Training\n\n" + _table(("", ""), rows)


def _use_section(run_meta: Mapping, metrics: Mapping, module_meta: Mapping | None, labels: Sequence[str]) -> str:
    task = run_meta.get("task", "image")
    handle = (run_meta.get("module") or {}).get("handle", "the module")
    sha = (run_meta.get("module") or {}).get("sha256", "?")
    kind = "sentences" if task == "text" else "photos"
    source = ((module_meta or {}).get("provenance") or {}).get("source_model")
    lines = [
        "## Intended use",
        "",
        f"Sorting {kind} like those it was trained on into the {len(labels)} classes above. It always answers with one of "
        "them: anything else it is shown still gets one of these labels, so check the probability and keep a person in "
        "the loop where a wrong label matters. Not for decisions about people.",
        "",
        "## Limitations and considerations",
        "",
        f"- **The module is code from its publisher.** This model runs `{handle}` (sha256 `{sha}`) as part of its graph; "
        "a module can read files or call out like any program. Trust its publisher, pin what you reviewed (`hubcli pull --update-lock`, then `--locked`), "
        "and review `hubcli inspect` (risky ops) before deploying.",
        "- **The module's pretraining data shapes this model.** Its features were learnt from data hubcli has not seen"
        + (f" (the module is a conversion of `{source}`)" if source else "")
        + "; whatever that data over- or under-represents, and its biases, carry over into this classifier.",
        f"- **The training data bounds it.** It has seen {metrics.get('splits', {}).get('train', '?')} training examples; "
        f"inputs unlike them ({'other domains, styles or languages' if task == 'text' else 'other cameras, lighting or subjects'}) "
        "may be classified worse than the figures say.",
    ]
    weak = _weakest(metrics.get("per_class") or {}, labels)
    if weak:
        lines.append(f"- **Per-class figures show where it is weak:** {weak}.")
    support = [entry.get("support", 0) for entry in (metrics.get("per_class") or {}).values()]
    if support and min(support) < _FEW_PER_CLASS:
        lines.append(
            f"- **The evaluation is small:** as few as {min(support)} example(s) per class, so each per-class figure is rough; "
            "evaluate on more labelled data (`hubcli evaluate`) before relying on it."
        )
    return "\n".join(lines)


def _export_section(export: Mapping) -> str:
    agreement = export.get("agreement") or {}
    rows = [
        ("format", export.get("format")),
        ("file", f"`{Path(str(export.get('path'))).name}`"),
        ("size", f"{export.get('size_bytes', 0):,} bytes"),
        ("quantisation", export.get("quantize") or "none"),
        (
            "agreement with the run",
            f"{_number(agreement.get('top1_agreement'))} top-1 on {agreement.get('samples', '?')} samples, "
            f"largest probability difference {agreement.get('max_abs_diff', '?')}",
        ),
    ]
    if export.get("labels_path"):
        rows.append(("labels", f"`{Path(str(export['labels_path'])).name}` beside it"))
    return "## This export\n\n" + _table(("", ""), rows)


# -- helpers ---------------------------------------------------------------------------------


def _weakest(per_class: Mapping, labels: Sequence[str]) -> str:
    """The classes with the lowest recall, with their figures; empty when every class is perfect."""
    scored = sorted((per_class[label].get("recall", 0.0), label) for label in labels if label in per_class)
    weak = [(recall, label) for recall, label in scored if recall < 1.0][:3]
    if not weak:
        return ""
    return "; ".join(f"`{label}` is found {recall:.0%} of the time (precision {per_class[label].get('precision', 0.0):.0%})" for recall, label in weak)


def _listing(labels: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(labels[:limit])
    return shown + (f" and {len(labels) - limit} more" if len(labels) > limit else "")


def _number(value) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value) if value is not None else "?"


def _table(header: Sequence, rows: Sequence[Sequence]) -> str:
    def cell(value) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)
