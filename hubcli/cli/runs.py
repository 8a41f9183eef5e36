"""``hubcli evaluate`` and ``hubcli predict``: use a trained run on new data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from hubcli import console
from hubcli.cli.options import JsonOpt, QuietOpt, start_output
from hubcli.cli.render import print_metrics


def evaluate_command(
    model: Annotated[Path, typer.Argument(help="A run directory (or its model/).", show_default=False)],
    data: Annotated[
        Path, typer.Argument(help="Labelled data in the run's kind: class folders for images; a manifest for a multi-label run.", show_default=False)
    ],
    *,
    text_column: Annotated[Optional[str], typer.Option("--text-column", help="Text runs: CSV/TSV column or JSONL key of the text.", show_default=False)] = None,
    label_column: Annotated[
        Optional[str], typer.Option("--label-column", help="Text runs: CSV/TSV column or JSONL key of the label.", show_default=False)
    ] = None,
    encoding: Annotated[Optional[str], typer.Option("--encoding", help="Text runs: character encoding of the data files.", show_default=False)] = None,
    report: Annotated[
        Optional[Path],
        typer.Option("--report", help="Also write DIR/report.html: the metrics and the examples it got wrong.", metavar="DIR", show_default=False),
    ] = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Accuracy, per-class precision/recall/F1 and confusion matrix of a trained run on labelled data."""
    from hubcli.train.inference import evaluate

    start_output(quiet, json_output)
    text_options = {"text_column": text_column, "label_column": label_column, "encoding": encoding}
    summary = evaluate(model, data, report=report, **{key: value for key, value in text_options.items() if value is not None})
    if json_output:
        console.emit_json("evaluate", summary)
        return
    print_metrics(f"{summary['model']} on {summary['data']}", summary)
    if report is not None:
        console.info(f"report: {summary['report']}")


def predict_command(
    model: Annotated[Path, typer.Argument(help="A run directory (or its model/).", show_default=False)],
    files: Annotated[
        Optional[list[Path]], typer.Argument(help="Image files (image runs), or files of one sentence per line (text runs).", show_default=False)
    ] = None,
    *,
    texts: Annotated[
        Optional[list[str]],
        typer.Option("--text", "-t", help="Text runs: a sentence to classify (repeatable); '-' (or no FILES) reads stdin, one per line.", show_default=False),
    ] = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k", help="How many classes to show per input.")] = 1,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Classify inputs with a trained run: top-k class names and probabilities (multi-label: every label above its threshold)."""
    from hubcli.train.inference import predict, prediction_items

    start_output(quiet, json_output)
    items = prediction_items(model, files=[str(f) for f in files or []], texts=texts)
    result = predict(model, items, top_k=top_k)
    if json_output:
        console.emit_json("predict", result)
        return
    from rich.table import Table

    multi_label = result["multi_label"]
    table = Table(title=f"predictions of {result['model']}", title_justify="left")
    table.add_column("Input", style="bold", overflow="fold")
    table.add_column("Label" if multi_label else "Class")
    table.add_column("Probability", justify="right")
    if multi_label:
        table.add_column("Threshold", justify="right")
    for prediction in result["predictions"]:
        # A multi-label run shows every label at or above its threshold; none is an answer too.
        rows = [[c["label"], f"{c['probability']:.3f}", f"{c['threshold']:.3f}"] for c in prediction["labels"]] if multi_label else [
            [c["label"], f"{c['probability']:.3f}"] for c in prediction["top"]
        ]
        for rank, cells in enumerate(rows or [["(no label)", "", ""]]):
            table.add_row(prediction["input"] if rank == 0 else "", *cells)
    console.print_table(table)
