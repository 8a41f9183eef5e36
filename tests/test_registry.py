"""Registries: layout, immutability, atomic and concurrent publishing, reading over real HTTP."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import multiprocessing
import socket
import tarfile
import threading
import time
from pathlib import Path

import pytest
import requests

from hubcli.config import Settings
from hubcli.errors import IntegrityError, NetworkError, NotFoundError, UsageError
from hubcli.hub import registry
from hubcli.hub.handles import parse_handle

# The local hub server (for faults on a remote index).
pytest_plugins = ["tests.helpers.hubserver"]


def make_archive(path: Path, payload: bytes = b"saved model bytes") -> Path:
    """A small real .tar.gz with a saved_model.pb member."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("saved_model.pb")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    path.write_bytes(buffer.getvalue())
    return path


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def root(tmp_path):
    return tmp_path / "registry"


@pytest.fixture
def serve(tmp_path):
    """Serve directories over a real HTTP server on 127.0.0.1; yields a function dir -> base URL."""
    servers = []

    def start(directory: Path) -> str:
        handler = functools.partial(QuietHandler, directory=str(directory))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_add_version_writes_the_layout(root, tmp_path):
    archive = make_archive(tmp_path / "a.tar.gz")
    published = registry.add_version(root, "acme/flowers", "1", archive, {"task": "image-classification"})

    stored = root / "acme/flowers/1.tar.gz"
    assert stored.read_bytes() == archive.read_bytes()
    assert published.archive == str(stored)
    assert published.sha256 == sha256_of(archive) and published.size == archive.stat().st_size

    index = json.loads((root / "index.json").read_text())
    assert index == {
        "schema": "hubcli.registry/1",
        "modules": {
            "acme/flowers": {
                "latest": "1",
                "versions": {
                    "1": {
                        "archive": "acme/flowers/1.tar.gz",
                        "sha256": published.sha256,
                        "size": published.size,
                        "metadata": {"task": "image-classification"},
                    }
                },
            }
        },
    }
    metadata = json.loads((root / "acme/flowers/1.json").read_text())
    assert metadata["sha256"] == published.sha256 and metadata["version"] == "1"
    assert metadata["task"] == "image-classification" and metadata["registry_path"] == "acme/flowers"
    assert not list(root.rglob("*.tmp"))


def test_latest_is_the_highest_version_not_the_newest(root, tmp_path):
    for version in ("2", "10", "1"):
        registry.add_version(root, "acme/flowers", version, make_archive(tmp_path / f"{version}.tar.gz", version.encode()), {})
    assert registry.resolve_latest(root, "acme/flowers") == "10"
    assert registry.sorted_versions(["1.10", "1.2", "1.9.1"]) == ["1.2", "1.9.1", "1.10"]
    found = registry.find_version(root, "acme/flowers")
    assert found.version == "10" and found.archive == str(root / "acme/flowers/10.tar.gz")
    assert found.sha256 == sha256_of(tmp_path / "10.tar.gz")


def test_published_files_are_readable_by_a_web_server(root, tmp_path):
    import os
    import stat

    umask = os.umask(0o022)
    try:
        registry.add_version(root, "acme/flowers", "1", make_archive(tmp_path / "a.tar.gz"), {})
    finally:
        os.umask(umask)
    for name in ("index.json", "acme/flowers/1.tar.gz", "acme/flowers/1.json"):
        assert stat.S_IMODE((root / name).stat().st_mode) == 0o644, name


def test_versions_are_immutable(root, tmp_path):
    first = make_archive(tmp_path / "first.tar.gz", b"first")
    registry.add_version(root, "acme/flowers", "1", first, {"n": 1})
    index_before = (root / "index.json").read_bytes()

    with pytest.raises(UsageError, match="already published"):
        registry.add_version(root, "acme/flowers", "1", make_archive(tmp_path / "second.tar.gz", b"second"), {"n": 2})
    assert (root / "acme/flowers/1.tar.gz").read_bytes() == first.read_bytes()
    assert (root / "index.json").read_bytes() == index_before
    assert json.loads((root / "acme/flowers/1.json").read_text())["n"] == 1


def test_an_unreferenced_archive_from_a_crashed_publish_is_replaced(root, tmp_path):
    (root / "acme/flowers").mkdir(parents=True)
    (root / "acme/flowers/1.tar.gz").write_bytes(b"half written")
    archive = make_archive(tmp_path / "a.tar.gz")
    registry.add_version(root, "acme/flowers", "1", archive, {})
    assert (root / "acme/flowers/1.tar.gz").read_bytes() == archive.read_bytes()


def test_refuses_what_is_not_a_gzip_archive(root, tmp_path):
    plain = tmp_path / "m.tar.gz"
    plain.write_bytes(b"not gzip at all")
    with pytest.raises(UsageError, match="not a gzip"):
        registry.add_version(root, "acme/flowers", "1", plain, {})
    with pytest.raises(NotFoundError):
        registry.add_version(root, "acme/flowers", "1", tmp_path / "missing.tar.gz", {})
    assert not (root / "index.json").exists()


@pytest.mark.parametrize(("path", "version"), [("../escape", "1"), ("acme//x", "1"), ("/abs", "1"), ("acme/x", "../1"), ("acme/x", "")])
def test_unsafe_names_are_refused(root, tmp_path, path, version):
    with pytest.raises(UsageError, match="bad"):
        registry.add_version(root, path, version, make_archive(tmp_path / "a.tar.gz"), {})
    assert not root.exists() or not any(root.rglob("*.tar.gz"))


def test_cannot_publish_to_a_url(tmp_path):
    with pytest.raises(UsageError, match="publish to a directory"):
        registry.add_version("https://models.example/hub", "a/b", "1", make_archive(tmp_path / "a.tar.gz"), {})


def test_metadata_must_be_json(root, tmp_path):
    with pytest.raises(UsageError, match="JSON"):
        registry.add_version(root, "a/b", "1", make_archive(tmp_path / "a.tar.gz"), {"when": object()})


def _publish(root: str, registry_path: str, version: str, archive: str, start_at: float) -> str:
    time.sleep(max(0.0, start_at - time.time()))
    try:
        registry.add_version(root, registry_path, version, archive, {"archive": archive})
        return "ok"
    except UsageError as err:
        return f"refused: {err}"


def test_concurrent_publishers_lose_no_entries(root, tmp_path):
    jobs = []
    for n in range(8):
        archive = make_archive(tmp_path / f"{n}.tar.gz", f"module {n}".encode())
        jobs.append((str(root), f"acme/m{n % 2}", str(n), str(archive)))
    start_at = time.time() + 0.5
    with multiprocessing.get_context("fork").Pool(4) as pool:
        results = pool.starmap(_publish, [(*job, start_at) for job in jobs])

    assert results == ["ok"] * 8
    modules = registry.read_index(root)["modules"]
    assert sorted(modules["acme/m0"]["versions"]) == ["0", "2", "4", "6"]
    assert sorted(modules["acme/m1"]["versions"]) == ["1", "3", "5", "7"]
    for _, registry_path, version, archive in jobs:
        found = registry.find_version(root, registry_path, version)
        assert found.sha256 == sha256_of(Path(archive)) == sha256_of(Path(found.archive))
    assert not list(root.rglob("*.tmp"))


def test_concurrent_publishes_of_one_version_exactly_one_wins(root, tmp_path):
    archives = [str(make_archive(tmp_path / f"{n}.tar.gz", f"candidate {n}".encode())) for n in range(4)]
    start_at = time.time() + 0.5
    with multiprocessing.get_context("fork").Pool(4) as pool:
        results = pool.starmap(_publish, [(str(root), "acme/one", "1", archive, start_at) for archive in archives])

    assert results.count("ok") == 1
    assert all("already published" in r for r in results if r != "ok")
    winner = archives[results.index("ok")]
    found = registry.find_version(root, "acme/one", "1")
    assert found.metadata == {"archive": winner}
    assert sha256_of(Path(found.archive)) == sha256_of(Path(winner)) == found.sha256


def test_read_index_errors(root, tmp_path):
    with pytest.raises(NotFoundError, match="not a module registry"):
        registry.read_index(root)
    root.mkdir()
    (root / "index.json").write_text("{not json")
    with pytest.raises(IntegrityError, match="not valid JSON"):
        registry.read_index(root)
    (root / "index.json").write_text(json.dumps({"schema": "other/1", "modules": {}}))
    with pytest.raises(IntegrityError, match="expected schema"):
        registry.read_index(root)
    (root / "index.json").write_text(json.dumps({"schema": registry.SCHEMA, "modules": {"a/b": {"latest": "2", "versions": {}}}}))
    with pytest.raises(IntegrityError, match="'a/b'"):
        registry.read_index(root)


def test_find_version_names_what_exists(root, tmp_path):
    registry.add_version(root, "acme/flowers", "1", make_archive(tmp_path / "a.tar.gz"), {})
    with pytest.raises(NotFoundError, match="did you mean acme/flowers"):
        registry.find_version(root, "acme/flower")
    with pytest.raises(NotFoundError, match=r"published: 1\)"):
        registry.find_version(root, "acme/flowers", "7")


def test_registry_over_http(root, tmp_path, serve):
    archive = make_archive(tmp_path / "a.tar.gz")
    registry.add_version(root, "acme/flowers", "3", archive, {"task": "image-classification"})
    base = serve(root)

    assert registry.read_index(base) == registry.read_index(root)
    assert registry.resolve_latest(base, "acme/flowers") == "3"
    found = registry.find_version(base.rstrip("/"), "acme/flowers")
    assert found.archive == base + "acme/flowers/3.tar.gz"
    body = requests.get(found.archive, timeout=10).content
    assert hashlib.sha256(body).hexdigest() == found.sha256
    assert requests.get(registry.metadata_location(base, "acme/flowers", "3"), timeout=10).json()["version"] == "3"


def test_http_errors(tmp_path, serve, monkeypatch):
    monkeypatch.setenv("HUBCLI_RETRIES", "1")
    monkeypatch.setenv("HUBCLI_BACKOFF", "0.01")
    empty = tmp_path / "empty"
    empty.mkdir()
    base = serve(empty)
    with pytest.raises(NotFoundError, match="not a module registry"):
        registry.read_index(base)
    with pytest.raises(NetworkError, match="offline"):
        registry.read_index(base, offline=True)
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/"
    with pytest.raises(NetworkError, match="connection refused .gave up after 2 attempts"):
        registry.read_index(closed)


def test_archive_location():
    with pytest.raises(UsageError, match="bad registry path"):
        registry.archive_location("https://m.example/hub/", "a b/c", "1")
    assert registry.archive_location("https://m.example/hub/", "acme/c", "1.0") == "https://m.example/hub/acme/c/1.0.tar.gz"
    assert registry.archive_location("/srv/hub", "acme/c", "2") == "/srv/hub/acme/c/2.tar.gz"


def test_handles_map_onto_registry_paths(root, tmp_path, monkeypatch):
    """A mirror holds hub modules under the registry_path and version parse_handle gives."""
    monkeypatch.setenv("HUBCLI_CONFIG", str(tmp_path / "none.toml"))
    settings = Settings.load(cache_dir=tmp_path / "cache")
    tfhub = parse_handle("https://tfhub.dev/google/imagenet/mobilenet_v2_100_224/feature_vector/5", settings)
    kaggle = parse_handle("google/mobilenet-v2/TensorFlow2/100-224-feature-vector/2", settings)
    latest = parse_handle("https://www.kaggle.com/models/google/mobilenet-v2/tensorFlow2/100-224-feature-vector", settings)

    assert registry.archive_location(root, tfhub.registry_path, tfhub.version) == str(
        root / "google/imagenet/mobilenet_v2_100_224/feature_vector/5.tar.gz"
    )
    registry.add_version(root, kaggle.registry_path, kaggle.version, make_archive(tmp_path / "k.tar.gz"), {})
    assert registry.archive_location(root, kaggle.registry_path, kaggle.version) == str(
        root / "google/mobilenet-v2/tensorflow2/100-224-feature-vector/2.tar.gz"
    )
    assert latest.registry_path == kaggle.registry_path
    assert registry.resolve_latest(root, latest.registry_path) == "2"


def test_remote_index_is_fetched_under_the_archive_retry_policy(root, tmp_path, hub):
    registry.add_version(root, "acme/flowers", "1", make_archive(tmp_path / "a.tar.gz"), {})
    hub.mirror_root = root
    hub.faults = ["500", "429"]
    assert registry.resolve_latest(f"{hub.base_url}/mirror", "acme/flowers") == "1"
    assert [r.status for r in hub.requests_to("/mirror/index.json")] == [500, 429, 200]
