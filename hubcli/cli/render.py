"""Rendering that more than one command shares."""

from __future__ import annotations

from hubcli import console


def print_metrics(title: str, summary: dict) -> None:
    """Per-class (per-label) precision/recall/F1 table plus the headline numbers (``retrain-images``, ``evaluate``...).

    A training summary's chosen head (``--head auto``) and ``--cv`` estimate are lines of the caption.
    """
    from rich.table import Table

    multi_label = "per_label" in summary
    table = Table(title=title, title_justify="left")
    table.add_column("Label" if multi_label else "Class", style="bold")
    columns = ("Precision", "Recall", "F1", "AP", "Threshold", "Support") if multi_label else ("Precision", "Recall", "F1", "Support")
    for column in columns:
        table.add_column(column, justify="right")
    for name, scores in summary["per_label" if multi_label else "per_class"].items():
        cells = [f"{scores['precision']:.3f}", f"{scores['recall']:.3f}", f"{scores['f1']:.3f}"]
        if multi_label:
            precision = scores["average_precision"]
            cells += ["-" if precision is None else f"{precision:.3f}", f"{scores['threshold']:.3f}"]
        table.add_row(name, *cells, str(scores["support"]))
    if multi_label:
        average = summary["mean_average_precision"]
        lines = [
            f"micro F1 {summary['micro_f1']:.3f}, macro F1 {summary['macro_f1']:.3f}, subset accuracy {summary['subset_accuracy']:.2%}, "
            f"mAP {'-' if average is None else f'{average:.3f}'} on {summary['examples']} examples"
        ]
    else:
        lines = [
            f"accuracy {summary['accuracy']:.2%} on {summary['examples']} examples, macro F1 {summary['macro_f1']:.3f}, "
            f"balanced accuracy {summary['balanced_accuracy']:.2%}"
        ]
    table.caption = "\n".join(lines + _choice_lines(summary))
    console.print_table(table)


def _choice_lines(summary: dict) -> list[str]:
    """How ``--head auto`` chose the head, and the ``--cv`` estimate, when the summary has them."""
    lines = []
    selection, cv = summary.get("selection"), summary.get("cv")
    if selection:
        estimate = selection["cv"]
        lines.append(
            f"head auto: l2 {selection['l2']:.0e}, {estimate['metric'].replace('_', ' ')} {estimate['mean']:.3f} ± {estimate['std']:.3f} "
            f"by {estimate['folds']}-fold cross-validation, refitted on {selection['refit_examples']} examples "
            f"({selection['selection_time_s']:.1f} s)"
        )
    if cv:
        lines.append(f"--cv {cv['folds']}: {cv['metric'].replace('_', ' ')} {cv['mean']:.3f} ± {cv['std']:.3f} on {cv['examples']} labelled examples")
    return lines
