"""Resilient HTTP(S) downloads (``gs://`` objects too, over HTTPS) into a resumable ``.part`` file.

tensorflow_hub streams a module straight from ``urlopen`` into tar extraction:
no timeout, no retry, and an interruption loses everything. Here a download:

- goes through :mod:`hubcli.hub.http_client` (retries, redirects checked hop by
  hop, stall, speed and deadline limits, TLS, Kaggle credentials); an attempt that
  made progress on a resumed transfer resets the retry budget;
- resumes with ``Range`` into ``<file>.part``, across retries and across runs, but
  only a part whose validators were recorded when it was started
  (:mod:`hubcli.hub.partfile`): ``If-Range`` makes a server whose file changed send
  the new one whole, a ``206`` for a changed file is refused, and a part with no
  validators restarts from zero, so two versions are never spliced into one file;
- writes each chunk with one unbuffered ``os.write`` as it arrives, so the part file
  holds every byte received (``kill -9`` included) and its size is always the
  resume offset; hashes each chunk in the same pass (on a helper thread, overlapping
  the next read), so no second read is needed;
- goes straight back to the resolved (signed) URL on a retry, and when that URL
  has expired (400/401/403 from it) re-resolves once from the original handle URL;
- refuses an HTML page where an archive was expected (a captive portal, a login
  page), from its ``Content-Type`` and its first bytes.

Example:
    >>> result = download("https://tfhub.dev/google/nnlm-en-dim50/2?tf-hub-format=compressed",
    ...                   Path("/cache/abc.part"))  # doctest: +SKIP
    >>> result.resolved_url, result.size, result.sha256  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import os
import queue
import re
import threading
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from hubcli import console
from hubcli.errors import InvalidModuleError, NetworkError
from hubcli.hub import partfile
from hubcli.hub.body import BodyBroken, BodyReader, BufferRing
from hubcli.hub.content import ARCHIVE_KINDS, is_html_response, sniff_bytes
from hubcli.hub.http_client import Client, HttpOptions, Retrier, host, note

# What an expired signed storage URL answers (GCS: 400 ExpiredToken; S3-style: 403).
_EXPIRED_STATUSES = frozenset({400, 401, 403})
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_HASH_CHUNK = 4 << 20


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
    *,
    progress: bool = True,
    description: str | None = None,
    name: str | None = None,
) -> DownloadResult:
    """Download ``url`` into ``part``, resuming what is already there; return size and sha256.

    On success ``part`` holds the complete body (the caller verifies and renames
    or deletes it, with :func:`hubcli.hub.partfile.discard`). On failure it keeps
    what arrived, for the next attempt. Errors about the content call it ``name``
    (default: the URL), such as the handle a user pulled.

    Raises:
        NetworkError: retries exhausted, access denied, a non-retryable HTTP status.
        NotFoundError: the server answered 404/410.
        InvalidModuleError: the server sent an HTML page (a login or captive-portal page).
    """
    options = options or HttpOptions.from_env()
    part.parent.mkdir(parents=True, exist_ok=True)
    transfer = _Transfer(url, part, options, name or url)
    with Client(options) as client, ExitStack() as stack:
        stack.callback(transfer.digest.close)
        bar = None
        while True:
            response = transfer.request(client)
            if response is None:
                continue
            with response:
                if not transfer.accept(response):
                    continue
                if bar is None:
                    bar = stack.enter_context(
                        console.progress_bar(transfer.total, description or host(url), unit="B", unit_scale=True)
                        if progress
                        else _NoBar()
                    )
                _restart_bar(bar, transfer.offset, transfer.total)
                if transfer.receive(response, bar):
                    break
    return transfer.result()


class _Transfer:
    """The state of one download across its attempts: where to ask, from which offset, what arrived."""

    def __init__(self, url: str, part: Path, options: HttpOptions, name: str):
        self.url = url
        self.name = name
        self.part = part
        self.options = options
        self.retrier = Retrier(options, url)
        self.ring = BufferRing()
        self.digest = _RunningSha256(on_hashed=self.ring.give_back)
        self.target = url  # Retries go straight to the resolved URL; expiry sends us back to `url`.
        self.reresolved = False
        self.offset = 0
        self.total: int | None = None
        self.chain: list[str] = []
        self.started_with: int | None = None
        self.restarts = 0
        self.retrier.progress = self._progress

    def _progress(self) -> str:
        size = self.part.stat().st_size if self.part.exists() else 0
        of_total = f" of {console.human_size(self.total)}" if self.total is not None else ""
        return f"received {console.human_size(size)}{of_total}"

    def request(self, client: Client):
        size = self.part.stat().st_size if self.part.exists() else 0
        headers = partfile.resume_headers(self.part, size) or {}
        self.offset = size if headers else 0
        if self.started_with is None:
            self.started_with = self.offset
        may_expire = self.target != self.url and not self.reresolved
        response = client.get(
            self.target, headers=headers, retrier=self.retrier, passthrough=_EXPIRED_STATUSES if may_expire else frozenset()
        )
        if response is not None and response.status_code in _EXPIRED_STATUSES:
            response.close()
            note(f"{host(self.target)}: signed URL rejected (HTTP {response.status_code}); resolving {host(self.url)} again")
            self.target, self.reresolved = self.url, True
            return None
        return response

    def accept(self, response) -> bool:
        """Whether to read this response's body; False when the next attempt must start afresh."""
        self.chain = [r.url for r in response.history] + [response.url]
        self.target = response.url
        record = partfile.read_record(self.part)
        if response.status_code == 416:
            total = _unsatisfiable_total(response)
            if self.offset and total == self.offset and record is not None and record.matches(response, total):
                self.total = total
                self.digest.catch_up(self.part, self.offset)
                return True  # The part file was already complete.
            return self._restart("the partial download does not match the file on the server")
        start, self.total = _body_range(response, self.offset)
        if response.status_code == 206:
            if not self.offset or start != self.offset or record is None or not record.matches(response, self.total):
                # A server that ignored If-Range, or answered a range we did not ask for.
                return self._restart("the file changed on the server since the partial download began")
        else:
            partfile.start(self.part, partfile.PartRecord.from_response(response, self.total))
            self.offset = 0
        self.digest.catch_up(self.part, self.offset)
        return True

    def _restart(self, reason: str) -> bool:
        partfile.discard(self.part)
        self.restarts += 1
        if self.restarts > self.options.retries:
            raise NetworkError(f"{self.url}: {reason}, again and again (gave up after {self.restarts} restarts)")
        note(f"{host(self.target)}: {reason}; downloading it from the start")
        return False

    def receive(self, response, bar) -> bool:
        """Append the body to the part file; True when the file is complete."""
        if response.status_code == 416:
            return True
        reader = BodyReader(response, self.retrier, self.ring)
        received = 0
        fd = os.open(self.part, os.O_WRONLY | os.O_APPEND)
        try:
            while chunk := reader.read():
                if received == 0 and self.offset == 0:
                    self._refuse_html(response, chunk)
                _write_all(fd, chunk)
                self.digest.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
        except BodyBroken as broken:
            self._failed(response, received if not broken.too_slow else 0, str(broken))
            return False
        finally:
            os.close(fd)
        size = self.offset + received
        if self.total is not None and size < self.total:
            self._failed(response, received, f"body ended at {size} of {self.total} bytes")
            return False
        if received == 0 and self.offset == 0:
            self._refuse_html(response, b"")
        return True

    def _failed(self, response, received: int, reason: str) -> None:
        if response.status_code == 206 and received:
            self.retrier.progressed()
        self.retrier.wait(f"{host(self.target)}: {reason}")

    def _refuse_html(self, response, head) -> None:
        head = bytes(head[:512])
        content_type = response.headers.get("Content-Type")
        if is_html_response(content_type, head) and sniff_bytes(head) not in ARCHIVE_KINDS | {"tflite"}:
            partfile.discard(self.part)
            shown = " ".join(head[:80].decode("utf-8", "replace").split())
            raise InvalidModuleError(
                f"{self.name} is an HTML page ({content_type or 'no Content-Type'}), not a module archive: "
                f"a login or captive-portal page? It begins {shown!r}"
            )

    def result(self) -> DownloadResult:
        size = self.part.stat().st_size
        return DownloadResult(self.part, self.url, self.target, size, self.digest.hexdigest(), self.started_with or 0, self.chain)


def _write_all(fd: int, chunk) -> None:
    view = memoryview(chunk)
    while view:
        written = os.write(fd, view)
        view = view[written:]


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
    """sha256 of the ``.part`` file, updated as bytes arrive so no second pass is needed.

    The hashing runs on a helper thread (hashlib releases the GIL for large chunks), so it
    overlaps the next read and write instead of adding to them; ``on_hashed`` is told when
    a chunk is done with, so its buffer can be read into again. :meth:`close` stops it.
    """

    def __init__(self, on_hashed=lambda chunk: None):
        self._digest = hashlib.sha256()
        self._covered = 0
        self._on_hashed = on_hashed
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None

    def catch_up(self, part: Path, offset: int) -> None:
        """Make the digest cover exactly the first ``offset`` bytes of ``part`` (resume or restart)."""
        self._queue.join()
        if offset == self._covered:
            return
        self._digest, self._covered = hashlib.sha256(), 0
        with open(part, "rb") as source:
            while self._covered < offset and (chunk := source.read(min(_HASH_CHUNK, offset - self._covered))):
                self._digest.update(chunk)
                self._covered += len(chunk)

    def update(self, chunk) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._hash_chunks, name="hubcli-sha256", daemon=True)
            self._thread.start()
        self._covered += len(chunk)
        self._queue.put(chunk)

    def _hash_chunks(self) -> None:
        while True:
            chunk = self._queue.get()
            if chunk is None:
                self._queue.task_done()
                return
            try:
                self._digest.update(chunk)
            finally:
                self._on_hashed(chunk)  # Even on a failure: a buffer never given back would stall the reader.
                self._queue.task_done()

    def hexdigest(self) -> str:
        self._queue.join()
        return self._digest.hexdigest()

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None


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


