"""HTTP downloads against a real local server that injects faults."""

from __future__ import annotations

import hashlib
import os

import pytest

from hubcli.errors import InvalidModuleError, NetworkError, NotFoundError
from hubcli.hub import cache
from hubcli.hub.download import download
from hubcli.hub.http_client import HttpOptions, fetch_json
from tests.helpers.hubserver import make_fake_module_archive, write_partial

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
    hub.faults, hub.stall_seconds = ["partial:12345"], 0.1
    with pytest.raises(NetworkError, match=r"received 12.1 KiB of"):
        download(url, part, HttpOptions(retries=0), progress=False)  # What an interrupted run leaves.
    assert part.stat().st_size == 12345
    result = download(url, part, progress=False)
    assert result.resumed_from == 12345
    assert result.sha256 == _sha(fake_archive)
    gets = hub.requests_to("/files/")
    assert _range_starts(gets) == [12345] and gets[1].headers["If-Range"].startswith('"')  # the ETag the part began with


def test_part_file_longer_than_the_resource_restarts(hub, fake_archive, tmp_path):
    url = hub.put_file("m.tar.gz", fake_archive)
    part = write_partial(tmp_path / "m.part", fake_archive, 0, content=b"x" * (fake_archive.stat().st_size + 10))
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


def test_gcs_objects_are_pulled_over_https_and_resume(hub, fake_archive, monkeypatch):
    # Cloud Storage's public endpoint serves gs://bucket/object at /bucket/object; here the server's /files/.
    from hubcli.config import Settings
    from hubcli.hub.handles import parse_handle
    from hubcli.hub.pull import pull

    monkeypatch.setenv("HUBCLI_GCS_ENDPOINT", hub.base_url)
    hub.put_file("tiny.tar.gz", fake_archive)
    settings = Settings.load()
    handle = "gs://files/tiny.tar.gz"
    hub.faults = ["drop"]
    result = pull(handle, settings, progress=False)
    assert result.sha256 == _sha(fake_archive) and (result.path / "saved_model.pb").is_file()
    gets = hub.requests_to("/files/tiny.tar.gz")
    assert len(gets) == 2 and _range_starts(gets)[0] > 0  # the retry resumed where the drop cut it
    assert not cache.EntryPaths(settings.cache_dir, parse_handle(handle, settings).cache_dir_name).part.exists()

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

    from tests.helpers.cli_run import run_in_terminal

    archive = make_fake_module_archive(tmp_path / "big.tar.gz", payload_bytes=3_000_000)
    handle = hub.add_tfhub_module("google/tiny/1", archive)
    part = hub.cache_dir / f"{hashlib.sha1(handle.encode()).hexdigest()}.part"
    write_partial(part, archive, 2_000_000)  # What an interrupted pull left.
    hub.throttle_bps = 1_000_000
    frames = run_in_terminal(["pull", handle], stream="stderr")
    scale = {"": 1, "k": 1024, "M": 1024**2, "G": 1024**3}
    rates = [float(n) * scale[unit] for n, unit in re.findall(r"([\d.]+)([kMG]?)B/s", "\n".join(frames))]
    assert rates, frames
    # The server sends at most throttle_bps; kept bytes counted as just received showed 20x that.
    assert max(rates) < 3 * hub.throttle_bps, rates


# --- resuming only what is still the same file ----------------------------------------------------------


def _interrupted(hub, url, part, keep=50_000):
    """Leave ``keep`` bytes of ``url`` in ``part``, as a run that lost its connection does."""
    hub.faults, hub.stall_seconds = [f"partial:{keep}"], 0.1
    with pytest.raises(NetworkError):
        download(url, part, HttpOptions(retries=0), progress=False)
    assert part.stat().st_size == keep


def _plain_tar(path, seed):
    """An uncompressed module archive: nothing in it would notice a splice."""
    import io
    import random
    import tarfile

    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("saved_model.pb")
        info.size = 200_000
        tar.addfile(info, io.BytesIO(random.Random(seed).randbytes(info.size)))
    return path


@pytest.mark.parametrize(
    "validators, honour_if_range, statuses",
    [
        ({"etag", "last-modified"}, True, [200, 200]),  # If-Range with the stale ETag: the new file, whole
        ({"last-modified"}, True, [200, 200]),  # the date serves as the validator
        ({"etag"}, False, [200, 206, 200]),  # the server ignores If-Range: its 206 carries the new ETag
        (set(), True, [200, 200]),  # no validator at all: never resumed
        ({"weak-etag"}, True, [200, 200]),  # a weak ETag may not be used for ranges
    ],
    ids=["etag", "last-modified", "if-range-ignored", "no-validators", "weak-etag"],
)
def test_a_file_that_changed_between_attempts_is_never_spliced(hub, tmp_path, validators, honour_if_range, statuses):
    old, new = _plain_tar(tmp_path / "v1.tar", 1), _plain_tar(tmp_path / "v2.tar", 2)
    assert old.stat().st_size == new.stat().st_size
    url = hub.put_file("m.tar", old)
    hub.send_validators, hub.honour_if_range = frozenset(validators), honour_if_range
    part = tmp_path / "m.part"
    _interrupted(hub, url, part)
    os.utime(new, (old.stat().st_mtime + 100,) * 2)
    hub.replace_file("m.tar", new)
    result = download(url, part, progress=False)
    assert result.sha256 == _sha(new) == _sha(part)
    assert [r.status for r in hub.requests_to("/files/")] == statuses
    if not validators or validators == {"weak-etag"}:
        assert "Range" not in hub.requests_to("/files/")[1].headers


def test_a_part_without_its_record_is_not_resumed(hub, fake_archive, tmp_path):
    url = hub.put_file("m.tar.gz", fake_archive)
    part = tmp_path / "m.part"
    part.write_bytes(b"left by something else")
    result = download(url, part, progress=False)
    assert result.resumed_from == 0 and result.sha256 == _sha(fake_archive)
    assert "Range" not in hub.requests_to("/files/")[0].headers


def test_an_unchanged_file_is_resumed_with_if_range(hub, fake_archive, tmp_path):
    url = hub.put_file("m.tar.gz", fake_archive)
    part = tmp_path / "m.part"
    _interrupted(hub, url, part)
    result = download(url, part, progress=False)
    assert result.resumed_from == 50_000 and result.sha256 == _sha(fake_archive)
    resumed = hub.requests_to("/files/")[1]
    assert resumed.status == 206 and resumed.headers["If-Range"].startswith('"')


# --- failing at once, and naming why ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "location, message",
    [
        ("file:///etc/passwd", "redirected to file:///etc/passwd, which is not http(s)"),
        ("ftp://example.com/m.tar.gz", "redirected to ftp://example.com/m.tar.gz, which is not http(s)"),
        ("javascript:alert(1)", "redirected to javascript:alert(1), which is not http(s)"),
    ],
)
def test_redirect_to_something_that_is_not_http_fails_at_once(hub, tmp_path, location, message):
    url = hub.put_page("/go", 302, headers={"Location": location})
    with pytest.raises(NetworkError, match=message.replace("(", r"\(").replace(")", r"\)")):
        download(url, tmp_path / "m.part", progress=False)
    assert len(hub.requests_to("/go")) == 1


def test_redirect_loop_fails_at_once_naming_it(hub, tmp_path):
    hub.put_page("/a", 302, headers={"Location": "/b"})
    hub.put_page("/b", 301, headers={"Location": f"{hub.base_url}/a"})
    with pytest.raises(NetworkError, match=r"redirect loop: .*/b redirects back to .*/a"):
        download(f"{hub.base_url}/a", tmp_path / "m.part", progress=False)
    assert len(hub.requests_to("/a")) == 1 and len(hub.requests_to("/b")) == 1


def test_endless_redirects_stop(hub, tmp_path):
    for hop in range(15):
        hub.put_page(f"/hop{hop}", 307, headers={"Location": f"/hop{hop + 1}"})
    with pytest.raises(NetworkError, match="more than 10 redirects"):
        download(f"{hub.base_url}/hop0", tmp_path / "m.part", progress=False)


def test_unknown_host_fails_at_once_unless_retries_were_asked_for(tmp_path, monkeypatch):
    monkeypatch.delenv("HUBCLI_RETRIES", raising=False)
    monkeypatch.setenv("HUBCLI_BACKOFF", "30")  # Were it retried, this test would take minutes.
    with pytest.raises(NetworkError, match="no-such-host.invalid: host name not found.*not retried"):
        download("http://no-such-host.invalid/m.tar.gz", tmp_path / "m.part", progress=False)
    monkeypatch.setenv("HUBCLI_RETRIES", "1")
    monkeypatch.setenv("HUBCLI_BACKOFF", "0.01")
    with pytest.raises(NetworkError, match="host name not found .gave up after 2 attempts"):
        download("http://no-such-host.invalid/m.tar.gz", tmp_path / "m.part", progress=False)


@pytest.mark.parametrize(
    "content_type, body",
    [
        ("text/html; charset=utf-8", "<!DOCTYPE html><html><head><title>Sign in to Wi-Fi</title></head></html>"),
        ("application/octet-stream", "\n  <html><body>Please log in</body></html>"),
        ("text/html", ""),
    ],
    ids=["content-type", "first-bytes", "empty-html"],
)
def test_html_page_where_an_archive_was_expected_says_so(hub, tmp_path, content_type, body):
    url = hub.put_page("/portal/model.tar.gz", 200, body, {"Content-Type": content_type})
    part = tmp_path / "m.part"
    with pytest.raises(InvalidModuleError, match=r"model.tar.gz is an HTML page .*, not a module archive: a login or captive-portal page"):
        download(url, part, progress=False)
    assert not part.exists()


def test_archive_served_as_text_html_is_still_an_archive(hub, fake_archive, tmp_path):
    url = hub.put_page("/odd/model.tar.gz", 200, fake_archive.read_bytes(), {"Content-Type": "text/html"})
    assert download(url, tmp_path / "m.part", progress=False).sha256 == _sha(fake_archive)


# --- slow servers: a speed limit and an overall deadline -----------------------------------------------------


def test_a_trickling_server_is_cut_off_by_the_speed_limit(hub, fake_archive, tmp_path, monkeypatch):
    url = hub.put_file("m.tar.gz", fake_archive)
    hub.faults = ["trickle"]  # 20 bytes/s: a 200 kB archive would take three hours
    monkeypatch.setenv("HUBCLI_SPEED_LIMIT", "1000")
    monkeypatch.setenv("HUBCLI_SPEED_TIME", "1")
    monkeypatch.setenv("HUBCLI_RETRIES", "0")
    with pytest.raises(NetworkError, match=r"transfer slower than 1000 bytes/s for 1 s .*gave up after 1 attempt; received \d+ B of 200.3 KiB"):
        download(url, tmp_path / "m.part", progress=False)


def test_the_overall_timeout_ends_a_download_that_keeps_moving(hub, fake_archive, tmp_path, monkeypatch):
    url = hub.put_file("m.tar.gz", fake_archive)
    hub.faults = ["trickle"] * 10
    monkeypatch.setenv("HUBCLI_SPEED_LIMIT", "0")  # Only the deadline is left to stop it.
    monkeypatch.setenv("HUBCLI_TIMEOUT", "1.5")
    with pytest.raises(NetworkError, match=r"gave up after --timeout 1.5 s .*received \d+ B of"):
        download(url, tmp_path / "m.part", progress=False)


def test_the_overall_timeout_covers_waiting_between_retries(hub, fake_archive, tmp_path, monkeypatch):
    url = hub.put_file("m.tar.gz", fake_archive)
    hub.faults = ["500"] * 10
    monkeypatch.setenv("HUBCLI_BACKOFF", "20")
    monkeypatch.setenv("HUBCLI_TIMEOUT", "1")
    with pytest.raises(NetworkError, match=r"gave up after --timeout 1 s \(.*HTTP 500"):
        download(url, tmp_path / "m.part", progress=False)
    assert len(hub.requests_to("/files/")) == 1  # It did not sleep 20 s for a retry it could not make.
