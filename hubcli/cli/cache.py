"""``hubcli cache ls|verify|rm|prune``: look after the shared module cache."""

from __future__ import annotations

import sys
import time
from typing import Annotated, Optional

import typer

from hubcli import console
from hubcli.cli.options import CacheDirOpt, DryRunOpt, JsonOpt, QuietOpt, YesOpt, load_settings, start_output

cache_app = typer.Typer(help="Inspect and maintain the shared module cache.", no_args_is_help=True)


@cache_app.command("ls")
def cache_ls(*, cache_dir: CacheDirOpt = None, json_output: JsonOpt = False, quiet: QuietOpt = False) -> None:
    """List cached modules with their size on disk and last use (tensorflow_hub's entries too)."""
    from rich.table import Table

    from hubcli.hub import cache

    start_output(quiet, json_output)
    settings = load_settings(cache_dir)
    entries = sorted(cache.list_entries(settings.cache_dir), key=lambda e: e.last_used, reverse=True)
    if json_output:
        documents = [e.to_json() for e in entries]
        total = sum(d["disk_bytes"] for d in documents)
        console.emit_json("cache.ls", {"cache_dir": str(settings.cache_dir), "total_bytes": total, "entries": documents})
        return
    table = Table(title=f"module cache {settings.cache_dir}", title_justify="left")
    for column in ("Entry", "Handle", "Size", "Files", "Last used", "Origin", "sha256"):
        table.add_column(column, overflow="fold" if column == "Handle" else None)
    for entry in entries:
        table.add_row(
            entry.name[:12],
            entry.handle or "?",
            console.human_size(entry.disk_bytes),
            str(len(entry.files)) if entry.files is not None else "?",
            _ago(entry.last_used),
            entry.origin,
            (entry.sha256 or "-")[:12],
        )
    console.print_table(table)


@cache_app.command("verify")
def cache_verify(
    targets: Annotated[Optional[list[str]], typer.Argument(help="Handles or entry names (default: every entry).", show_default=False)] = None,
    *,
    cache_dir: CacheDirOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Re-hash every file of cached modules against their manifests; exit 5 if any is damaged."""
    from rich.table import Table

    from hubcli.hub import cache, cache_maintenance

    start_output(quiet, json_output)
    settings = load_settings(cache_dir)
    entries = cache_maintenance.find_entries(targets, settings) if targets else cache.list_entries(settings.cache_dir)
    reports = cache_maintenance.verify_entries(entries)
    if json_output:
        damaged = sum(report.status == "damaged" for report in reports)
        console.emit_json("cache.verify", {"cache_dir": str(settings.cache_dir), "damaged": damaged, "entries": [r.to_json() for r in reports]})
    else:
        table = Table(title=f"verify {settings.cache_dir}", title_justify="left")
        for column in ("Entry", "Handle", "Status", "Problems"):
            table.add_column(column, overflow="fold")
        for report in reports:
            style = {"ok": "green", "damaged": "red"}.get(report.status, "yellow")
            shown = "; ".join(report.problems[:3]) + (" ..." if len(report.problems) > 3 else "")
            table.add_row(report.entry.name[:12], report.entry.handle or "?", f"[{style}]{report.status}[/{style}]", shown)
        console.print_table(table)
    cache_maintenance.raise_if_damaged(reports)


@cache_app.command("rm")
def cache_rm(
    targets: Annotated[list[str], typer.Argument(help="Handles, aliases or entry names (sha1 or a 6+ digit prefix).", show_default=False)],
    *,
    yes: YesOpt = False,
    dry_run: DryRunOpt = False,
    cache_dir: CacheDirOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Remove modules from the cache (directory, metadata and any partial download)."""
    from hubcli.hub import cache_maintenance

    start_output(quiet, json_output)
    entries = cache_maintenance.find_entries(targets, load_settings(cache_dir))
    if not dry_run:
        _confirm_delete(f"{len(entries)} cache entr{'y' if len(entries) == 1 else 'ies'}", yes)
    removed = cache_maintenance.remove_entries(entries, dry_run=dry_run)
    if json_output:
        console.emit_json("cache.rm", {"dry_run": dry_run, "removed": [r.to_json() for r in removed], "freed_bytes": sum(r.bytes for r in removed)})
        return
    verb = "would remove" if dry_run else "removed"
    for removal in removed:
        typer.echo(f"{verb} {removal.handle or removal.name} ({console.human_size(removal.bytes)})")


@cache_app.command("prune")
def cache_prune(
    *,
    older_than: Annotated[Optional[float], typer.Option("--older-than", help="Also remove modules unused for this many days.", show_default=False)] = None,
    part_age: Annotated[float, typer.Option("--part-age", help="Remove partial downloads untouched for this many days.")] = 7.0,
    yes: YesOpt = False,
    dry_run: DryRunOpt = False,
    cache_dir: CacheDirOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Remove leftovers (temp dirs, stale partial downloads, orphan locks) and, with --older-than, idle modules."""
    from hubcli.hub import cache

    start_output(quiet, json_output)
    settings = load_settings(cache_dir)
    items = cache.find_prunable(settings.cache_dir, older_than_days=older_than, part_max_age_days=part_age)
    total = sum(item.bytes for item in items)
    if items and not dry_run:
        _confirm_delete(f"{len(items)} item{'s' if len(items) != 1 else ''} ({console.human_size(total)})", yes)
        total = cache.prune(items)
    if json_output:
        console.emit_json("cache.prune", {"dry_run": dry_run, "items": [i.to_json() for i in items], "freed_bytes": total})
        return
    verb = "would remove" if dry_run else "removed"
    for item in items:
        typer.echo(f"{verb} {item.kind} {item.path.name} ({console.human_size(item.bytes)}): {item.reason}")
    console.info(f"{verb} {len(items)} item(s), {console.human_size(total)}")


def _confirm_delete(what: str, yes: bool) -> None:
    from hubcli.errors import UsageError

    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(f"this deletes {what}; pass --yes to confirm, or --dry-run to preview")
    typer.confirm(f"Delete {what}?", abort=True)


def _ago(timestamp: float) -> str:
    seconds = max(0.0, time.time() - timestamp)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return "just now"
