"""``hubcli inspect``: what a module is and does, read from its protobufs without TensorFlow."""

from __future__ import annotations

from typing import Annotated

import typer

from hubcli import console
from hubcli.cli.options import CaBundleOpt, CacheDirOpt, JsonOpt, MirrorOpt, OfflineOpt, QuietOpt, TfliteOpt, load_settings, start_output
from hubcli.savedmodel.formats import KERAS, TF1_HUB, TF2_SAVED_MODEL

_FORMAT_LABELS = {TF2_SAVED_MODEL: "TF2 SavedModel", TF1_HUB: "TF1 Hub format (tfhub_module.pb)", KERAS: "Keras"}
_VARIABLE_ROWS = 15  # the largest variables; the rest are summed up in the caption


def inspect_command(
    module: Annotated[str, typer.Argument(help="Handle, alias, URL, archive, SavedModel directory, .keras or .tflite file.", show_default=False)],
    *,
    cache_dir: CacheDirOpt = None,
    offline: OfflineOpt = None,
    mirror: MirrorOpt = None,
    ca_bundle: CaBundleOpt = None,
    tflite: TfliteOpt = False,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Show a module's format, signatures, call specs, variables, assets and risky ops, without TensorFlow."""
    from hubcli.hub.pull import local_module_path, pull
    from hubcli.savedmodel.inspector import inspect_module
    from hubcli.savedmodel.tflite_file import find_tflite, read_tflite
    from hubcli.savedmodel.tflite_metadata import describe_metadata

    start_output(quiet, json_output)
    path = local_module_path(module)
    if path is None:
        settings = load_settings(cache_dir, offline, mirror, ca_bundle=ca_bundle)
        path = pull(module, settings, progress=not (quiet or json_output), tflite=tflite).path
    if (model_file := find_tflite(path)) is not None:
        from hubcli.cli.tflite_view import print_tflite_info

        lite = read_tflite(model_file)
        described = describe_metadata(model_file)
        if json_output:
            console.emit_json("inspect", {"module": module, **lite.to_json(), **described})
        else:
            print_tflite_info(module, lite, described)
        return
    info = inspect_module(path)
    if json_output:
        console.emit_json("inspect", {"module": module, **info.to_json()})
        return
    _print_module_info(module, info)


def _print_module_info(module: str, info) -> None:
    from rich.panel import Panel
    from rich.table import Table

    def count(number) -> str:
        return "?" if number is None else f"{number:,}"

    overview = Table.grid(padding=(0, 2))
    overview.add_column(style="bold")
    overview.add_column(overflow="fold")
    overview.add_row("Path", str(info.path))
    overview.add_row("Format", _FORMAT_LABELS.get(info.format, info.format))
    overview.add_row("Saved by", f"TensorFlow {info.tensorflow_version}" if info.tensorflow_version else "?")
    overview.add_row("Tag sets", "; ".join("{" + ", ".join(tags) + "}" for tags in info.tag_sets) or "-")
    overview.add_row("Image size", f"{info.image_size[0]}x{info.image_size[1]}" if info.image_size else "-")
    overview.add_row("Output dim", str(info.output_dim) if info.output_dim else "?")
    overview.add_row("Takes strings", "yes" if info.takes_strings else "no")
    trainable = [v for v in info.variables if v.trainable]
    overview.add_row("Variables", f"{info.variable_count:,}" + (f" ({len(trainable):,} trainable)" if info.trainable_param_count is not None else ""))
    overview.add_row("Parameters", f"{info.param_count:,} ({count(info.trainable_param_count)} trainable, {count(info.non_trainable_param_count)} not)")
    overview.add_row("Size on disk", console.human_size(info.size_bytes))
    libraries = ", ".join(info.op_libraries) + " (import before loading)" if info.op_libraries else "none"
    overview.add_row("Op libraries", libraries)
    if info.unknown_ops:
        overview.add_row("Unknown ops", f"[yellow]{', '.join(info.unknown_ops)}[/yellow] (from a library hubcli does not know)")
    risk_line = f"[red]{len(info.risky_ops)} risky op type(s)[/red]" if info.risky_ops else "[green]none found[/green]"
    overview.add_row("Risks", risk_line)
    console.print_table(Panel(overview, title=module, title_align="left", expand=False))

    if info.signatures:
        table = Table(title="Signatures", title_justify="left")
        for column in ("Signature", "Tags", "", "Name", "Dtype", "Shape"):
            # Only the in/out marker refuses to wrap: in a narrow terminal rich squeezes unwrappable
            # columns to nothing, and the Name column vanished.
            table.add_column(column, no_wrap=column == "", overflow="fold")
        for sig in info.signatures:
            rows = [("in", spec) for spec in sig.inputs.values()] + [("out", spec) for spec in sig.outputs.values()]
            for index, (direction, spec) in enumerate(rows):
                first = index == 0
                shape = "unknown rank" if spec.shape is None else "[" + ", ".join("None" if d is None else str(d) for d in spec.shape) + "]"
                dtype = spec.dtype if spec.kind == "tensor" else f"{spec.dtype} ({spec.kind})"
                key, tags = (sig.key, ",".join(sig.tags)) if first else ("", "")
                table.add_row(key, tags, direction, spec.name, dtype, shape, end_section=index == len(rows) - 1)
        console.print_table(table)

    if info.call_input_specs:
        table = Table(title="__call__ traced variants", title_justify="left")
        table.add_column("#", justify="right")
        table.add_column("Call", overflow="fold")
        for index, variant in enumerate(info.call_input_specs, 1):
            table.add_row(str(index), variant.describe())
        console.print_table(table)

    if info.variables:
        largest = sorted(info.variables, key=lambda v: v.params, reverse=True)[:_VARIABLE_ROWS]
        rest = info.variable_count - len(largest)
        caption = f"and {rest:,} smaller variable(s)" if rest else None
        table = Table(title="Variables (largest first)", title_justify="left", caption=caption, caption_justify="left")
        for column in ("Name", "Dtype", "Shape", "Trainable", "Params"):
            table.add_column(column, justify="right" if column == "Params" else "left", overflow="fold" if column == "Name" else "ellipsis")
        for var in largest:
            shape = "?" if var.shape is None else "[" + ", ".join("?" if d is None else str(d) for d in var.shape) + "]"
            table.add_row(var.name, var.dtype, shape, "?" if var.trainable is None else "yes" if var.trainable else "no", f"{var.params:,}")
        console.print_table(table)

    if info.assets:
        table = Table(title="Assets", title_justify="left")
        table.add_column("Path", overflow="fold")
        table.add_column("Size", justify="right")
        for asset in info.assets:
            table.add_row(asset.path, console.human_size(asset.size_bytes))
        console.print_table(table)

    if info.risky_ops:
        table = Table(title="[red]Risky ops[/red] (reach the file system, the network or Python)", title_justify="left", border_style="red")
        for column in ("Op", "Category", "Count", "Why", "Where"):
            table.add_column(column, style="red" if column == "Op" else None, overflow="fold")
        for risk in info.risky_ops:
            where = "\n".join(risk.locations) + (f"\n... {risk.count - len(risk.locations)} more" if risk.count > len(risk.locations) else "")
            table.add_row(risk.op, risk.category, str(risk.count), risk.reason, where)
        console.print_table(table)
