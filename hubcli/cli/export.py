"""``hubcli export``, ``export-module`` and ``publish``: runs and modules leave as files others load."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from hubcli import console
from hubcli.cli.options import JsonOpt, QuietOpt, start_output


def export_command(
    run: Annotated[Path, typer.Argument(help="A run directory (or its model/ or model.keras).", show_default=False)],
    *,
    format: Annotated[
        str, typer.Option("--format", "-f", help="savedmodel, tflite (with standard TFLite metadata), keras or onnx (image runs).")
    ] = "savedmodel",
    quantize: Annotated[
        str, typer.Option("--quantize", help="TFLite only: none, dynamic, float16 or int8 (calibrated on the run's representative inputs).")
    ] = "none",
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Where to write (default: <run>/export/...).", show_default=False)] = None,
    min_agreement: Annotated[
        float, typer.Option("--min-agreement", help="Refuse the export if its top-1 agreement with the run's model is below this.")
    ] = 0.99,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output.")] = False,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Export a trained run as a SavedModel, a TFLite model, a .keras file or ONNX, and check it agrees with the run."""
    from hubcli.export.artifacts import check_export_options, export_run

    start_output(quiet, json_output)
    check_export_options(format, quantize, min_agreement)  # a bad option is the only line printed
    console.info(f"exporting {run} as {format}" + (f" ({quantize})" if format == "tflite" else ""))
    result = export_run(run, format, output=output, quantize=quantize, min_agreement=min_agreement, overwrite=overwrite)
    if json_output:
        console.emit_json("export", result.to_json())
        return
    from rich.table import Table

    table = Table(title=f"{format} export ({console.human_size(result.size_bytes)}) vs the run's model", title_justify="left")
    table.add_column("Check", style="bold")
    table.add_column("Samples", justify="right")
    table.add_column("Top-1 agreement", justify="right")
    table.add_column("Max |Δp|", justify="right")
    for name, check in result.checks.items():
        table.add_row(name, str(check.samples), f"{check.top1_agreement:.2%}", f"{check.max_abs_diff:.2e}")
    console.print_table(table)
    if result.labels_path:
        console.info(f"labels: {result.labels_path}")
    console.info(f"model card: {result.model_card_path}")
    typer.echo(str(result.path))


def export_module_command(
    source: Annotated[Path, typer.Argument(help="A SavedModel directory, or a run directory with --as.", show_default=False)],
    *,
    output: Annotated[
        Optional[Path], typer.Option("--output", "-o", help="Archive path, *.tar.gz (default: ./<name>-<version>.tar.gz).", show_default=False)
    ] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Module name, e.g. acme/flowers (default: the directory name).", show_default=False)] = None,
    version: Annotated[str, typer.Option("--version", help="Module version.")] = "1",
    task: Annotated[Optional[str], typer.Option("--task", help="e.g. image-feature-vector (default: from the module).", show_default=False)] = None,
    license: Annotated[Optional[str], typer.Option("--license", help="Licence of the module, e.g. Apache-2.0.", show_default=False)] = None,
    description: Annotated[Optional[str], typer.Option("--description", help="One line shown by list and search.", show_default=False)] = None,
    as_: Annotated[
        str, typer.Option("--as", help="module (a SavedModel dir as is), or from a run: feature-vector (head removed) or classification.")
    ] = "module",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing archive.")] = False,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Package a module as a hub-format .tar.gz (module at the root) with a metadata .json beside it."""
    from hubcli.export.module import export_module

    start_output(quiet, json_output)
    packed = export_module(
        source, output=output, name=name, version=version, task=task, license=license, description=description, as_=as_, overwrite=overwrite
    )
    if json_output:
        console.emit_json("export-module", packed.to_json())
        return
    meta = packed.metadata
    console.info(f"{meta['name']} {meta['version']} ({meta['task']}): {console.human_size(meta['size'])}, sha256 {meta['sha256']}")
    console.info(f"metadata: {packed.metadata_path}")
    typer.echo(str(packed.archive))


def publish_command(
    archive: Annotated[Path, typer.Argument(help="A module .tar.gz (from export-module).", show_default=False)],
    *,
    registry: Annotated[str, typer.Option("--registry", help="Registry directory (served as is by any static HTTP server).", show_default=False)],
    name: Annotated[Optional[str], typer.Option("--name", help="owner/model (default: from the metadata beside the archive).", show_default=False)] = None,
    version: Annotated[
        Optional[str], typer.Option("--version", help="Version (default: from the metadata). Published versions are immutable.", show_default=False)
    ] = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Check a module archive as pull would and add it to a registry as a new, immutable version."""
    from hubcli.hub.publish import publish_module

    start_output(quiet, json_output)
    published = publish_module(archive, registry, name, version)
    if json_output:
        console.emit_json("publish", published.to_json())
        return
    console.info(f"published {published.registry_path} {published.version} to {published.registry} (sha256 {published.sha256})")
    console.info(f"pull it with: hubcli pull {published.handle} --mirror {published.registry}")
    typer.echo(str(published.archive))
