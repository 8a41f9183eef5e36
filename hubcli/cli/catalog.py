"""``hubcli list`` and ``hubcli search``: the module catalog, or a registry, as a table or JSON."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from hubcli import console
from hubcli.cli.options import JsonOpt, OfflineOpt, QuietOpt, RegistryOpt, load_settings, start_output


def list_command(
    *,
    task: Annotated[Optional[str], typer.Option("--task", help="Only this task, e.g. image-feature-vector, or just image / text.", show_default=False)] = None,
    registry: RegistryOpt = None,
    offline: OfflineOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """List the module catalog (built-in names plus your config's aliases), or a registry."""
    from hubcli.hub import catalog

    start_output(quiet, json_output)
    listing = catalog.list_modules(load_settings(offline=offline), task=task, registry=registry)
    if json_output:
        local = listing.local or {}
        entries = [{**e.to_json(), **({"local": local[e.name]} if e.name in local else {})} for e in listing.entries]
        console.emit_json("list", {"source": listing.source, "task": task, "entries": entries})
        return
    if not listing.entries and task:
        console.info(f"no entries with task '{task}'; tasks here: {', '.join(listing.tasks) or 'none'}")
        return
    _print_catalog(listing.entries, registry, listing.local)


def search_command(
    text: Annotated[str, typer.Argument(help="Words to find in names, handles, tasks and descriptions.", show_default=False)],
    *,
    registry: RegistryOpt = None,
    offline: OfflineOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Find catalog (or registry) entries whose name, handle, task or description match every word."""
    from hubcli.errors import UsageError
    from hubcli.hub import catalog

    start_output(quiet, json_output)
    if not text.split():
        raise UsageError("search needs at least one word, e.g. `hubcli search mobilenet`")
    listing = catalog.search_modules(text, load_settings(offline=offline), registry=registry)
    if json_output:
        console.emit_json("search", {"source": listing.source, "query": text, "entries": [e.to_json() for e in listing.entries]})
        return
    if not listing.entries:
        hint = f"; did you mean {', '.join(listing.suggestions)}?" if listing.suggestions else ""
        console.info(f"no entries match '{text}'{hint}")
        return
    _print_catalog(listing.entries, registry)


def _print_catalog(found, registry: str | None, local: dict | None = None) -> None:
    from rich.table import Table

    # A Source column only earns its width when the config file added or replaced names.
    show_source = not registry and any(e.source != "builtin" for e in found)
    table = Table(title=f"registry {registry}" if registry else "hubcli catalog", title_justify="left")
    # Text columns fold rather than refuse to wrap: in a narrow terminal rich squeezes
    # unwrappable columns to nothing, and Dim and Handle vanished.
    table.add_column("Name", style="bold", overflow="fold")
    if registry:
        table.add_column("Versions")
    if show_source:
        table.add_column("Source")
    table.add_column("Task", overflow="fold")
    table.add_column("Input", overflow="fold")
    table.add_column("Dim", justify="right", no_wrap=True)
    table.add_column("Handle", overflow="fold")
    if local:
        table.add_column("Here", overflow="fold")  # hub module in the cache, and/or a local conversion
    for entry in found:
        shown_input = f"{entry.image_size[0]}x{entry.image_size[1]}" if entry.image_size else entry.input or "?"
        extra = [", ".join(entry.versions)] if registry else [entry.source] if show_source else []
        here = [_local_summary(local[entry.name])] if local else []
        table.add_row(entry.name, *extra, entry.task or "?", shown_input, str(entry.output_dim or "?"), entry.handle, *here)
    console.print_table(table)


def _local_summary(held: dict) -> str:
    parts = ["hub module (cached)"] if held["hub_module_cached"] else []
    parts += [f"conversion {held['conversion']}"] if held["conversion"] else []
    return ", ".join(parts) or "-"

