"""The catalog, user aliases, and the `list` / `search` commands (run as real subprocesses)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hubcli.config import Settings
from hubcli.errors import UsageError
from hubcli.hub import catalog, local_modules, registry
from hubcli.hub.handles import parse_handle
from tests.helpers.cli_run import run_hubcli, run_in_terminal
from tests.test_registry import make_archive, serve  # noqa: F401 - `serve` is a fixture

REQUIRED = {
    "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large",
    *(f"efficientnet_lite{n}" for n in range(5)), "efficientnet_v2_s", "inception_v3", "resnet_50",
    "nnlm-en-dim50", "nnlm-en-dim128", "universal-sentence-encoder", "gnews-swivel-20dim",
}
ENTRY_KEYS = {"name", "handle", "task", "input", "image_size", "output_dim", "description", "source", "versions"}


@pytest.fixture
def config_file(tmp_path, monkeypatch):
    """An empty config file location that tests may fill; HUBCLI_CONFIG points at it."""
    path = tmp_path / "config.toml"
    monkeypatch.setenv("HUBCLI_CONFIG", str(path))
    return path


@pytest.fixture
def settings(config_file):
    return Settings.load()


# --- library -----------------------------------------------------------------


def test_builtin_catalog_covers_the_required_modules(settings):
    by_name = {e.name: e for e in catalog.entries(settings)}
    assert set(by_name) >= REQUIRED
    sizes = [by_name[f"efficientnet_lite{n}"].image_size for n in range(5)]
    assert sizes == [(224, 224), (240, 240), (260, 260), (280, 280), (300, 300)]
    expected_dims = ("mobilenet_v2", "mobilenet_v3_small", "inception_v3", "universal-sentence-encoder", "gnews-swivel-20dim")
    dims = {name: by_name[name].output_dim for name in expected_dims}
    assert dims == {"mobilenet_v2": 1280, "mobilenet_v3_small": 1024, "inception_v3": 2048, "universal-sentence-encoder": 512, "gnews-swivel-20dim": 20}
    assert by_name["efficientnet_v2_s"].image_size == (384, 384)


def test_every_builtin_entry_is_a_consistent_pinned_hub_handle(settings):
    for entry in catalog.entries(settings):
        if local_modules.conversion_for(entry.handle):  # on no hub: hubcli builds it (tests/test_local_modules.py)
            continue
        handle = parse_handle(entry.handle, settings)
        assert handle.kind == "tfhub" and handle.version, entry.name  # pinned: reproducible
        assert entry.output_dim and entry.output_dim > 0
        if entry.task.startswith("image-"):
            assert entry.input == "image" and entry.image_size, entry.name
            assert "feature" in entry.handle, entry.name  # feature-vector variants, not classifiers
        else:
            assert (entry.task, entry.input, entry.image_size) == ("text-embedding", "string", None), entry.name


def test_find_is_case_and_dash_insensitive(settings):
    assert catalog.find("EfficientNet-Lite3", settings).name == "efficientnet_lite3"
    assert catalog.find("nnlm_en_dim128", settings).name == "nnlm-en-dim128"
    assert catalog.find("mobilenet", settings) is None


def test_search_matches_every_word(settings):
    assert [e.name for e in catalog.search("efficientnet lite", settings)] == [f"efficientnet_lite{n}" for n in range(5)]
    assert {e.name for e in catalog.search("TEXT-embedding", settings)} == {
        "nnlm-en-dim50", "nnlm-en-dim128", "universal-sentence-encoder", "gnews-swivel-20dim",
        "universal-sentence-encoder-multilingual", "all-minilm-l6-v2",
    }
    assert [e.name for e in catalog.search("resnet_v2", settings)] == ["resnet_50"]  # matches the handle
    assert catalog.search("mobilenet text", settings) == []


def test_suggest(settings):
    assert catalog.suggest("mobilnet_v2", settings)[0] == "mobilenet_v2"
    assert catalog.suggest("universal-sentence", settings) == ["universal-sentence-encoder", "universal-sentence-encoder-multilingual"]
    assert catalog.suggest("qqqq", settings) == []


def test_filter_task(settings):
    everything = catalog.entries(settings)
    image = catalog.filter_task(everything, "image")
    assert image == catalog.filter_task(everything, "image-feature-vector")
    assert len(image) == 11 and all(e.input == "image" for e in image)
    assert catalog.filter_task(everything, "imag") == []


def test_user_aliases_extend_and_override(config_file):
    config_file.write_text(
        '[aliases.my-encoder]\nhandle = "https://models.example/enc.tar.gz"\ntask = "text-embedding"\n'
        'input = "string"\noutput_dim = 64\ndescription = "our encoder"\n'
        '[aliases.Mobilenet-V2]\nhandle = "https://tfhub.dev/google/imagenet/mobilenet_v2_140_224/feature_vector/5"\n'
        "image_size = 224\noutput_dim = 1792\n"
    )
    settings = Settings.load()
    by_name = {e.name: e for e in catalog.entries(settings)}
    assert by_name["my-encoder"].source == "config" and by_name["my-encoder"].output_dim == 64
    assert "mobilenet_v2" not in by_name  # replaced, not duplicated
    assert by_name["Mobilenet-V2"].image_size == (224, 224) and by_name["Mobilenet-V2"].output_dim == 1792
    assert [e.name for e in catalog.search("our encoder", settings)] == ["my-encoder"]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('handle = "x.tar.gz"\noutput_dims = 3', "unknown keys: output_dims"),
        ('handle = "x.tar.gz"\noutput_dim = -3', "output_dim must be a positive integer"),
        ('handle = "x.tar.gz"\nimage_size = [1, 2, 3]', "image_size must be"),
    ],
)
def test_bad_user_alias_is_a_usage_error(config_file, table, message):
    config_file.write_text(f"[aliases.mine]\n{table}\n")
    with pytest.raises(UsageError, match=message):
        catalog.entries(Settings.load())


def test_registry_entries(tmp_path):
    root = tmp_path / "registry"
    archive = make_archive(tmp_path / "a.tar.gz")
    metadata = {"task": "image-classification", "input": "image", "image_size": [32, 32], "output_dim": 5, "description": "flowers"}
    registry.add_version(root, "acme/flowers", "1", archive, metadata)
    registry.add_version(root, "acme/flowers", "2", archive, metadata)
    registry.add_version(root, "acme/encoder", "1", archive, {"output_dim": "not a number", "image_size": "big"})

    encoder, flowers = catalog.registry_entries(str(root))
    assert (flowers.name, flowers.versions, flowers.handle) == ("acme/flowers", ("1", "2"), str(root / "acme/flowers/2.tar.gz"))
    assert (flowers.task, flowers.image_size, flowers.output_dim, flowers.source) == ("image-classification", (32, 32), 5, str(root))
    assert (encoder.output_dim, encoder.image_size, encoder.task) == (None, None, None)  # bad metadata is just unknown
    assert parse_handle(flowers.handle, Settings.load()).kind == "local_archive"


# --- CLI ---------------------------------------------------------------------


def test_list_json_schema(config_file):
    result = run_hubcli("list", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert (document["schema"], document["source"], document["task"]) == ("hubcli.list/1", "catalog", None)
    assert all(set(entry) == ENTRY_KEYS | {"local"} for entry in document["entries"])  # "local": what this machine holds
    by_name = {e["name"]: e for e in document["entries"]}
    assert set(by_name) >= REQUIRED
    assert by_name["efficientnet_lite4"]["image_size"] == [300, 300]
    assert by_name["resnet_50"]["handle"] == "https://tfhub.dev/google/imagenet/resnet_v2_50/feature_vector/5"


def test_list_task_filter_and_table(config_file):
    document = json.loads(run_hubcli("list", "--task", "text", "--json").stdout)
    assert {e["task"] for e in document["entries"]} == {"text-embedding"} and len(document["entries"]) == 6
    table = run_hubcli("list", "--task", "text")
    assert table.returncode == 0
    assert "universal-sentence-encoder" in table.stdout and "mobilenet_v2" not in table.stdout
    # A task that matches nothing names the tasks there are, instead of drawing an empty table.
    none = run_hubcli("list", "--task", "image-clasification")
    assert (none.returncode, none.stdout) == (0, "")
    assert "no entries with task 'image-clasification'" in none.stderr and "text-embedding" in none.stderr


def test_list_shows_user_aliases(config_file):
    config_file.write_text('[aliases.my-encoder]\nhandle = "https://models.example/enc.tar.gz"\n')
    document = json.loads(run_hubcli("list", "--json").stdout)
    mine = [e for e in document["entries"] if e["name"] == "my-encoder"]
    assert mine and mine[0]["source"] == "config"
    assert "config" in run_hubcli("list").stdout  # a Source column appears


def test_search_json_and_table(config_file):
    document = json.loads(run_hubcli("search", "swivel", "--json").stdout)
    assert (document["schema"], document["query"]) == ("hubcli.search/1", "swivel")
    assert [e["name"] for e in document["entries"]] == ["gnews-swivel-20dim"]
    assert all(set(e) == ENTRY_KEYS for e in document["entries"])
    table = run_hubcli("search", "lite4")
    assert table.returncode == 0 and "efficientnet_lite4" in table.stdout and "300x300" in table.stdout


def test_search_without_match_suggests(config_file):
    result = run_hubcli("search", "mobilnet_v2")
    assert result.returncode == 0 and result.stdout == ""
    assert "did you mean mobilenet_v2" in result.stderr
    assert json.loads(run_hubcli("search", "mobilnet_v2", "--json").stdout)["entries"] == []


def test_search_needs_a_word(config_file):
    result = run_hubcli("search", "  ")
    assert result.returncode == 2
    assert result.stderr.startswith("error: search needs at least one word") and result.stderr.count("\n") == 1


def test_list_registry_directory_and_url(config_file, tmp_path, serve):  # noqa: F811 - fixture
    root = tmp_path / "registry"
    registry.add_version(root, "acme/flowers", "1", make_archive(tmp_path / "a.tar.gz"), {"task": "image-classification"})
    base = serve(root)
    for source in (str(root), base):
        document = json.loads(run_hubcli("list", "--registry", source, "--json").stdout)
        assert document["source"] == source
        [entry] = document["entries"]
        assert set(entry) == ENTRY_KEYS
        assert (entry["name"], entry["versions"], entry["task"]) == ("acme/flowers", ["1"], "image-classification")
        assert entry["handle"] == registry.archive_location(source, "acme/flowers", "1")
    found = json.loads(run_hubcli("search", "flowers", "--registry", base, "--json").stdout)["entries"]
    assert [e["name"] for e in found] == ["acme/flowers"]
    assert "acme/flowers" in run_hubcli("list", "--registry", base).stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["list", "--registry", "{missing}"], 3, "is not a module registry"),
        (["list", "--registry", "http://127.0.0.1:9/", "--offline"], 4, "offline mode"),
    ],
)
def test_list_registry_errors_are_one_line(config_file, tmp_path, args, code, message):
    result = run_hubcli(*(a.format(missing=tmp_path / "nope") for a in args))
    assert result.returncode == code
    assert result.stderr.startswith("error: ") and message in result.stderr and result.stderr.count("\n") == 1


def test_bad_config_is_one_line(config_file):
    config_file.write_text("[aliases.mine]\nhandle = 'x.tar.gz'\nbogus = 1\n")
    result = run_hubcli("list")
    assert result.returncode == 2
    assert result.stderr.startswith("error: config file") and result.stderr.count("\n") == 1


def test_unknown_alias_through_the_cli(config_file, tmp_path):
    result = run_hubcli("pull", "mobilnet_v2", "--offline", "--cache-dir", str(tmp_path / "cache"))
    assert result.returncode == 3
    assert result.stderr.startswith("error: unknown module alias 'mobilnet_v2'; did you mean mobilenet_v2")
    assert result.stderr.count("\n") == 1
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


# --- import cost -------------------------------------------------------------

_NO_TF_CHECK = """
import sys
import hubcli.hub.handles, hubcli.hub.catalog, hubcli.hub.registry, hubcli.cli.app
from hubcli.cli.app import main
for argv in (["hubcli", "list", "--json"], ["hubcli", "search", "mobilenet", "--json"], ["hubcli", "--help"]):
    sys.argv = argv
    try:
        main()
    except SystemExit as done:
        assert not done.code, done.code
heavy = sorted(m for m in ("tensorflow", "keras", "tensorflow_hub", "numpy") if m in sys.modules)
sys.stderr.write(repr(heavy))
"""


def test_discovery_paths_do_not_import_tensorflow(config_file):
    result = subprocess.run([sys.executable, "-c", _NO_TF_CHECK], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr.endswith("[]")



def test_list_in_a_narrow_terminal_keeps_every_column(config_file):
    lines = run_in_terminal(["list"], columns=60)
    assert max(len(line) for line in lines) <= 60
    header = next(line for line in lines if "Name" in line)
    assert "Dim" in header and "Handle" in header  # Squeezed columns wrap; none disappears.
    assert any("https://" in line for line in lines)
