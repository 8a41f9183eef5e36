"""``hubcli inspect FILE.tflite``: render the tensors, TFLite Model Metadata and packed files of a model."""

from __future__ import annotations

from hubcli import console

_LABELS_SHOWN = 10


def show_tflite(path: str, *, json_output: bool) -> None:
    """Print (or emit as ``--json``) what :func:`hubcli.savedmodel.tflite_inspect.inspect_tflite` reads."""
    from hubcli.savedmodel.tflite_inspect import inspect_tflite

    summary = inspect_tflite(path)
    if json_output:
        console.emit_json("inspect", {"module": path, **summary})
        return
    from rich.panel import Panel
    from rich.table import Table

    metadata = summary["metadata"]
    overview = Table.grid(padding=(0, 2))
    overview.add_column(style="bold")
    overview.add_column(overflow="fold")
    overview.add_row("Path", summary["path"])
    overview.add_row("Format", "TFLite flatbuffer")
    overview.add_row("Size", console.human_size(summary["size_bytes"]))
    if metadata is None:
        overview.add_row("Metadata", "[yellow]none[/yellow]: MediaPipe Tasks and ML Kit cannot tell how to feed it or name its outputs")
    else:
        for key, label in (("name", "Name"), ("version", "Version"), ("author", "Author"), ("license", "Licence"), ("description", "Description")):
            overview.add_row(label, str(metadata.get(key, "-")))
        overview.add_row("Metadata", f"TFLite Model Metadata (parser {metadata.get('min_parser_version', '?')} or later)")
    files = ", ".join(f"{item['name']} ({console.human_size(item['size_bytes'])})" for item in summary["associated_files"]) or "none"
    overview.add_row("Packed files", files)
    if summary["missing_files"]:
        overview.add_row("Missing files", f"[red]{', '.join(summary['missing_files'])}[/red] (named by the metadata, not packed)")
    if summary["labels"] is not None:
        labels = summary["labels"]
        more = f" and {len(labels) - _LABELS_SHOWN} more" if len(labels) > _LABELS_SHOWN else ""
        overview.add_row("Labels", f"{len(labels)}: {', '.join(labels[:_LABELS_SHOWN])}{more}")
    console.print_table(Panel(overview, title=path, title_align="left", expand=False))

    described = _tensor_metadata(metadata)
    table = Table(title="Tensors", title_justify="left")
    for column in ("", "Name", "Dtype", "Shape", "Metadata"):
        table.add_column(column, overflow="fold", no_wrap=column == "")
    for direction in ("inputs", "outputs"):
        for index, tensor in enumerate(summary[direction]):
            shape = "[" + ", ".join("None" if d is None else str(d) for d in tensor["shape"]) + "]"
            table.add_row("in" if direction == "inputs" else "out", tensor["name"], tensor["dtype"], shape, described.get((direction, index), "-"))
    console.print_table(table)
    units = ((metadata or {}).get("subgraph_metadata") or [{}])[0].get("input_process_units") or []
    for unit in units:
        vocab = ", ".join(item.get("name", "?") for item in (unit.get("options") or {}).get("vocab_file", []))
        console.info(f"input process unit: {unit.get('options_type')}" + (f" (vocabulary {vocab})" if vocab else ""))


def _tensor_metadata(metadata) -> dict:
    """(direction, index) -> one line of what the metadata says about that tensor."""
    subgraph = ((metadata or {}).get("subgraph_metadata") or [{}])[0]
    lines = {}
    for direction, key in (("inputs", "input_tensor_metadata"), ("outputs", "output_tensor_metadata")):
        for index, tensor in enumerate(subgraph.get(key) or []):
            parts = [f"'{tensor.get('name', '?')}'"]
            content = tensor.get("content") or {}
            if content.get("content_properties_type") == "ImageProperties":
                parts.append(f"{(content.get('content_properties') or {}).get('color_space', '?')} image")
            for unit in tensor.get("process_units") or []:
                if unit.get("options_type") == "NormalizationOptions":
                    options = unit.get("options") or {}
                    parts.append(f"normalised (x - {options.get('mean')}) / {options.get('std')}")
            for item in tensor.get("associated_files") or []:
                parts.append(f"{item.get('type', '?')}: {item.get('name', '?')}")
            lines[(direction, index)] = "; ".join(parts)
    return lines
