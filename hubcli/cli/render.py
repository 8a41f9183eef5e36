"""Rendering that more than one command shares."""

from __future__ import annotations

from hubcli import console


def print_metrics(title: str, summary: dict) -> None:
    """Per-class precision/recall/F1 table plus the headline numbers (``retrain-images``, ``evaluate``...)."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("Class", style="bold")
    for column in ("Precision", "Recall", "F1", "Support"):
        table.add_column(column, justify="right")
    for name, scores in summary["per_class"].items():
        table.add_row(name, f"{scores['precision']:.3f}", f"{scores['recall']:.3f}", f"{scores['f1']:.3f}", str(scores["support"]))
    table.caption = f"accuracy {summary['accuracy']:.2%} on {summary['examples']} examples, macro F1 {summary['macro_f1']:.3f}"
    console.print_table(table)
