"""``hubcli pull``: put a module in the shared cache and print where it is."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from hubcli import console
from hubcli.cli.options import (
    CaBundleOpt,
    CacheDirOpt,
    JsonOpt,
    MirrorOpt,
    OfflineOpt,
    QuietOpt,
    TfliteOpt,
    TimeoutOpt,
    load_settings,
    start_output,
)


def pull_command(
    handle: Annotated[
        str,
        typer.Argument(help="tfhub.dev or Kaggle handle/URL, archive URL, gs:// path, local archive or directory, or alias.", show_default=False),
    ],
    *,
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

    start_output(quiet, json_output)
    result = pull(
        handle,
        load_settings(cache_dir, offline, mirror, ca_bundle=ca_bundle, timeout=timeout),
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
