"""One "is this a module" check: pull, archive extraction, the cache and inspect all agree with formats.module_format."""

from __future__ import annotations

import hashlib
import shutil

import pytest

from hubcli.errors import InvalidModuleError
from hubcli.hub import cache
from hubcli.hub.archive import extract_module_archive
from hubcli.savedmodel.formats import is_module_dir, module_format
from hubcli.savedmodel.inspector import inspect_module
from tests.helpers.tiny_modules import build_archive

# Directory layouts, and the format each one is (None: not a module).
LAYOUTS = {
    "tf2": ({"saved_model.pb": b"", "variables/variables.index": b""}, "tf2_saved_model"),
    "text_format": ({"saved_model.pbtxt": b"meta_graphs {}"}, "tf2_saved_model"),
    "tf1_hub": ({"saved_model.pb": b"", "tfhub_module.pb": b"\x08\x03"}, "tf1_hub"),
    "keras_saved_model": ({"saved_model.pb": b"", "keras_metadata.pb": b""}, "keras"),
    "empty": ({}, None),
    "keras_file_inside": ({"model.keras": b"PK"}, None),
    "nested": ({"model/saved_model.pb": b""}, None),
    "hub_module_def_only": ({"tfhub_module.pb": b"\x08\x03"}, None),
    "saved_model_is_a_folder": ({"saved_model.pb/x": b""}, None),
}


def _layout(root, files):
    root.mkdir(parents=True)
    for relative, data in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)
    return root


@pytest.mark.parametrize("name", LAYOUTS)
def test_module_format_of_each_layout(name, tmp_path):
    files, expected = LAYOUTS[name]
    root = _layout(tmp_path / name, files)
    assert module_format(root) == expected
    assert is_module_dir(root) is (expected is not None)


def test_files_and_missing_paths(tmp_path):
    (tmp_path / "model.keras").write_bytes(b"PK")
    (tmp_path / "notes.txt").write_text("hello")
    assert module_format(tmp_path / "model.keras") == "keras"
    assert module_format(tmp_path / "notes.txt") is None
    assert module_format(tmp_path / "absent.keras") is None and module_format(tmp_path / "absent") is None
    assert not is_module_dir(tmp_path / "model.keras")


@pytest.mark.parametrize("name", LAYOUTS)
def test_pull_extraction_and_cache_agree(name, tmp_path, monkeypatch):
    from hubcli import Settings
    from hubcli.hub.pull import pull

    monkeypatch.setenv("HUBCLI_CONFIG", str(tmp_path / "no-config.toml"))
    files, expected = LAYOUTS[name]
    root = _layout(tmp_path / "module", files)
    is_module = expected is not None

    # pull of a local directory (used in place)
    settings = Settings.load(cache_dir=tmp_path / "cache")
    if is_module:
        assert pull(str(root), settings=settings).path == root.resolve()
    else:
        with pytest.raises(InvalidModuleError, match="not a module directory"):
            pull(str(root), settings=settings)

    # extraction of an archive of it
    archive = build_archive(root, tmp_path / "module.tar.gz")
    if is_module:
        extract_module_archive(archive, tmp_path / "extracted")
    else:
        with pytest.raises(InvalidModuleError, match="not a module"):
            extract_module_archive(archive, tmp_path / "extracted")
        assert not (tmp_path / "extracted").exists()

    # the cache's check of an entry tensorflow_hub downloaded (no manifest to compare against)
    name_in_cache = hashlib.sha1(b"https://tfhub.dev/google/m/1").hexdigest()
    shutil.copytree(root, tmp_path / "tfhub_cache" / name_in_cache)
    entry = cache.read_entry(tmp_path / "tfhub_cache", name_in_cache)
    assert entry is not None and entry.origin == "tensorflow_hub"
    assert (cache.quick_problems(entry) == []) is is_module


@pytest.mark.parametrize("fixture", ["tiny_image_module", "tiny_text_module", "tiny_tf1_module"])
def test_module_format_agrees_with_what_inspect_reads(fixture, request, tmp_path):
    module = request.getfixturevalue(fixture)
    assert module_format(module) == inspect_module(module).format
    keras_saved_model = shutil.copytree(module, tmp_path / "keras_saved_model")
    (keras_saved_model / "keras_metadata.pb").write_bytes(b"")
    if module_format(module) != "tf1_hub":  # tfhub_module.pb decides first
        assert module_format(keras_saved_model) == inspect_module(keras_saved_model).format == "keras"
