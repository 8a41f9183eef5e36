"""Resilient HTTP(S) and ``gs://`` downloads into a resumable ``.part`` file.

tensorflow_hub streams a module straight from ``urlopen`` into tar extraction:
no timeout, no retry, and an interruption loses everything. Here a download:

- retries connection errors, resets, stalled reads, 5xx, 408 and 429 with
  exponential backoff and jitter, honouring ``Retry-After``; an attempt that
  made progress on a resumed transfer resets the retry budget;
- times out on connect and on a read that stalls (not on a slow but moving one);
- resumes with ``Range: bytes=N-`` into ``<file>.part``, which survives ``kill -9``
  (every byte written is in the page cache), across retries and across runs;
  a server that ignores Range (answers 200) restarts the file cleanly;
- goes straight back to the resolved (signed) URL on a retry, and when that URL
  has expired (400/401/403 from it) re-resolves once from the original handle URL;
- asks for ``Accept-Encoding: identity`` so byte offsets mean file offsets;
- uses the proxies of ``HTTP(S)_PROXY``/``NO_PROXY`` (requests' ``trust_env``,
  never turned off here).

Tuning comes from the environment, so the CLI and tests share one code path:
``HUBCLI_RETRIES`` (5), ``HUBCLI_CONNECT_TIMEOUT`` (10 s), ``HUBCLI_READ_TIMEOUT``
(60 s), ``HUBCLI_BACKOFF`` (0.5 s, the first delay), ``HUBCLI_MAX_BACKOFF`` (30 s).

Example:
    >>> result = download("https://tfhub.dev/google/nnlm-en-dim50/2?tf-hub-format=compressed",
    ...                   Path("/cache/abc.part"))  # doctest: +SKIP
    >>> result.resolved_url, result.size, result.sha256  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import time
import urllib.parse
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from hubcli import __version__, console
from hubcli.errors import NetworkError, NotFoundError

#: Bytes per read and write; large enough that Python overhead is negligible next to the copy.
CHUNK_SIZE = 1 << 20
_RETRY_STATUSES = {408, 429, 500, 502, 503, 504}
# What an expired signed storage URL answers (GCS: 400 ExpiredToken; S3-style: 403).
_EXPIRED_STATUSES = frozenset({400, 401, 403})
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


@dataclass(frozen=True)
class HttpOptions:
    """Retry and timeout policy for one download."""

    retries: int = 5
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    backoff: float = 0.5
    max_backoff: float = 30.0
    #: Longest Retry-After we honour; a server asking for an hour gets asked again sooner.
    max_retry_after: float = 120.0

    @classmethod
    def from_env(cls) -> HttpOptions:
        env = os.environ
        return cls(
            retries=int(env.get("HUBCLI_RETRIES", cls.retries)),
            connect_timeout=float(env.get("HUBCLI_CONNECT_TIMEOUT", cls.connect_timeout)),
            read_timeout=float(env.get("HUBCLI_READ_TIMEOUT", cls.read_timeout)),
            backoff=float(env.get("HUBCLI_BACKOFF", cls.backoff)),
            max_backoff=float(env.get("HUBCLI_MAX_BACKOFF", cls.max_backoff)),
        )


@dataclass
class DownloadResult:
    """What was downloaded: the file, its size and sha256, and where it really came from."""

    path: Path
    url: str
    resolved_url: str
    size: int
    sha256: str
    #: Bytes already in the ``.part`` file when this download started (0: fresh).
    resumed_from: int = 0
    #: Every URL the last successful response passed through (redirect chain + final).
    chain: list[str] = field(default_factory=list)


class _Retrier:
    """Counts failed attempts and sleeps between them (exponential backoff, equal jitter)."""

    def __init__(self, options: HttpOptions, what: str):
        self.options = options
        self.what = what
        self.failures = 0

    def wait(self, reason: str, retry_after: float | None = None) -> None:
        if self.failures >= self.options.retries:
            raise NetworkError(f"{self.what}: {reason} (gave up after {self.failures + 1} attempts)")
        if retry_after is not None:
            delay = min(retry_after, self.options.max_retry_after)
        else:
            ceiling = min(self.options.max_backoff, self.options.backoff * 2**self.failures)
            delay = ceiling / 2 + random.uniform(0, ceiling / 2)
        self.failures += 1
        _note(f"{reason}; retry {self.failures}/{self.options.retries} in {delay:.1f}s")
        time.sleep(delay)

    def progressed(self) -> None:
        self.failures = 0


def _note(message: str) -> None:
    """Retry notes are for a person watching; off a TTY a failed command's stderr stays one line."""
    if console.progress_enabled():
        console.info(message)


def _retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds: either a number or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    import email.utils  # Rarely needed; keeps cached pulls from importing the email package.

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc or url


def _session():
    # requests costs ~100 ms to import; only paths that really download pay for it.
    import requests

    session = requests.Session()
    session.headers["User-Agent"] = f"hubcli/{__version__}"
    # Byte offsets for Range must be offsets in the file we store, never in a re-encoded body.
    session.headers["Accept-Encoding"] = "identity"
    return session


def fetch_json(url: str, options: HttpOptions | None = None) -> dict:
    """GET a small JSON document (a registry index, Kaggle's latest version) with retries."""
    options = options or HttpOptions.from_env()
    retrier = _Retrier(options, url)
    with _session() as session:
        while True:
            response = _get(session, url, {}, options, retrier, stream=False)
            if response is None:
                continue
            try:
                return response.json()
            except ValueError:
                raise NetworkError(f"{url}: the server did not answer JSON") from None


def _get(
    session,
    url: str,
    headers: dict,
    options: HttpOptions,
    retrier: _Retrier,
    stream: bool = True,
    passthrough: frozenset[int] = frozenset(),
):
    """One GET; transient failures sleep and return None (the caller loops), permanent ones raise.

    Statuses in ``passthrough`` are returned to the caller instead of raising.
    """
    import requests

    try:
        response = session.get(url, headers=headers, stream=stream, timeout=(options.connect_timeout, options.read_timeout))
    except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema) as err:
        raise NetworkError(f"{url}: not a URL that can be fetched ({type(err).__name__})") from None
    except requests.RequestException as err:
        retrier.wait(f"{_host(url)}: {_describe(err)}")
        return None
    if response.status_code in _RETRY_STATUSES:
        response.close()
        retrier.wait(
            f"{_host(response.url)}: HTTP {response.status_code} {response.reason}",
            _retry_after_seconds(response.headers.get("Retry-After")),
        )
        return None
    if response.status_code >= 400 and response.status_code != 416 and response.status_code not in passthrough:
        _raise_for_status(response, url)
    return response


def _raise_for_status(response, url: str):
    status = response.status_code
    response.close()
    if status == 404 or status == 410:
        raise NotFoundError(f"{url}: not found (HTTP {status}); check the handle and its version")
    if status in (401, 403):
        raise NetworkError(f"{url}: access denied (HTTP {status} {response.reason})")
    raise NetworkError(f"{url}: HTTP {status} {response.reason}")


def _transient_errors() -> tuple[type[BaseException], ...]:
    """Failures while reading a body that a retry may cure (requests', urllib3's, the socket's)."""
    import requests
    import urllib3

    return (requests.RequestException, urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)


def _describe(err: BaseException) -> str:
    """A short reason for a requests/urllib3 failure, without nested reprs."""
    import requests
    import urllib3

    if isinstance(err, requests.exceptions.ProxyError):
        # Checked first: it is also a ConnectionError, and "connection refused" would blame the module's host.
        return f"cannot connect to the proxy {_environment_proxy(err) or ''} set by HTTP_PROXY/HTTPS_PROXY"
    if isinstance(err, requests.ConnectTimeout):
        return "connection timed out"
    if isinstance(err, (requests.ReadTimeout, urllib3.exceptions.ReadTimeoutError, TimeoutError)) or "timed out" in str(err).lower():
        return "read stalled (timed out)"
    if isinstance(err, (requests.exceptions.ChunkedEncodingError, urllib3.exceptions.ProtocolError)):
        return "connection dropped mid-body"
    if isinstance(err, requests.ConnectionError):
        text = str(err)
        if "Connection refused" in text:
            return "connection refused"
        if "reset" in text.lower():
            return "connection reset"
        if "Name or service not known" in text or "NameResolutionError" in text:
            return "host name not found"
        return "connection failed"
    return type(err).__name__


def _environment_proxy(err) -> str | None:
    """The proxy the environment chose for the failed request's URL."""
    import requests.utils

    url = getattr(getattr(err, "request", None), "url", None) or ""
    return requests.utils.select_proxy(url, requests.utils.get_environ_proxies(url)) if url else None


def download(
    url: str,
    part: Path,
    options: HttpOptions | None = None,
    progress: bool = True,
    description: str | None = None,
) -> DownloadResult:
    """Download ``url`` into ``part``, resuming what is already there; return size and sha256.

    On success ``part`` holds the complete body (the caller verifies and renames
    or deletes it). On failure it keeps what arrived, for the next attempt.

    Raises:
        NetworkError: retries exhausted, access denied, or a non-retryable HTTP status.
        NotFoundError: the server answered 404/410.
    """
    options = options or HttpOptions.from_env()
    retrier = _Retrier(options, url)
    part.parent.mkdir(parents=True, exist_ok=True)
    started_with = part.stat().st_size if part.exists() else 0
    target = url  # Retries go straight to the resolved URL; expiry sends us back to `url`.
    reresolved = False
    description = description or _host(url)

    digest = _RunningSha256()
    with _session() as session, ExitStack() as stack:
        bar = None
        while True:
            offset = part.stat().st_size if part.exists() else 0
            headers = {"Range": f"bytes={offset}-"} if offset else {}
            may_expire = target != url and not reresolved
            response = _get(session, target, headers, options, retrier, passthrough=_EXPIRED_STATUSES if may_expire else frozenset())
            if response is None:
                continue
            if response.status_code in _EXPIRED_STATUSES:
                response.close()
                _note(f"{_host(target)}: signed URL rejected (HTTP {response.status_code}); resolving {_host(url)} again")
                target, reresolved = url, True
                continue
            with response:
                chain = [r.url for r in response.history] + [response.url]
                target = response.url
                if response.status_code == 416:
                    total = _unsatisfiable_total(response)
                    if total is not None and total == offset:
                        digest.catch_up(part, offset)
                        break  # The part file was already complete.
                    part.unlink(missing_ok=True)  # Longer than the resource: not ours.
                    retrier.wait(f"{_host(target)}: partial file does not match; restarting")
                    continue
                start, total = _body_range(response, offset)
                if start != offset:
                    # 200 to a Range request: the server ignores ranges; start over cleanly.
                    with open(part, "wb"):
                        pass
                    offset = 0
                if bar is None:
                    bar = stack.enter_context(
                        console.progress_bar(total, description, unit="B", unit_scale=True)
                        if progress
                        else _NoBar()
                    )
                _restart_bar(bar, offset, total)
                digest.catch_up(part, offset)
                try:
                    received = _stream_body(response, part, bar, digest)
                except _transient_errors() as err:
                    if response.status_code == 206 and part.stat().st_size > offset:
                        retrier.progressed()
                    retrier.wait(f"{_host(target)}: {_describe(err)}")
                    continue
                size = offset + received
                if total is not None and size < total:
                    if response.status_code == 206 and received:
                        retrier.progressed()
                    retrier.wait(f"{_host(target)}: body ended at {size} of {total} bytes")
                    continue
                break

    size = part.stat().st_size
    return DownloadResult(part, url, target, size, digest.hexdigest(), started_with, chain)


def _unsatisfiable_total(response) -> int | None:
    match = re.search(r"\*/(\d+)", response.headers.get("Content-Range", ""))
    return int(match.group(1)) if match else None


def _body_range(response, offset: int) -> tuple[int, int | None]:
    """(first byte offset of this body, total size or None) from a 200 or 206 answer."""
    length = response.headers.get("Content-Length")
    if response.status_code == 206:
        match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
        if match:
            start = int(match.group(1))
            total = None if match.group(3) == "*" else int(match.group(3))
            return start, total
        return offset, (offset + int(length)) if length and length.isdigit() else None
    return 0, int(length) if length and length.isdigit() else None


class _RunningSha256:
    """sha256 of the ``.part`` file, updated as bytes arrive so no second pass is needed."""

    def __init__(self):
        self._digest = hashlib.sha256()
        self._covered = 0

    def catch_up(self, part: Path, offset: int) -> None:
        """Make the digest cover exactly the first ``offset`` bytes of ``part`` (resume or restart)."""
        if offset == self._covered:
            return
        self._digest, self._covered = hashlib.sha256(), 0
        with open(part, "rb") as source:
            while self._covered < offset and (chunk := source.read(min(CHUNK_SIZE * 4, offset - self._covered))):
                self.update(chunk)

    def update(self, chunk: bytes) -> None:
        self._digest.update(chunk)
        self._covered += len(chunk)

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def _stream_body(response, part: Path, bar, digest: _RunningSha256) -> int:
    """Append the body to ``part``; raises a transient error (data so far kept) if the body breaks off.

    ``read1`` hands over whatever the socket delivered, so bytes that arrived
    before a drop or a stall are written, not discarded with a half-filled buffer.
    """
    received = 0
    with open(part, "ab") as out:
        while chunk := response.raw.read1(CHUNK_SIZE):
            out.write(chunk)
            digest.update(chunk)
            received += len(chunk)
            bar.update(len(chunk))
    return received


def _restart_bar(bar, offset: int, total: int | None) -> None:
    """Show ``offset`` bytes as done without counting them as received now.

    ``update(offset)`` would rate a resumed file's kept bytes as arriving in an instant
    (a huge rate, ETA 0, and a bar frozen until as many new bytes arrive).
    """
    bar.reset(total=total)
    bar.initial = bar.n = bar.last_print_n = offset  # tqdm's rate is (n - initial) / elapsed.
    bar.refresh()


class _NoBar:
    def reset(self, total=None):
        pass

    def refresh(self):
        pass

    def update(self, n):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in large chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while chunk := source.read(CHUNK_SIZE * 4):
            digest.update(chunk)
    return digest.hexdigest()


def copy_gcs(url: str, part: Path, progress: bool = True) -> DownloadResult:
    """Copy a ``gs://`` object into ``part`` through ``tf.io.gfile``, resuming from its size.

    TensorFlow is imported here and only here: it is the one GCS client every
    hubcli user already has, and importing it costs seconds.
    """
    import tensorflow as tf

    part.parent.mkdir(parents=True, exist_ok=True)
    offset = part.stat().st_size if part.exists() else 0
    try:
        total = tf.io.gfile.stat(url).length
        if offset > total:
            part.unlink()
            offset = 0
        with tf.io.gfile.GFile(url, "rb") as source, open(part, "ab") as out:
            source.seek(offset)
            with console.progress_bar(total, _host(url), unit="B", unit_scale=True) if progress else _NoBar() as bar:
                _restart_bar(bar, offset, total)
                while chunk := source.read(CHUNK_SIZE):
                    out.write(chunk)
                    bar.update(len(chunk))
    except tf.errors.NotFoundError:
        raise NotFoundError(f"{url}: no such object") from None
    except tf.errors.OpError as err:
        raise NetworkError(f"{url}: {err.message}") from None
    return DownloadResult(part, url, url, part.stat().st_size, sha256_file(part), offset, [url])
