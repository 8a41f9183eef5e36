"""``hubcli extract``: fill a module's feature cache on Apache Beam, here or on a cluster."""

from __future__ import annotations

import logging
import os
from typing import Annotated, Optional

import typer

from hubcli import console
from hubcli.cli.options import CacheDirOpt, ImageModuleOpt, JsonOpt, MirrorOpt, OfflineOpt, QuietOpt, load_settings, start_output


def extract_command(
    data: Annotated[
        Optional[str],
        typer.Argument(help="Class-folder tree (a local path or a URL Beam reads, e.g. gs://...), or a manifest .csv with a path column.", show_default=False),
    ] = None,
    *,
    module: ImageModuleOpt = ...,
    tfds: Annotated[Optional[str], typer.Option("--tfds", help="Use this TFDS dataset (every split) instead of DATA.", show_default=False)] = None,
    runner: Annotated[str, typer.Option("--runner", help="direct (here), dataflow, flink, spark or portable.")] = "direct",
    workers: Annotated[int, typer.Option("--workers", help="Worker processes of the direct runner (workers of dataflow, parallelism of flink).")] = 1,
    beam_option: Annotated[
        Optional[list[str]], typer.Option("--beam-option", help="A Beam pipeline option NAME=VALUE for the runner (repeatable).", show_default=False)
    ] = None,
    features_dir: Annotated[
        Optional[str],
        typer.Option("--features-dir", help="Feature cache to fill (default: <cache dir>/features; a gs:// URL for Dataflow).", show_default=False),
    ] = None,
    output: Annotated[
        Optional[str],
        typer.Option("--output", "-o", help="Folder for manifest.csv, failures.csv and extract.json (default: beside the shards).", show_default=False),
    ] = None,
    image_size: Annotated[Optional[str], typer.Option("--image-size", help="SIZE or HEIGHTxWIDTH, for modules that do not fix it.", show_default=False)] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Most images per forward pass.")] = 32,
    shard_rows: Annotated[Optional[int], typer.Option("--shard-rows", help="Features per shard file (default 8192).", show_default=False)] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Fail when a worker decodes images with another Pillow or libjpeg-turbo than this machine.")] = False,
    cache_dir: CacheDirOpt = None,
    offline: OfflineOpt = None,
    mirror: MirrorOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Compute a frozen module's features of many images on Apache Beam, into the cache retrain-images reads.

    The last stdout line is the folder of the manifest, the list of failures and the summary.

    Example: `hubcli extract ./flowers --module efficientnet_lite0 --workers 2`
    """
    from hubcli.scale.extract import extract
    from hubcli.train.images import parse_image_size

    start_output(quiet, json_output)
    if os.environ.get("HUBCLI_DEBUG") != "1":
        # Beam logs through the root logger (e.g. "apitools not found" at import); stderr is for warnings and errors.
        logging.getLogger().setLevel(logging.ERROR)
    summary = extract(
        data=data, module_handle=module, settings=load_settings(cache_dir, offline, mirror), tfds_name=tfds, runner=runner,
        workers=workers, beam_options=beam_option or [], features_dir=features_dir, output=output,
        image_size=parse_image_size(image_size), batch_size=batch_size, rows_per_shard=shard_rows, strict=strict,
    )
    if json_output:
        console.emit_json("extract", summary)
        return
    counts = summary["counts"]
    console.info(
        f"{counts['examples']} images: {counts['computed']} features computed, {counts['cached']} already cached, "
        f"{counts['duplicates']} duplicates, {counts['failed'] + counts['unreadable']} failed; "
        f"{summary['shards_written']} shard(s) in {summary['features_dir']} in {summary['seconds']:.1f} s"
    )
    typer.echo(summary["output"])
