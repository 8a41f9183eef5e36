"""hubcli and tensorflow_hub 0.16.1 share one cache, in both directions.

The issue's compatibility promise, checked against the real library: a module
pulled by hubcli loads with ``hub.load(handle)`` with the server gone, and a
module downloaded by ``hub.load`` is served by ``hubcli pull --offline``.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers.hubserver import start_server

pytest.importorskip("tensorflow_hub")


@pytest.fixture
def env(tmp_path):
    return {
        **os.environ,
        "HUBCLI_CACHE_DIR": str(tmp_path / "cache"),
        "TFHUB_CACHE_DIR": str(tmp_path / "cache"),
        "HUBCLI_TRUSTED_HOSTS": "127.0.0.1",
        "NO_PROXY": "127.0.0.1",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }


def _serve(archive, name):
    state, server = start_server()
    return state.put_file(name, archive), server


def _stop(server):
    server.shutdown()
    server.server_close()


def _run(argv, env):
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_hub_load_finds_a_module_pulled_by_hubcli(tiny_image_archive, env):
    url, server = _serve(tiny_image_archive, "pulled-by-hubcli.tar.gz")
    try:
        path = _run([sys.executable, "-m", "hubcli", "pull", url, "--quiet"], env).strip().splitlines()[-1]
    finally:
        _stop(server)
    probe = (
        "import numpy as np, tensorflow_hub as hub\n"
        f"module = hub.load({url!r})\n"
        "print(module(np.zeros((1, 32, 32, 3), np.float32), training=False).shape)\n"
        f"print(hub.resolve({url!r}))\n"
    )
    shape, resolved = _run([sys.executable, "-c", probe], env).strip().splitlines()[-2:]
    assert shape == "(1, 8)"
    assert os.path.realpath(resolved) == os.path.realpath(path)


def test_hubcli_offline_finds_a_module_downloaded_by_hub_load(tiny_image_archive, env):
    url, server = _serve(tiny_image_archive, "pulled-by-tfhub.tar.gz")
    try:
        resolved = _run([sys.executable, "-c", f"import tensorflow_hub as hub; print(hub.resolve({url!r}))"], env)
    finally:
        _stop(server)
    path = _run([sys.executable, "-m", "hubcli", "pull", url, "--offline", "--quiet"], env).strip().splitlines()[-1]
    assert os.path.realpath(path) == os.path.realpath(resolved.strip().splitlines()[-1])
    listing = _run([sys.executable, "-m", "hubcli", "cache", "ls", "--json"], env)
    assert url in listing


def test_a_url_without_an_archive_suffix_is_one_module_for_both(tiny_image_archive, env):
    state, server = start_server()
    url = state.put_page("/models/foo/1", 200, tiny_image_archive.read_bytes(), {"Content-Type": "application/octet-stream"})
    try:
        resolved = _run([sys.executable, "-c", f"import tensorflow_hub as hub; print(hub.resolve({url!r}))"], env)
    finally:
        _stop(server)
    assert state.requests_to("/models/foo/1")[0].query == {"tf-hub-format": "compressed"}
    path = _run([sys.executable, "-m", "hubcli", "pull", url, "--offline", "--quiet"], env).strip().splitlines()[-1]
    assert os.path.realpath(path) == os.path.realpath(resolved.strip().splitlines()[-1])
