"""A real HTTP server on 127.0.0.1 that behaves like tfhub.dev, Kaggle Models and signed storage.

Routes (all answered by one threaded ``http.server``):

- ``/tfhub/<publisher>/<model>/<version>?tf-hub-format=compressed`` -> 302 to the
  Kaggle download path (the tfhub.dev endpoint; point ``HUBCLI_TFHUB_ENDPOINT``
  at ``<base>/tfhub``);
- ``/api/v1/models/<owner>/<model>/<fw>/<variation>/<version>/download`` -> 302 to
  a signed storage URL whose query carries an expiry and a signature (point
  ``HUBCLI_KAGGLE_ENDPOINT`` at ``<base>``);
- ``/api/v1/models/<owner>/<model>/<fw>/<variation>/get`` -> JSON ``{"versionNumber": N}``;
- ``/storage/<name>?X-Goog-Expires=..&X-Goog-Signature=..`` -> the archive, with
  ``Range`` support unless ``ignore_range`` is set;
- ``/files/<name>`` -> the archive without redirects (plain URL handles), and any
  file put with :meth:`HubServer.put_file`;
- ``/mirror/<path>`` -> files under ``mirror_root`` (an http mirror of a registry directory).

The server also answers proxy-style requests (``GET http://any.host/files/x``),
so a test can check that ``HTTP_PROXY`` is honoured.

Faults are queued and consumed one per storage/files request, in order:
``"drop"`` (half the body, then the connection closes), ``"500"``, ``"429"``
(with ``Retry-After: 1``), ``"stall"`` (half the body, then silence for
``stall_seconds``), ``"expire"`` (the signature is refused with 403, as storage
does when a signed URL has expired), ``"drop+expire"`` (drop mid-body and expire
that signature, so the client's retry on the same URL meets a 403).

Every request is logged (path, query, headers) for the tests to count.

Test modules load the fixtures below with ``pytest_plugins = ["tests.helpers.hubserver"]``
(PYTEST_DONT_REWRITE: this module holds no test assertions, and is also imported
directly for :func:`make_fake_module_archive`).
"""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import os
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import pytest

_SECRET = b"hubserver-test-signing-key"
_EXPIRED_BODY = "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"


@dataclass
class LoggedRequest:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    status: int = 0


@dataclass
class HubServer:
    """State shared with the handler threads; see the module docstring."""

    base_url: str = ""
    #: storage file name -> archive bytes on disk
    files: dict[str, Path] = field(default_factory=dict)
    #: "publisher/model/version" (tfhub path) -> storage file name
    tfhub: dict[str, str] = field(default_factory=dict)
    #: "owner/model/fw/variation" -> {version: storage file name}
    kaggle: dict[str, dict[int, str]] = field(default_factory=dict)
    faults: list[str] = field(default_factory=list)
    ignore_range: bool = False
    #: When set, bodies are sent in small pieces at about this many bytes per second.
    throttle_bps: int | None = None
    stall_seconds: float = 5.0
    mirror_root: Path | None = None
    #: The cache the ``hub`` fixture points hubcli at.
    cache_dir: Path | None = None
    log: list[LoggedRequest] = field(default_factory=list)
    expired_signatures: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    # -- set-up ------------------------------------------------------------
    def add_tfhub_module(self, tfhub_path: str, archive: Path) -> str:
        """Serve ``archive`` as ``https://tfhub.dev/<tfhub_path>``; returns that handle."""
        publisher, rest = tfhub_path.split("/", 1)
        model, version = rest.rsplit("/", 1)
        name = f"{model.replace('/', '_')}-{version}.tar.gz"
        self.files[name] = Path(archive)
        self.tfhub[tfhub_path] = name
        self.kaggle.setdefault(f"{publisher}/{model.replace('/', '-')}/tensorflow2/default", {})[int(version)] = name
        return f"https://tfhub.dev/{tfhub_path}"

    def add_kaggle_module(self, kaggle_path: str, version: int, archive: Path) -> None:
        name = f"{kaggle_path.replace('/', '_')}-{version}.tar.gz"
        self.files[name] = Path(archive)
        self.kaggle.setdefault(kaggle_path.lower(), {})[version] = name

    def put_file(self, name: str, path: Path) -> str:
        """Serve ``path`` at ``/files/<name>``; returns its URL."""
        self.files[name] = Path(path)
        return f"{self.base_url}/files/{name}"

    # -- queries for assertions ---------------------------------------------
    def requests_to(self, prefix: str) -> list[LoggedRequest]:
        with self.lock:
            return [r for r in self.log if r.path.startswith(prefix)]

    def storage_gets(self) -> list[LoggedRequest]:
        return self.requests_to("/storage/")

    # -- signing -------------------------------------------------------------
    def sign(self, name: str) -> str:
        expires = str(int(time.time()) + 3600)
        nonce = os.urandom(4).hex()
        signature = hmac.new(_SECRET, f"{name}|{expires}|{nonce}".encode(), hashlib.sha256).hexdigest()
        query = urllib.parse.urlencode({"X-Goog-Expires": expires, "X-Goog-Nonce": nonce, "X-Goog-Signature": signature})
        return f"/storage/{name}?{query}"

    def signature_ok(self, name: str, query: dict[str, str]) -> bool:
        expected = hmac.new(
            _SECRET, f"{name}|{query.get('X-Goog-Expires')}|{query.get('X-Goog-Nonce')}".encode(), hashlib.sha256
        ).hexdigest()
        signature = query.get("X-Goog-Signature", "")
        return (
            hmac.compare_digest(expected, signature)
            and int(query.get("X-Goog-Expires", "0")) > time.time()
            and signature not in self.expired_signatures
        )

    def next_fault(self) -> str | None:
        with self.lock:
            return self.faults.pop(0) if self.faults else None


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "hubserver/1"
    protocol_version = "HTTP/1.1"
    state: HubServer  # set on the subclass made per server

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):  # noqa: N802 - http.server's naming
        parts = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(parts.query))
        self._entry = LoggedRequest(parts.path, query, dict(self.headers.items()))
        with self.state.lock:
            self.state.log.append(self._entry)
        try:
            self._route(parts.path, query)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def send_response(self, code, message=None):
        # Logged as the status line goes out, not after the body: a fast client can finish
        # reading, and the test check the log, before this thread returns from writing.
        if getattr(self, "_entry", None) is not None:  # http.server's own errors (e.g. 501) have none
            self._entry.status = code
        super().send_response(code, message)

    def _route(self, path: str, query: dict[str, str]) -> int:
        state = self.state
        if path.startswith("/tfhub/"):
            tfhub_path = path[len("/tfhub/") :].strip("/")
            name = state.tfhub.get(tfhub_path)
            if name is None or query.get("tf-hub-format") != "compressed":
                return self._text(404, "no such module")
            publisher, rest = tfhub_path.split("/", 1)
            model, version = rest.rsplit("/", 1)
            return self._redirect(f"/api/v1/models/{publisher}/{model.replace('/', '-')}/tensorflow2/default/{version}/download")
        match = re.fullmatch(r"/api/v1/models/([^/]+/[^/]+/[^/]+/[^/]+)/(\d+)/download", path)
        if match:
            name = state.kaggle.get(match.group(1).lower(), {}).get(int(match.group(2)))
            return self._redirect(state.sign(name)) if name else self._text(404, "no such model version")
        match = re.fullmatch(r"/api/v1/models/([^/]+/[^/]+/[^/]+/[^/]+)/get", path)
        if match:
            versions = state.kaggle.get(match.group(1).lower())
            if not versions:
                return self._text(404, "no such model")
            return self._send_bytes(200, json.dumps({"versionNumber": max(versions)}).encode(), "application/json")
        if path.startswith("/storage/"):
            name = path[len("/storage/") :]
            if name not in state.files:
                return self._text(404, "no such object")
            if not state.signature_ok(name, query):
                return self._text(403, _EXPIRED_BODY)
            fault = state.next_fault()
            if fault == "expire":
                state.expired_signatures.add(query.get("X-Goog-Signature", ""))
                return self._text(403, _EXPIRED_BODY)
            if fault == "drop+expire":
                state.expired_signatures.add(query.get("X-Goog-Signature", ""))
                fault = "drop"
            return self._serve_file(state.files[name], fault)
        if path.startswith("/files/"):
            name = path[len("/files/") :]
            if name not in state.files:
                return self._text(404, "no such file")
            return self._serve_file(state.files[name], state.next_fault())
        if path.startswith("/mirror/") and state.mirror_root is not None:
            file = (state.mirror_root / urllib.parse.unquote(path[len("/mirror/") :])).resolve()
            if not file.is_file() or state.mirror_root.resolve() not in file.parents:
                return self._text(404, "no such file")
            return self._serve_file(file, state.next_fault())
        return self._text(404, "unknown route")

    # -- responses -------------------------------------------------------------
    def _text(self, status: int, body: str) -> int:
        return self._send_bytes(status, body.encode(), "text/plain")

    def _send_bytes(self, status: int, body: bytes, content_type: str) -> int:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        return status

    def _redirect(self, location: str) -> int:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()
        return 302

    def _serve_file(self, path: Path, fault: str | None) -> int:
        if fault == "500":
            return self._text(500, "internal error")
        if fault == "429":
            self.send_response(429)
            self.send_header("Retry-After", "1")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return 429
        size = path.stat().st_size
        start = 0
        status = 200
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
        if match and not self.state.ignore_range:
            start = int(match.group(1))
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return 416
            status = 206
        self.send_response(status)
        self.send_header("Content-Type", "application/gzip")
        self.send_header("Content-Length", str(size - start))
        self.send_header("Accept-Ranges", "none" if self.state.ignore_range else "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        self.end_headers()
        with open(path, "rb") as source:
            if fault in ("drop", "stall"):
                half = max(1, (size - start) // 2)
                source.seek(start)
                self.wfile.write(source.read(half))
                self.wfile.flush()
                if fault == "stall":
                    time.sleep(self.state.stall_seconds)
                self.close_connection = True
                return status
            if self.state.throttle_bps:
                source.seek(start)
                piece = max(1024, self.state.throttle_bps // 20)
                while chunk := source.read(piece):
                    self.wfile.write(chunk)
                    time.sleep(len(chunk) / self.state.throttle_bps)
                return status
            self.wfile.flush()
            self.connection.sendfile(source, start, size - start)
        return status


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def start_server() -> tuple[HubServer, _Server]:
    """Start a server on a free 127.0.0.1 port in a daemon thread; returns (state, server)."""
    state = HubServer()
    handler = type("Handler", (_Handler,), {"state": state})
    server = _Server(("127.0.0.1", 0), handler)
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, name="hubserver", daemon=True).start()
    return state, server


# --- pytest fixtures (import them into a test module to use them) ----------------


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A fresh server, with hubcli pointed at it and at an empty cache in ``tmp_path``.

    Short timeouts and backoff keep fault tests quick; ``NO_PROXY`` keeps a
    developer's proxy settings away from 127.0.0.1.
    """
    state, server = start_server()
    monkeypatch.setenv("HUBCLI_TFHUB_ENDPOINT", f"{state.base_url}/tfhub")
    monkeypatch.setenv("HUBCLI_KAGGLE_ENDPOINT", state.base_url)
    monkeypatch.setenv("HUBCLI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HUBCLI_CONFIG", str(tmp_path / "no-config.toml"))
    monkeypatch.setenv("HUBCLI_BACKOFF", "0.01")
    monkeypatch.setenv("HUBCLI_READ_TIMEOUT", "1")
    monkeypatch.setenv("HUBCLI_CONNECT_TIMEOUT", "2")
    monkeypatch.setenv("HUBCLI_RETRIES", "4")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    for name in ("TFHUB_CACHE_DIR", "HUBCLI_OFFLINE", "HUBCLI_MIRROR", "HUBCLI_TRUSTED_HOSTS", "HUBCLI_QUIET"):
        monkeypatch.delenv(name, raising=False)
    state.cache_dir = tmp_path / "cache"
    yield state
    server.shutdown()
    server.server_close()


def make_fake_module_archive(path: Path, payload_bytes: int = 200_000, seed: int = 0) -> Path:
    """A .tar.gz shaped like a module (saved_model.pb + variables/) with random, incompressible bytes.

    For download and cache tests, where what matters is bytes on the wire, not a loadable model.
    """
    import io
    import random
    import tarfile

    rng = random.Random(seed)
    members = {
        "saved_model.pb": rng.randbytes(payload_bytes),
        "variables/variables.index": rng.randbytes(512),
        "variables/variables.data-00000-of-00001": rng.randbytes(4096),
        "assets/vocab.txt": b"hello\nworld\n",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def fake_archive(tmp_path) -> Path:
    return make_fake_module_archive(tmp_path / "fake_module.tar.gz")
