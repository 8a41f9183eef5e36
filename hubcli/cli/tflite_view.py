"""How ``hubcli inspect`` shows a TFLite model: an overview, the input and output tensors, the signatures."""

from __future__ import annotations

from hubcli import console


def print_tflite_info(module: str, info) -> None:
    """Render a :class:`hubcli.savedmodel.tflite_file.TfliteInfo` on stdout."""
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
    console.print_table(Panel(overview, title=module, title_align="left", expand=False))

    table = Table(title="Tensors", title_justify="left")
    for column in ("", "Name", "Dtype", "Shape", "Quantisation"):
        table.add_column(column, no_wrap=column == "", overflow="fold")
    for direction, tensors in (("in", info.inputs), ("out", info.outputs)):
        for tensor in tensors:
            shape = "[" + ", ".join("None" if d < 0 else str(d) for d in tensor.shape_signature) + "]"
            quantised = ", ".join(f"scale {s:.6g}, zero point {z}" for s, z in zip(tensor.scale, tensor.zero_point, strict=False))
            table.add_row(direction, tensor.name, tensor.dtype, shape, quantised or "-")
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
