"""Resilient HTTP(S) and ``gs://`` downloads into a resumable ``.part`` file.

tensorflow_hub streams a module straight from ``urlopen`` into tar extraction:
no timeout, no retry, and an interruption loses everything. Here a download:

- retries under :mod:`hubcli.hub.http_client`'s policy; an attempt that made
  progress on a resumed transfer resets the retry budget;
- resumes with ``Range: bytes=N-`` into ``<file>.part``, which survives ``kill -9``
  (every byte written is in the page cache), across retries and across runs;
  a server that ignores Range (answers 200) restarts the file cleanly;
- goes straight back to the resolved (signed) URL on a retry, and when that URL
  has expired (400/401/403 from it) re-resolves once from the original handle URL;

Requests, retries and their tuning are :mod:`hubcli.hub.http_client`'s.

Example:
    >>> result = download("https://tfhub.dev/google/nnlm-en-dim50/2?tf-hub-format=compressed",
    ...                   Path("/cache/abc.part"))  # doctest: +SKIP
    >>> result.resolved_url, result.size, result.sha256  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import re
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from hubcli import console
from hubcli.errors import NetworkError, NotFoundError
from hubcli.fsio import sha256_file
from hubcli.hub.http_client import HttpOptions, Retrier, get, host, note, session, transient_errors
from hubcli.hub.http_client import describe as describe_failure

#: Bytes per read and write; large enough that Python overhead is negligible next to the copy.
CHUNK_SIZE = 1 << 20
# What an expired signed storage URL answers (GCS: 400 ExpiredToken; S3-style: 403).
_EXPIRED_STATUSES = frozenset({400, 401, 403})
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


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
    retrier = Retrier(options, url)
    part.parent.mkdir(parents=True, exist_ok=True)
    started_with = part.stat().st_size if part.exists() else 0
    target = url  # Retries go straight to the resolved URL; expiry sends us back to `url`.
    reresolved = False
    description = description or host(url)

    digest = _RunningSha256()
    with session() as client, ExitStack() as stack:
        bar = None
        while True:
            offset = part.stat().st_size if part.exists() else 0
            headers = {"Range": f"bytes={offset}-"} if offset else {}
            may_expire = target != url and not reresolved
            response = get(
                client, target, headers=headers, options=options, retrier=retrier,
                passthrough=_EXPIRED_STATUSES if may_expire else frozenset(),
            )
            if response is None:
                continue
            if response.status_code in _EXPIRED_STATUSES:
                response.close()
                note(f"{host(target)}: signed URL rejected (HTTP {response.status_code}); resolving {host(url)} again")
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
                    retrier.wait(f"{host(target)}: partial file does not match; restarting")
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
                except transient_errors() as err:
                    if response.status_code == 206 and part.stat().st_size > offset:
                        retrier.progressed()
                    retrier.wait(f"{host(target)}: {describe_failure(err)}")
                    continue
                size = offset + received
                if total is not None and size < total:
                    if response.status_code == 206 and received:
                        retrier.progressed()
                    retrier.wait(f"{host(target)}: body ended at {size} of {total} bytes")
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
            with console.progress_bar(total, host(url), unit="B", unit_scale=True) if progress else _NoBar() as bar:
                _restart_bar(bar, offset, total)
                while chunk := source.read(CHUNK_SIZE):
                    out.write(chunk)
                    bar.update(len(chunk))
    except tf.errors.NotFoundError:
        raise NotFoundError(f"{url}: no such object") from None
    except tf.errors.OpError as err:
        raise NetworkError(f"{url}: {err.message}") from None
    return DownloadResult(part, url, url, part.stat().st_size, sha256_file(part), offset, [url])
