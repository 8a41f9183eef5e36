"""The ``hubcli`` command line: parse, call the library, render.

Nothing here imports TensorFlow at module level, so ``hubcli --help``, ``pull``
and ``inspect`` start fast; commands that train or load models import the
library modules that need TF inside their bodies.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from hubcli import console
from hubcli.errors import HubcliError
from hubcli.train.config import TrainConfig

app = typer.Typer(
    name="hubcli",
    help="Pull, inspect and retrain pretrained TensorFlow Hub modules.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
cache_app = typer.Typer(help="Inspect and maintain the shared module cache.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")

# Options shared by every command that reaches the module cache.
CacheDirOpt = Annotated[
    Optional[Path],
    typer.Option("--cache-dir", help="Module cache (default: $HUBCLI_CACHE_DIR, $TFHUB_CACHE_DIR, ~/.cache/hubcli/modules).", show_default=False),
]
OfflineOpt = Annotated[
    Optional[bool],
    typer.Option("--offline/--online", help="Never touch the network; serve from the cache ($HUBCLI_OFFLINE=1).", show_default=False),
]
MirrorOpt = Annotated[
    Optional[str],
    typer.Option("--mirror", help="Serve hub handles from this http(s) URL or directory ($HUBCLI_MIRROR).", show_default=False),
]
CaBundleOpt = Annotated[
    Optional[Path],
    typer.Option("--ca-bundle", help="PEM file of the CAs to trust for HTTPS, e.g. a proxy's ($REQUESTS_CA_BUNDLE, $SSL_CERT_FILE).", show_default=False),
]
TimeoutOpt = Annotated[
    Optional[float],
    typer.Option("--timeout", help="Give up after this many seconds in all, however the transfer is going ($HUBCLI_TIMEOUT).", show_default=False),
]
TfliteOpt = Annotated[bool, typer.Option("--tflite", help="The model's .tflite file (tfhub.dev's ?lite-format=tflite), not its SavedModel.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout (stable schema).")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or status messages.")]


def _settings(cache_dir: Path | None, offline: bool | None, mirror: str | None, ca_bundle: Path | None = None, timeout: float | None = None):
    from hubcli.config import Settings

    return Settings.load(cache_dir=cache_dir, offline=offline, mirror=mirror, ca_bundle=ca_bundle, timeout=timeout)


def _http_options(settings):
    from hubcli.hub.http_client import HttpOptions

    return HttpOptions.from_env(settings)


def _start(quiet: bool, json_output: bool = False) -> None:
    # With --json, stdout carries only the document; status messages would still go to stderr,
    # but scripts asked for machine output, so keep stderr for warnings and errors.
    console.set_quiet(quiet or json_output)


def _print_version(requested: bool) -> None:
    # A parameter callback runs while parsing, before the group insists on a command.
    if requested:
        from hubcli import __version__

        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.", is_eager=True, callback=_print_version)] = False,
) -> None:
    pass


# ---------------------------------------------------------------------------
# Issue A: pull, inspect, list, search, cache
# ---------------------------------------------------------------------------

YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Delete without asking.")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Only show what would be deleted.")]


@app.command("pull")
def pull_command(
    handle: Annotated[str, typer.Argument(help="tfhub.dev or Kaggle handle/URL, archive URL, gs:// path, local archive or directory, or alias.", show_default=False)],
    sha256: Annotated[Optional[str], typer.Option("--sha256", help="Refuse the archive unless its sha256 is this.", show_default=False)] = None,
    locked: Annotated[bool, typer.Option("--locked", help="Require the handle in the lock file, with a matching sha256 (for CI).")] = False,
    lockfile: Annotated[Optional[Path], typer.Option("--lockfile", help="Lock file to read or update (default ./hubcli.lock).", show_default=False)] = None,
    update_lock: Annotated[bool, typer.Option("--update-lock", help="Record the archive's sha256 in the lock file.")] = False,
    tflite: TfliteOpt = False,
    force: Annotated[bool, typer.Option("--force", help="Download and reinstall even if an intact copy is cached.")] = False,
    cache_dir: CacheDirOpt = None,
    offline: OfflineOpt = None,
    mirror: MirrorOpt = None,
    ca_bundle: CaBundleOpt = None,
    timeout: TimeoutOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Put a module in the shared cache (or find it there). The last stdout line is its local path.

    Example: `python -c "import tensorflow_hub as hub; hub.load('$(hubcli pull nnlm-en-dim50)')"`
    """
    from hubcli.hub.pull import pull

    _start(quiet, json_output)
    result = pull(
        handle,
        _settings(cache_dir, offline, mirror, ca_bundle, timeout),
        sha256=sha256,
        locked=locked,
        lockfile=lockfile,
        force=force,
        progress=not (quiet or json_output),
        update_lock=update_lock,
        tflite=tflite,
    )
    if json_output:
        console.emit_json("pull", result.to_json())
        return
    if not result.from_cache and result.size is not None:
        console.info(f"pulled {handle}: {console.human_size(result.size)}, sha256 {result.sha256}")
    typer.echo(str(result.path))


def _cache_targets(settings, targets: list[str]):
    """Cache entries named by handle, alias or (a prefix of) their sha1 directory name."""
    from hubcli.errors import NotFoundError
    from hubcli.hub import cache
    from hubcli.hub.handles import parse_handle

    chosen = []
    for target in targets:
        absent = NotFoundError(f"{target} is not in the cache ({settings.cache_dir})")
        name = cache.resolve_entry_name(settings.cache_dir, target)
        if name is None:
            try:
                name = parse_handle(target, settings).cache_dir_name
            except NotFoundError:
                if cache.looks_like_entry_name(target):
                    raise absent from None  # An entry name that matched nothing, not a misspelt alias.
                raise
        entry = cache.read_entry(settings.cache_dir, name) if name else None
        if entry is None:
            raise absent
        chosen.append(entry)
    return chosen


def _confirm_delete(what: str, yes: bool) -> None:
    from hubcli.errors import UsageError

    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(f"this deletes {what}; pass --yes to confirm, or --dry-run to preview")
    typer.confirm(f"Delete {what}?", abort=True)


def _ago(timestamp: float) -> str:
    import time

    seconds = max(0.0, time.time() - timestamp)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return "just now"


@cache_app.command("ls")
def cache_ls(cache_dir: CacheDirOpt = None, json_output: JsonOpt = False, quiet: QuietOpt = False) -> None:
    """List cached modules with their size on disk and last use (tensorflow_hub's entries too)."""
    from rich.table import Table

    from hubcli.hub import cache

    _start(quiet, json_output)
    settings = _settings(cache_dir, None, None)
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
    cache_dir: CacheDirOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Re-hash every file of cached modules against their manifests; exit 5 if any is damaged."""
    from rich.table import Table

    from hubcli.errors import IntegrityError
    from hubcli.hub import cache

    _start(quiet, json_output)
    settings = _settings(cache_dir, None, None)
    entries = _cache_targets(settings, targets) if targets else cache.list_entries(settings.cache_dir)
    reports = []
    for entry in entries:
        problems = cache.verify_entry(entry)
        status = "damaged" if problems else ("ok" if entry.files is not None else "unverified")
        reports.append({**entry.to_json(), "status": status, "problems": problems})
    damaged = [r for r in reports if r["status"] == "damaged"]
    if json_output:
        console.emit_json("cache.verify", {"cache_dir": str(settings.cache_dir), "damaged": len(damaged), "entries": reports})
    else:
        table = Table(title=f"verify {settings.cache_dir}", title_justify="left")
        for column in ("Entry", "Handle", "Status", "Problems"):
            table.add_column(column, overflow="fold")
        for report in reports:
            style = {"ok": "green", "damaged": "red"}.get(report["status"], "yellow")
            shown = "; ".join(report["problems"][:3]) + (" ..." if len(report["problems"]) > 3 else "")
            table.add_row(report["name"][:12], report["handle"] or "?", f"[{style}]{report['status']}[/{style}]", shown)
        console.print_table(table)
    if damaged:
        names = ", ".join(r["handle"] or r["name"] for r in damaged[:3])
        raise IntegrityError(
            f"{len(damaged)} of {len(reports)} cache entries damaged ({names}); `hubcli pull --force HANDLE` reinstalls one"
        )


@cache_app.command("rm")
def cache_rm(
    targets: Annotated[list[str], typer.Argument(help="Handles, aliases or entry names (sha1 or a 6+ digit prefix).", show_default=False)],
    yes: YesOpt = False,
    dry_run: DryRunOpt = False,
    cache_dir: CacheDirOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Remove modules from the cache (directory, metadata and any partial download)."""
    from hubcli.hub import cache

    _start(quiet, json_output)
    settings = _settings(cache_dir, None, None)
    entries = _cache_targets(settings, targets)
    removed = [{"name": e.name, "handle": e.handle, "path": str(e.path), "bytes": e.disk_bytes} for e in entries]
    if not dry_run:
        _confirm_delete(f"{len(entries)} cache entr{'y' if len(entries) == 1 else 'ies'}", yes)
        for entry, record in zip(entries, removed):
            record["bytes"] = cache.remove_entry_locked(entry.paths)
    if json_output:
        console.emit_json("cache.rm", {"dry_run": dry_run, "removed": removed, "freed_bytes": sum(r["bytes"] for r in removed)})
        return
    verb = "would remove" if dry_run else "removed"
    for record in removed:
        typer.echo(f"{verb} {record['handle'] or record['name']} ({console.human_size(record['bytes'])})")


@cache_app.command("prune")
def cache_prune(
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

    _start(quiet, json_output)
    settings = _settings(cache_dir, None, None)
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


RegistryOpt = Annotated[
    Optional[str],
    typer.Option("--registry", help="Read this module registry (directory or http(s) URL) instead of the catalog.", show_default=False),
]


@app.command("list")
def list_command(
    task: Annotated[Optional[str], typer.Option("--task", help="Only this task, e.g. image-feature-vector, or just image / text.", show_default=False)] = None,
    registry: RegistryOpt = None,
    offline: OfflineOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """List the module catalog (built-in names plus your config's aliases), or a registry."""
    from hubcli.hub import catalog

    _start(quiet, json_output)
    settings = _settings(None, offline, None)
    every = catalog.registry_entries(registry, settings.offline, _http_options(settings)) if registry else catalog.entries(settings)
    found = catalog.filter_task(every, task)
    if json_output:
        console.emit_json("list", {"source": registry or "catalog", "task": task, "entries": [e.to_json() for e in found]})
        return
    if not found and task:
        tasks = sorted({e.task for e in every if e.task})
        console.info(f"no entries with task '{task}'; tasks here: {', '.join(tasks) or 'none'}")
        return
    _print_catalog(found, registry)


@app.command("search")
def search_command(
    text: Annotated[str, typer.Argument(help="Words to find in names, handles, tasks and descriptions.", show_default=False)],
    registry: RegistryOpt = None,
    offline: OfflineOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Find catalog (or registry) entries whose name, handle, task or description match every word."""
    from hubcli.errors import UsageError
    from hubcli.hub import catalog

    _start(quiet, json_output)
    if not text.split():
        raise UsageError("search needs at least one word, e.g. `hubcli search mobilenet`")
    settings = _settings(None, offline, None)
    pool = catalog.registry_entries(registry, settings.offline, _http_options(settings)) if registry else None
    found = catalog.search(text, settings, pool)
    if json_output:
        console.emit_json("search", {"source": registry or "catalog", "query": text, "entries": [e.to_json() for e in found]})
        return
    if not found:
        close = [] if registry else catalog.suggest(text, settings)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        console.info(f"no entries match '{text}'{hint}")
        return
    _print_catalog(found, registry)


def _print_catalog(found, registry: str | None) -> None:
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
    for entry in found:
        shown_input = f"{entry.image_size[0]}x{entry.image_size[1]}" if entry.image_size else entry.input or "?"
        extra = [", ".join(entry.versions)] if registry else [entry.source] if show_source else []
        table.add_row(entry.name, *extra, entry.task or "?", shown_input, str(entry.output_dim or "?"), entry.handle)
    console.print_table(table)


@app.command("inspect")
def inspect_command(
    module: Annotated[str, typer.Argument(help="Handle, alias, URL, archive, SavedModel directory or .keras file.", show_default=False)],
    cache_dir: CacheDirOpt = None,
    offline: OfflineOpt = None,
    mirror: MirrorOpt = None,
    ca_bundle: CaBundleOpt = None,
    tflite: TfliteOpt = False,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Show a module's format, signatures, call specs, variables, assets and risky ops, without TensorFlow."""
    from hubcli.savedmodel.inspector import inspect_module
    from hubcli.savedmodel.tflite_file import find_tflite, read_tflite

    _start(quiet, json_output)
    local = Path(module).expanduser()
    if local.is_dir() or (local.is_file() and local.suffix in (".keras", ".tflite")):
        path = local
    else:
        from hubcli.hub.pull import pull

        path = pull(module, _settings(cache_dir, offline, mirror, ca_bundle), progress=not (quiet or json_output), tflite=tflite).path
    if find_tflite(path) is not None:
        from hubcli.cli.tflite_view import print_tflite_info

        lite = read_tflite(find_tflite(path))
        if json_output:
            console.emit_json("inspect", {"module": module, **lite.to_json()})
        else:
            print_tflite_info(module, lite)
        return
    info = inspect_module(path)
    if json_output:
        console.emit_json("inspect", {"module": module, **info.to_json()})
        return
    _print_module_info(module, info)


_FORMAT_LABELS = {"tf2_saved_model": "TF2 SavedModel", "tf1_hub": "TF1 Hub format (tfhub_module.pb)", "keras": "Keras"}
_VARIABLE_ROWS = 15  # the largest variables; the rest are summed up in the caption


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
                table.add_row(sig.key if first else "", ",".join(sig.tags) if first else "", direction, spec.name, dtype, shape, end_section=index == len(rows) - 1)
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


# ---------------------------------------------------------------------------
# Issue B: retrain-images, evaluate, predict
# ---------------------------------------------------------------------------


def _print_metrics(title: str, summary: dict) -> None:
    """Per-class precision/recall/F1 table plus the headline numbers."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("Class", style="bold")
    for column in ("Precision", "Recall", "F1", "Support"):
        table.add_column(column, justify="right")
    for name, scores in summary["per_class"].items():
        table.add_row(name, f"{scores['precision']:.3f}", f"{scores['recall']:.3f}", f"{scores['f1']:.3f}", str(scores["support"]))
    table.caption = f"accuracy {summary['accuracy']:.2%} on {summary['examples']} examples, macro F1 {summary['macro_f1']:.3f}"
    console.print_table(table)


# Options shared by the two training commands; defaults are TrainConfig's (TF-free to import).
_TRAIN = TrainConfig()
ValidationSplitOpt = Annotated[float, typer.Option("--validation-split", help="Share of examples (by stable content or path hash) for validation.")]
TestSplitOpt = Annotated[float, typer.Option("--test-split", help="Share of examples (by stable content or path hash) for the final test.")]
EpochsOpt = Annotated[int, typer.Option("--epochs", help="Most epochs for the head (early stopping usually ends sooner).")]
BatchSizeOpt = Annotated[int, typer.Option("--batch-size", help="Training batch size.")]
LearningRateOpt = Annotated[float, typer.Option("--learning-rate", "--lr", help="Head learning rate.")]
OptimizerOpt = Annotated[str, typer.Option("--optimizer", help="adam, adamw, nadam, sgd or rmsprop.")]
DropoutOpt = Annotated[float, typer.Option("--dropout", help="Dropout before the softmax layer.")]
L2Opt = Annotated[float, typer.Option("--l2", help="L2 weight penalty of the softmax layer.")]
LabelSmoothingOpt = Annotated[float, typer.Option("--label-smoothing", help="Label smoothing of the cross-entropy.")]
PatienceOpt = Annotated[int, typer.Option("--patience", help="Stop after this many epochs without a better validation loss.")]
FineTuneEpochsOpt = Annotated[int, typer.Option("--fine-tune-epochs", help="Epochs of fine-tuning.")]
FineTuneLearningRateOpt = Annotated[Optional[float], typer.Option("--fine-tune-learning-rate", help="Fine-tuning learning rate (default: learning rate / 10).", show_default=False)]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed; the same seed and data give the same run.")]
TensorboardOpt = Annotated[bool, typer.Option("--tensorboard", help="Write TensorBoard logs to <run>/logs.")]
OutputOpt = Annotated[Optional[Path], typer.Option("--output", "-o", help="Run directory (default: runs/<data name>, never overwriting).", show_default=False)]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace an existing run directory given with --output.")]


def _report_run(command: str, summary: dict, json_output: bool, unit: str) -> None:
    """Render a finished training run; the last stdout line is the run directory."""
    if json_output:
        console.emit_json(command, {key: value for key, value in summary.items() if key != "history"})
        return
    extraction = summary["extraction"]
    rate = f", {extraction['examples_per_s']:.0f} {unit}/s" if extraction["examples_per_s"] else ""
    console.info(
        f"features: {extraction['features_computed']} computed{rate}, {extraction['features_cached']} from cache; "
        f"splits {', '.join(f'{name} {count}' for name, count in summary['splits'].items())}; "
        f"trained in {summary['training_time_s']:.1f} s"
    )
    _print_metrics(f"{summary['evaluated_on']} metrics", summary)
    typer.echo(summary["output"])


@app.command("retrain-images")
def retrain_images_command(
    data_dir: Annotated[Optional[Path], typer.Argument(help="Folder with one sub-folder of images per class (or train/ val/ test/ folders of them).", show_default=False)] = None,
    module: Annotated[str, typer.Option("--module", "-m", help="Image feature-vector module: handle, alias, URL, archive or directory.", show_default=False)] = ...,
    output: OutputOpt = None,
    overwrite: OverwriteOpt = False,
    tfds: Annotated[Optional[str], typer.Option("--tfds", help="Use this TFDS dataset (with its own splits) instead of DATA_DIR.", show_default=False)] = None,
    validation_split: ValidationSplitOpt = 0.1,
    test_split: TestSplitOpt = 0.1,
    image_size: Annotated[Optional[str], typer.Option("--image-size", help="SIZE or HEIGHTxWIDTH, for modules that do not fix it.", show_default=False)] = None,
    epochs: EpochsOpt = _TRAIN.epochs,
    batch_size: BatchSizeOpt = _TRAIN.batch_size,
    learning_rate: LearningRateOpt = _TRAIN.learning_rate,
    optimizer: OptimizerOpt = _TRAIN.optimizer,
    dropout: DropoutOpt = _TRAIN.dropout,
    l2: L2Opt = _TRAIN.l2,
    label_smoothing: LabelSmoothingOpt = _TRAIN.label_smoothing,
    patience: PatienceOpt = _TRAIN.patience,
    fine_tune: Annotated[bool, typer.Option("--fine-tune", help="After the head, train the whole model (module too) with augmentation.")] = False,
    fine_tune_epochs: FineTuneEpochsOpt = _TRAIN.fine_tune_epochs,
    fine_tune_learning_rate: FineTuneLearningRateOpt = _TRAIN.fine_tune_learning_rate,
    augment: Annotated[int, typer.Option("--augment", help="Frozen module: also train on N cached augmented copies of each training image.")] = _TRAIN.augment_copies,
    seed: SeedOpt = _TRAIN.seed,
    tensorboard: TensorboardOpt = False,
    cache_dir: CacheDirOpt = None,
    offline: OfflineOpt = None,
    mirror: MirrorOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Train an image classifier on a hub module's features; the last stdout line is the run directory.

    Example: `hubcli retrain-images ./flowers --module efficientnet_lite0`
    """
    from hubcli.train.images import parse_image_size, retrain_images

    _start(quiet, json_output)
    config = TrainConfig(
        epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, optimizer=optimizer, dropout=dropout,
        l2=l2, label_smoothing=label_smoothing, patience=patience, fine_tune=fine_tune,
        fine_tune_epochs=fine_tune_epochs, fine_tune_learning_rate=fine_tune_learning_rate,
        augment_copies=augment, seed=seed, tensorboard=tensorboard,
    )
    summary = retrain_images(
        data_dir, module, _settings(cache_dir, offline, mirror), config, output=output, overwrite=overwrite,
        tfds_name=tfds, validation_split=validation_split, test_split=test_split, image_size=parse_image_size(image_size),
    )
    _report_run("retrain-images", summary, json_output, "images")


@app.command("evaluate")
def evaluate_command(
    model: Annotated[Path, typer.Argument(help="A run directory (or its model/).", show_default=False)],
    data: Annotated[Path, typer.Argument(help="Labelled data in the run's kind: class folders for images.", show_default=False)],
    text_column: Annotated[Optional[str], typer.Option("--text-column", help="Text runs: CSV/TSV column or JSONL key of the text.", show_default=False)] = None,
    label_column: Annotated[Optional[str], typer.Option("--label-column", help="Text runs: CSV/TSV column or JSONL key of the label.", show_default=False)] = None,
    encoding: Annotated[Optional[str], typer.Option("--encoding", help="Text runs: character encoding of the data files.", show_default=False)] = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Accuracy, per-class precision/recall/F1 and confusion matrix of a trained run on labelled data."""
    from hubcli.train.core import evaluate

    _start(quiet, json_output)
    text_options = {"text_column": text_column, "label_column": label_column, "encoding": encoding}
    summary = evaluate(model, data, **{key: value for key, value in text_options.items() if value is not None})
    if json_output:
        console.emit_json("evaluate", summary)
        return
    _print_metrics(f"{summary['model']} on {summary['data']}", summary)


@app.command("predict")
def predict_command(
    model: Annotated[Path, typer.Argument(help="A run directory (or its model/).", show_default=False)],
    files: Annotated[Optional[list[Path]], typer.Argument(help="Image files (image runs), or files of one sentence per line (text runs).", show_default=False)] = None,
    texts: Annotated[Optional[list[str]], typer.Option("--text", "-t", help="Text runs: a sentence to classify (repeatable); '-' (or no FILES) reads stdin, one per line.", show_default=False)] = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k", help="How many classes to show per input.")] = 1,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Classify inputs with a trained run: top-k class names and probabilities."""
    from hubcli.train.core import predict

    _start(quiet, json_output)
    from hubcli.export.artifacts import open_run

    items = [str(f) for f in files or []]
    if open_run(model).task == "text":
        from hubcli.train.text import read_sentences

        items = read_sentences(texts, items)
    elif texts:
        from hubcli.errors import UsageError

        raise UsageError("--text is for text runs; this run classifies images: give image FILES")
    result = predict(model, items, top_k=top_k)
    if json_output:
        console.emit_json("predict", result)
        return
    from rich.table import Table

    table = Table(title=f"predictions of {result['model']}", title_justify="left")
    table.add_column("Input", style="bold", overflow="fold")
    table.add_column("Class")
    table.add_column("Probability", justify="right")
    for prediction in result["predictions"]:
        for rank, choice in enumerate(prediction["top"]):
            table.add_row(prediction["input"] if rank == 0 else "", choice["label"], f"{choice['probability']:.3f}")
    console.print_table(table)


# ---------------------------------------------------------------------------
# Issue C: classify-text
# ---------------------------------------------------------------------------


TextColumnOpt = Annotated[Optional[str], typer.Option("--text-column", help="CSV/TSV column or JSONL key holding the text (default: guessed).", show_default=False)]
LabelColumnOpt = Annotated[Optional[str], typer.Option("--label-column", help="CSV/TSV column or JSONL key holding the label (default: guessed).", show_default=False)]
EncodingOpt = Annotated[str, typer.Option("--encoding", help="Character encoding of the data files, e.g. latin-1.")]


@app.command("classify-text")
def classify_text_command(
    data: Annotated[Optional[Path], typer.Argument(help="CSV/TSV with a header, JSONL, sentence<TAB>label lines, or one folder of .txt files per class.", show_default=False)] = None,
    module: Annotated[str, typer.Option("--module", "-m", help="Text module taking a batch of tf.string sentences (or a BERT-style encoder with --preprocessor).", show_default=False)] = ...,
    preprocessor: Annotated[Optional[str], typer.Option("--preprocessor", help="BERT-style preprocessing module whose outputs feed --module.", show_default=False)] = None,
    output: OutputOpt = None,
    overwrite: OverwriteOpt = False,
    tfds: Annotated[Optional[str], typer.Option("--tfds", help="Use this TFDS dataset (with its own splits) instead of DATA, e.g. imdb_reviews.", show_default=False)] = None,
    tfds_data_dir: Annotated[Optional[Path], typer.Option("--tfds-data-dir", help="TFDS data directory (default: $TFDS_DATA_DIR or ~/tensorflow_datasets).", show_default=False)] = None,
    text_column: TextColumnOpt = None,
    label_column: LabelColumnOpt = None,
    encoding: EncodingOpt = "utf-8",
    validation_split: ValidationSplitOpt = 0.1,
    test_split: TestSplitOpt = 0.1,
    epochs: EpochsOpt = _TRAIN.epochs,
    batch_size: BatchSizeOpt = _TRAIN.batch_size,
    learning_rate: LearningRateOpt = _TRAIN.learning_rate,
    optimizer: OptimizerOpt = _TRAIN.optimizer,
    dropout: DropoutOpt = _TRAIN.dropout,
    l2: L2Opt = _TRAIN.l2,
    label_smoothing: LabelSmoothingOpt = _TRAIN.label_smoothing,
    patience: PatienceOpt = _TRAIN.patience,
    fine_tune: Annotated[bool, typer.Option("--fine-tune", help="After the head, train the whole model (module too).")] = False,
    fine_tune_epochs: FineTuneEpochsOpt = _TRAIN.fine_tune_epochs,
    fine_tune_learning_rate: FineTuneLearningRateOpt = _TRAIN.fine_tune_learning_rate,
    seed: SeedOpt = _TRAIN.seed,
    tensorboard: TensorboardOpt = False,
    cache_dir: CacheDirOpt = None,
    offline: OfflineOpt = None,
    mirror: MirrorOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Train a text classifier on a hub text module's embeddings; the last stdout line is the run directory.

    Example: `hubcli classify-text imdb_labelled.txt --module minilm_l6_v2`
    """
    from hubcli.train.text import check_text_module, classify_text, load_text_dataset

    _start(quiet, json_output)
    settings = _settings(cache_dir, offline, mirror)
    # Data and module checks first, before TensorFlow loads: bad input costs no start-up time.
    dataset = load_text_dataset(
        data, tfds=tfds, tfds_data_dir=tfds_data_dir, text_column=text_column, label_column=label_column, encoding=encoding
    )
    dataset.split(validation_split, test_split)
    check_text_module(module, preprocessor, settings)
    config = TrainConfig(
        epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, optimizer=optimizer, dropout=dropout,
        l2=l2, label_smoothing=label_smoothing, patience=patience, fine_tune=fine_tune,
        fine_tune_epochs=fine_tune_epochs, fine_tune_learning_rate=fine_tune_learning_rate, seed=seed, tensorboard=tensorboard,
    )
    summary = classify_text(
        dataset, module, settings, config, output=output, overwrite=overwrite,
        preprocessor_handle=preprocessor, validation_split=validation_split, test_split=test_split,
    )
    _report_run("classify-text", summary, json_output, "texts")


# ---------------------------------------------------------------------------
# Issue D: export, export-module, publish
# ---------------------------------------------------------------------------


@app.command("export")
def export_command(
    run: Annotated[Path, typer.Argument(help="A run directory (or its model/ or model.keras).", show_default=False)],
    format: Annotated[str, typer.Option("--format", "-f", help="savedmodel, tflite or keras.")] = "savedmodel",
    quantize: Annotated[str, typer.Option("--quantize", help="TFLite only: none, dynamic, float16 or int8 (calibrated on the run's representative inputs).")] = "none",
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Where to write (default: <run>/export/...).", show_default=False)] = None,
    min_agreement: Annotated[float, typer.Option("--min-agreement", help="Refuse the export if its top-1 agreement with the run's model is below this.")] = 0.99,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output.")] = False,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Export a trained run as a SavedModel, a TFLite model or a .keras file, and check it agrees with the run."""
    from hubcli.export.artifacts import check_export_options, export_run

    _start(quiet, json_output)
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
    typer.echo(str(result.path))


@app.command("export-module")
def export_module_command(
    source: Annotated[Path, typer.Argument(help="A SavedModel directory, or a run directory with --as.", show_default=False)],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Archive path, *.tar.gz (default: ./<name>-<version>.tar.gz).", show_default=False)] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Module name, e.g. acme/flowers (default: the directory name).", show_default=False)] = None,
    version: Annotated[str, typer.Option("--version", help="Module version.")] = "1",
    task: Annotated[Optional[str], typer.Option("--task", help="e.g. image-feature-vector (default: from the module).", show_default=False)] = None,
    license: Annotated[Optional[str], typer.Option("--license", help="Licence of the module, e.g. Apache-2.0.", show_default=False)] = None,
    description: Annotated[Optional[str], typer.Option("--description", help="One line shown by list and search.", show_default=False)] = None,
    as_: Annotated[str, typer.Option("--as", help="module (a SavedModel dir as is), or from a run: feature-vector (head removed) or classification.")] = "module",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing archive.")] = False,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Package a module as a hub-format .tar.gz (module at the root) with a metadata .json beside it."""
    from hubcli.hub.publish import export_module

    _start(quiet, json_output)
    packed = export_module(source, output, name, version, task, license, description, as_, overwrite)
    if json_output:
        console.emit_json("export-module", packed.to_json())
        return
    meta = packed.metadata
    console.info(f"{meta['name']} {meta['version']} ({meta['task']}): {console.human_size(meta['size'])}, sha256 {meta['sha256']}")
    console.info(f"metadata: {packed.metadata_path}")
    typer.echo(str(packed.archive))


@app.command("publish")
def publish_command(
    archive: Annotated[Path, typer.Argument(help="A module .tar.gz (from export-module).", show_default=False)],
    registry: Annotated[str, typer.Option("--registry", help="Registry directory (served as is by any static HTTP server).", show_default=False)],
    name: Annotated[Optional[str], typer.Option("--name", help="owner/model (default: from the metadata beside the archive).", show_default=False)] = None,
    version: Annotated[Optional[str], typer.Option("--version", help="Version (default: from the metadata). Published versions are immutable.", show_default=False)] = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Check a module archive as pull would and add it to a registry as a new, immutable version."""
    from hubcli.hub.publish import publish_module

    _start(quiet, json_output)
    published = publish_module(archive, registry, name, version)
    if json_output:
        console.emit_json("publish", published.to_json())
        return
    console.info(f"published {published.registry_path} {published.version} to {published.registry} (sha256 {published.sha256})")
    console.info(f"pull it with: hubcli pull {published.handle} --mirror {published.registry}")
    typer.echo(str(published.archive))


def main() -> None:
    """Console-script entry point: run the app, turning every failure into one stderr line."""
    from hubcli import quiet_tensorflow

    quiet_tensorflow.install()
    # A CI timeout or `kill` sends SIGTERM: unwind like Ctrl-C, so staging dirs, temp files
    # and locks are cleaned up and a partial download is kept for resuming.
    signal.signal(signal.SIGTERM, _terminate)
    try:
        returned = app(standalone_mode=False)
    except HubcliError as err:
        console.error_line(str(err))
        sys.exit(err.exit_code)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except typer.Abort:
        console.error_line("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        _exit_interrupted()
    except BrokenPipeError:
        _closed_stdout_exit()
    except SystemExit as done:
        # typer answers a closed stdout with exit 1, raised while handling the BrokenPipeError.
        if isinstance(done.__context__, BrokenPipeError):
            _closed_stdout_exit()
        raise
    except Exception as err:  # noqa: BLE001 - last line of defence: never a traceback for users
        if _is_usage_error(err):
            if not err.format_message():
                sys.exit(err.exit_code)  # No command given: the help just printed is the whole answer.
            context = getattr(err, "ctx", None)
            command = context.command_path if context is not None else "hubcli"
            console.error_line(f"{err.format_message()} (see '{command} --help')")
            sys.exit(err.exit_code)
        if os.environ.get("HUBCLI_DEBUG") == "1":
            raise
        console.error_line(f"internal error: {type(err).__name__}: {err} (set HUBCLI_DEBUG=1 for a traceback)")
        sys.exit(70)
    # Without standalone mode typer returns (not raises) a typer.Exit's code, and turns Ctrl-C into Exit(130).
    if returned == 130:
        _exit_interrupted()
    if isinstance(returned, int) and returned:
        sys.exit(returned)


_terminated = False


def _terminate(signum, frame) -> None:
    global _terminated
    _terminated = True
    raise KeyboardInterrupt


def _exit_interrupted() -> None:
    if _terminated:
        console.error_line("terminated")
        sys.exit(128 + signal.SIGTERM)
    console.error_line("interrupted")
    sys.exit(130)


def _closed_stdout_exit() -> None:
    """`hubcli list | head` closes stdout early; that is not an error, and nothing more may be written."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(0)


def _is_usage_error(err: Exception) -> bool:
    # typer vendors click privately (typer._click); its usage errors carry these two attributes.
    return callable(getattr(err, "format_message", None)) and isinstance(getattr(err, "exit_code", None), int)
