"""HTTP downloads against a real local server that injects faults."""

from __future__ import annotations

import hashlib

import pytest

from hubcli.errors import NetworkError, NotFoundError
from hubcli.hub.download import copy_gcs, download
from hubcli.hub.http_client import HttpOptions, fetch_json

# The local hub server and module-archive fixtures.
pytest_plugins = ["tests.helpers.hubserver"]


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tfhub_url(hub, archive, path="google/tiny/1"):
    hub.add_tfhub_module(path, archive)
    return f"{hub.base_url}/tfhub/{path}?tf-hub-format=compressed"


def _range_starts(requests):
    return [int(r.headers["Range"][len("bytes=") : -1]) for r in requests if "Range" in r.headers]


def test_follows_tfhub_to_kaggle_to_signed_storage(hub, fake_archive, tmp_path):
    url = _tfhub_url(hub, fake_archive)
    result = download(url, tmp_path / "m.part", progress=False)
    assert result.sha256 == _sha(fake_archive) == _sha(tmp_path / "m.part")
    assert result.size == fake_archive.stat().st_size
    assert [p.split("?")[0].split("/")[3] for p in result.chain] == ["tfhub", "api", "storage"]
    assert "X-Goog-Signature=" in result.resolved_url
    assert hub.storage_gets()[0].headers["Accept-Encoding"] == "identity"


def test_connection_dropped_mid_body_resumes_with_range(hub, fake_archive, tmp_path):
    url = _tfhub_url(hub, fake_archive)
    hub.faults = ["drop"]
    result = download(url, tmp_path / "m.part", progress=False)
    assert result.sha256 == _sha(fake_archive)
    gets = hub.storage_gets()
    assert len(gets) == 2
    assert 0 < _range_starts(gets)[0] < fake_archive.stat().st_size
    assert gets[1].status == 206
    # The retry went straight to the signed URL, not through tfhub.dev again.
    assert len(hub.requests_to("/tfhub/")) == 1


def test_server_error_then_success(hub, fake_archive, tmp_path):
    url = _tfhub_url(hub, fake_archive)
    hub.faults = ["500", "500"]
    result = download(url, tmp_path / "m.part", progress=False)
    assert result.sha256 == _sha(fake_archive)
    assert [r.status for r in hub.storage_gets()] == [500, 500, 200]


def test_429_retry_after_is_honoured(hub, fake_archive, tmp_path):
    url = _tfhub_url(hub, fake_archive)
    hub.faults = ["429"]
    result = download(url, tmp_path / "m.part", progress=False)
    assert result.sha256 == _sha(fake_archive)
    assert [r.status for r in hub.storage_gets()] == [429, 200]


def test_stalled_body_times_out_and_resumes(hub, fake_archive, tmp_path, monkeypatch):
    monkeypatch.setenv("HUBCLI_READ_TIMEOUT", "0.5")
    hub.stall_seconds = 5
    url = _tfhub_url(hub, fake_archive)
    hub.faults = ["stall"]
    result = download(url, tmp_path / "m.part", progress=False)
    assert result.sha256 == _sha(fake_archive)
    assert _range_starts(hub.storage_gets())[0] > 0


def test_expired_signature_re_resolves_once_from_the_handle_url(hub, fake_archive, tmp_path):
    url = _tfhub_url(hub, fake_archive)
    hub.faults = ["drop+expire"]
    result = download(url, tmp_path / "m.part", progress=False)
    assert result.sha256 == _sha(fake_archive)
    gets = hub.storage_gets()
    assert [r.status for r in gets] == [200, 403, 206]
    assert gets[1].query["X-Goog-Signature"] == gets[0].query["X-Goog-Signature"]
    assert gets[2].query["X-Goog-Signature"] != gets[0].query["X-Goog-Signature"]
    assert len(hub.requests_to("/tfhub/")) == 2  # Resolved again from the original handle URL.


def test_second_expiry_is_an_error_not_a_loop(hub, fake_archive, tmp_path):
    url = _tfhub_url(hub, fake_archive)
    hub.faults = ["drop+expire", "drop+expire"]
    with pytest.raises(NetworkError, match="access denied"):
        download(url, tmp_path / "m.part", progress=False)
    assert len(hub.requests_to("/tfhub/")) == 2


def test_server_ignoring_range_restarts_cleanly(hub, fake_archive, tmp_path):
    hub.ignore_range = True
    url = _tfhub_url(hub, fake_archive)
    hub.faults = ["drop"]
    result = download(url, tmp_path / "m.part", progress=False)
    assert result.sha256 == _sha(fake_archive)
    gets = hub.storage_gets()
    assert "Range" in gets[1].headers and gets[1].status == 200  # Asked to resume, got the whole file.
    assert (tmp_path / "m.part").stat().st_size == fake_archive.stat().st_size


def test_existing_part_file_is_resumed(hub, fake_archive, tmp_path):
    url = hub.put_file("m.tar.gz", fake_archive)
    part = tmp_path / "m.part"
    part.write_bytes(fake_archive.read_bytes()[:12345])
    result = download(url, part, progress=False)
    assert result.resumed_from == 12345
    assert result.sha256 == _sha(fake_archive)
    assert _range_starts(hub.requests_to("/files/")) == [12345]


def test_part_file_longer_than_the_resource_restarts(hub, fake_archive, tmp_path):
    url = hub.put_file("m.tar.gz", fake_archive)
    part = tmp_path / "m.part"
    part.write_bytes(b"x" * (fake_archive.stat().st_size + 10))
    result = download(url, part, progress=False)
    assert result.sha256 == _sha(fake_archive)
    assert [r.status for r in hub.requests_to("/files/")] == [416, 200]


def test_retries_are_bounded(hub, fake_archive, tmp_path):
    url = hub.put_file("m.tar.gz", fake_archive)
    hub.faults = ["500"] * 10
    with pytest.raises(NetworkError, match="gave up after 3 attempts"):
        download(url, tmp_path / "m.part", HttpOptions(retries=2, backoff=0.01), progress=False)
    assert len(hub.requests_to("/files/")) == 3


def test_not_found_is_not_retried(hub, tmp_path):
    with pytest.raises(NotFoundError, match="404"):
        download(f"{hub.base_url}/files/missing.tar.gz", tmp_path / "m.part", progress=False)
    assert len(hub.requests_to("/files/")) == 1


def test_connection_refused_is_a_network_error(tmp_path):
    import socket

    with socket.socket() as probe:  # A port that nobody listens on.
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(NetworkError, match="connection refused"):
        download(f"http://127.0.0.1:{port}/x.tar.gz", tmp_path / "m.part", HttpOptions(retries=1, backoff=0.01), progress=False)


def test_proxy_from_environment_is_used(hub, fake_archive, tmp_path, monkeypatch):
    hub.put_file("m.tar.gz", fake_archive)
    monkeypatch.setenv("HTTP_PROXY", hub.base_url)
    monkeypatch.setenv("NO_PROXY", "")
    monkeypatch.setenv("no_proxy", "")
    # example.invalid never resolves: only a proxy can answer this.
    result = download("http://example.invalid/files/m.tar.gz", tmp_path / "m.part", progress=False)
    assert result.sha256 == _sha(fake_archive)
    assert hub.requests_to("/files/")[0].headers["Host"] == "example.invalid"


def test_unreachable_proxy_is_named_not_the_module_host(hub, tmp_path, monkeypatch):
    import socket

    with socket.socket() as probe:  # A port that nobody listens on.
        probe.bind(("127.0.0.1", 0))
        dead_proxy = f"http://127.0.0.1:{probe.getsockname()[1]}"
    monkeypatch.setenv("HTTP_PROXY", dead_proxy)
    monkeypatch.setenv("NO_PROXY", "")
    monkeypatch.setenv("no_proxy", "")
    # A CI runner with a stale proxy setting: the server is fine, the proxy is not.
    with pytest.raises(NetworkError, match=f"cannot connect to the proxy {dead_proxy} "):
        download(hub.put_file("m.tar.gz", tmp_path), tmp_path / "m.part", HttpOptions(retries=1, backoff=0.01), progress=False)


def test_fetch_json_reads_kaggle_latest_version(hub, fake_archive):
    hub.add_kaggle_module("acme/tiny/tensorflow2/default", 3, fake_archive)
    hub.add_kaggle_module("acme/tiny/tensorflow2/default", 7, fake_archive)
    hub.faults = []
    answer = fetch_json(f"{hub.base_url}/api/v1/models/acme/tiny/tensorflow2/default/get")
    assert answer == {"versionNumber": 7}


def test_gcs_copy_goes_through_tf_io_gfile_and_resumes(fake_archive, tmp_path):
    # tf.io.gfile serves local paths with the same API as gs://; this runs the real gfile code.
    part = tmp_path / "m.part"
    part.write_bytes(fake_archive.read_bytes()[:1000])
    result = copy_gcs(str(fake_archive), part, progress=False)
    assert result.resumed_from == 1000
    assert result.sha256 == _sha(fake_archive)


def test_retry_after_accepts_seconds_and_http_dates():
    import email.utils
    import time

    from hubcli.hub.http_client import retry_after_seconds as _retry_after_seconds

    assert _retry_after_seconds("7") == 7.0
    soon = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 20 < _retry_after_seconds(soon) <= 30
    assert _retry_after_seconds("not a date") is None and _retry_after_seconds(None) is None


def test_resumed_progress_bar_rates_only_the_bytes_it_moves(hub, tmp_path):
    import hashlib
    import re

    from tests.helpers.hubserver import make_fake_module_archive
    from tests.test_cli import run_in_terminal

    archive = make_fake_module_archive(tmp_path / "big.tar.gz", payload_bytes=3_000_000)
    handle = hub.add_tfhub_module("google/tiny/1", archive)
    part = hub.cache_dir / f"{hashlib.sha1(handle.encode()).hexdigest()}.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(archive.read_bytes()[:2_000_000])  # What an interrupted pull left.
    hub.throttle_bps = 1_000_000
    frames = run_in_terminal(["pull", handle], stream="stderr")
    scale = {"": 1, "k": 1024, "M": 1024**2, "G": 1024**3}
    rates = [float(n) * scale[unit] for n, unit in re.findall(r"([\d.]+)([kMG]?)B/s", "\n".join(frames))]
    assert rates, frames
    # The server sends at most throttle_bps; kept bytes counted as just received showed 20x that.
    assert max(rates) < 3 * hub.throttle_bps, rates
