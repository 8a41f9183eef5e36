"""How ``hubcli inspect`` shows a TFLite model: an overview, its Model Metadata, the tensors, the signatures."""

from __future__ import annotations

from hubcli import console

_LABELS_SHOWN = 10


def print_tflite_info(module: str, info, described: dict) -> None:
    """Render a :class:`hubcli.savedmodel.tflite_file.TfliteInfo` and its
    :func:`~hubcli.savedmodel.tflite_metadata.describe_metadata` on stdout."""
    from rich.panel import Panel
    from rich.table import Table

    overview = Table.grid(padding=(0, 2))
    overview.add_column(style="bold")
    overview.add_column(overflow="fold")
    overview.add_row("Path", str(info.path))
    overview.add_row("Format", f"TFLite (schema version {info.version})")
    overview.add_row("Description", info.description or "-")
    overview.add_row("Subgraphs", str(info.subgraphs))
    overview.add_row("Size on disk", console.human_size(info.size_bytes))
    metadata = ", ".join(f"{name} ({console.human_size(size)})" for name, size in info.metadata.items())
    overview.add_row("Metadata", metadata or "none")
    _add_model_metadata(overview, described, takes_floats=any(tensor.dtype == "float32" for tensor in info.inputs))
    console.print_table(Panel(overview, title=module, title_align="left", expand=False))

    per_tensor = _tensor_metadata(described["model_metadata"])
    table = Table(title="Tensors", title_justify="left")
    for column in ("", "Name", "Dtype", "Shape", "Quantisation", "Model metadata"):
        table.add_column(column, no_wrap=column == "", overflow="fold")
    for direction, tensors in (("in", info.inputs), ("out", info.outputs)):
        for index, tensor in enumerate(tensors):
            shape = "[" + ", ".join("None" if d < 0 else str(d) for d in tensor.shape_signature) + "]"
            quantised = ", ".join(f"scale {s:.6g}, zero point {z}" for s, z in zip(tensor.scale, tensor.zero_point, strict=False))
            table.add_row(direction, tensor.name, tensor.dtype, shape, quantised or "-", per_tensor.get((direction, index), "-"))
    console.print_table(table)
    if info.signatures:
        signatures = Table(title="Signatures", title_justify="left")
        for column in ("Signature", "", "Name", "Tensor"):
            signatures.add_column(column, no_wrap=column == "", overflow="fold")
        for signature in info.signatures:
            rows = [("in", *item) for item in signature.inputs.items()] + [("out", *item) for item in signature.outputs.items()]
            for index, row in enumerate(rows):
                signatures.add_row(signature.key if index == 0 else "", *row, end_section=index == len(rows) - 1)
        console.print_table(signatures)


def _add_model_metadata(overview, described: dict, *, takes_floats: bool) -> None:
    """The TFLite Model Metadata rows of the overview: who made the model, what it packs, its labels."""
    metadata = described["model_metadata"]
    if metadata is None:
        consequence = ": MediaPipe Tasks and ML Kit cannot tell how to feed its float input" if takes_floats else ""
        overview.add_row("Model metadata", f"[yellow]none[/yellow]{consequence}")
        return
    for key, label in (("name", "Name"), ("version", "Version"), ("author", "Author"), ("license", "Licence"), ("description", "About")):
        overview.add_row(label, str(metadata.get(key, "-")))
    overview.add_row("Model metadata", f"TFLite Model Metadata (parser {metadata.get('min_parser_version', '?')} or later)")
    units = (metadata.get("subgraph_metadata") or [{}])[0].get("input_process_units") or []
    for unit in units:
        vocab = ", ".join(item.get("name", "?") for item in (unit.get("options") or {}).get("vocab_file", []))
        overview.add_row("Input processing", f"{unit.get('options_type')}" + (f" (vocabulary {vocab})" if vocab else ""))
    files = ", ".join(f"{item['name']} ({console.human_size(item['size_bytes'])})" for item in described["associated_files"])
    overview.add_row("Packed files", files or "none")
    if described["missing_files"]:
        overview.add_row("Missing files", f"[red]{', '.join(described['missing_files'])}[/red] (named by the metadata, not packed)")
    labels = described["labels"]
    if labels is not None:
        more = f" and {len(labels) - _LABELS_SHOWN} more" if len(labels) > _LABELS_SHOWN else ""
        overview.add_row("Labels", f"{len(labels)}: {', '.join(labels[:_LABELS_SHOWN])}{more}")


def _tensor_metadata(metadata) -> dict:
    """(direction, index) -> one line of what the metadata says about that tensor."""
    subgraph = ((metadata or {}).get("subgraph_metadata") or [{}])[0]
    lines = {}
    for direction, key in (("in", "input_tensor_metadata"), ("out", "output_tensor_metadata")):
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
