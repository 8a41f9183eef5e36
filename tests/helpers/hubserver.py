"""A real HTTP server on 127.0.0.1 that behaves like tfhub.dev, Kaggle Models and signed storage.

Routes (all answered by one threaded ``http.server``):

- ``/tfhub/<publisher>/<model>/<version>?tf-hub-format=compressed`` -> 302 to the
  Kaggle download path (the tfhub.dev endpoint; point ``HUBCLI_TFHUB_ENDPOINT``
  at ``<base>/tfhub``); with ``?lite-format=tflite`` instead, 302 to the model's
  ``.tflite`` file in signed storage;
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

- any path put with :meth:`HubServer.put_page`: a fixed answer (an HTML login page,
  a redirect loop, a redirect to ``file:///``).

Files are served with an ``ETag`` (from their content) and ``Last-Modified``
(``send_validators`` picks which), honour ``Range`` with ``If-Range`` (a stale
validator gets the whole file, unless ``honour_if_range`` is off), and
:meth:`HubServer.replace_file` swaps a file's content between two requests.

Faults are queued and consumed one per storage/files request, in order:
``"drop"`` (half the body, then the connection closes), ``"500"``, ``"429"``
(with ``Retry-After: 1``), ``"stall"`` (half the body, then silence for
``stall_seconds``), ``"partial:N"`` (N bytes, then silence for ``stall_seconds``),
``"trickle"`` (one byte every ``trickle_interval`` seconds), ``"expire"`` (the
signature is refused with 403, as storage does when a signed URL has expired),
``"drop+expire"`` (drop mid-body and expire that signature, so the client's retry
on the same URL meets a 403).

Kaggle models listed in ``kaggle_private`` answer 401 unless the request carries one
of the ``kaggle_authorizations`` (the exact ``Authorization`` header values);
``kaggle_latest_answers`` replaces the JSON a version lookup returns; with
``storage_host`` set (``"localhost"``) Kaggle redirects to signed storage on that
host name, another origin than ``127.0.0.1``. :func:`start_server` can serve HTTPS.

Every request is logged (path, query, headers) for the tests to count.

Test modules load the fixtures below with ``pytest_plugins = ["tests.helpers.hubserver"]``
(PYTEST_DONT_REWRITE: this module holds no test assertions, and is also imported
directly for :func:`make_fake_module_archive`).
"""

from __future__ import annotations

import email.utils
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
    #: "publisher/model/version" (tfhub path) -> storage file name of its .tflite
    tfhub_lite: dict[str, str] = field(default_factory=dict)
    #: "owner/model/fw/variation" -> {version: storage file name}
    kaggle: dict[str, dict[int, str]] = field(default_factory=dict)
    faults: list[str] = field(default_factory=list)
    ignore_range: bool = False
    #: When set, bodies are sent in small pieces at about this many bytes per second.
    throttle_bps: int | None = None
    stall_seconds: float = 5.0
    trickle_interval: float = 0.05
    #: Which validators files are served with: "etag", "weak-etag", "last-modified".
    send_validators: frozenset[str] = frozenset({"etag", "last-modified"})
    honour_if_range: bool = True
    #: Fixed answers: path -> (status, headers, body).
    pages: dict[str, tuple[int, dict[str, str], bytes]] = field(default_factory=dict)
    kaggle_private: set[str] = field(default_factory=set)
    kaggle_authorizations: set[str] = field(default_factory=set)
    #: "owner/model/fw/variation" -> the raw body its version lookup answers.
    kaggle_latest_answers: dict[str, bytes] = field(default_factory=dict)
    storage_host: str | None = None
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

    def add_tfhub_tflite(self, tfhub_path: str, model: Path) -> str:
        """Serve ``model`` (a .tflite file) as ``https://tfhub.dev/<tfhub_path>?lite-format=tflite``; returns the handle."""
        name = f"{tfhub_path.replace('/', '_')}.tflite"
        self.files[name] = Path(model)
        self.tfhub_lite[tfhub_path] = name
        return f"https://tfhub.dev/{tfhub_path}"

    def add_kaggle_module(self, kaggle_path: str, version: int, archive: Path) -> None:
        name = f"{kaggle_path.replace('/', '_')}-{version}.tar.gz"
        self.files[name] = Path(archive)
        self.kaggle.setdefault(kaggle_path.lower(), {})[version] = name

    def put_file(self, name: str, path: Path) -> str:
        """Serve ``path`` at ``/files/<name>``; returns its URL."""
        self.files[name] = Path(path)
        return f"{self.base_url}/files/{name}"

    def replace_file(self, name: str, path: Path) -> None:
        """Serve other content under ``name`` from now on (a new ETag and Last-Modified)."""
        with self.lock:
            self.files[name] = Path(path)

    def put_page(self, path: str, status: int = 200, body: bytes | str = b"", headers: dict[str, str] | None = None) -> str:
        """Answer GET ``path`` with this status, headers and body; returns its URL."""
        data = body.encode() if isinstance(body, str) else body
        self.pages[path] = (status, dict(headers or {}), data)
        return f"{self.base_url}{path}"

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
        if path in state.pages:
            status, headers, body = state.pages[path]
            return self._send_bytes(status, body, headers.get("Content-Type", "text/html"), headers)
        if path.startswith("/tfhub/"):
            tfhub_path = path[len("/tfhub/") :].strip("/")
            if query.get("lite-format") == "tflite":  # tfhub.dev sends lite models straight from storage
                lite = state.tfhub_lite.get(tfhub_path)
                return self._redirect(state.sign(lite)) if lite else self._text(404, "no such lite model")
            name = state.tfhub.get(tfhub_path)
            if name is None or query.get("tf-hub-format") != "compressed":
                return self._text(404, "no such module")
            publisher, rest = tfhub_path.split("/", 1)
            model, version = rest.rsplit("/", 1)
            # Absolute, like tfhub.dev's redirect to www.kaggle.com: another origin when the tfhub endpoint is on localhost.
            kaggle = f"http://127.0.0.1:{self.server.server_address[1]}" if state.base_url.startswith("http:") else ""
            return self._redirect(f"{kaggle}/api/v1/models/{publisher}/{model.replace('/', '-')}/tensorflow2/default/{version}/download")
        match = re.fullmatch(r"/api/v1/models/([^/]+/[^/]+/[^/]+/[^/]+)/(\d+)/download", path)
        if match:
            if not self._kaggle_authorized(match.group(1)):
                return self._unauthorized()
            name = state.kaggle.get(match.group(1).lower(), {}).get(int(match.group(2)))
            if not name:
                return self._text(404, "no such model version")
            storage = f"http://{state.storage_host}:{self.server.server_address[1]}" if state.storage_host else ""
            return self._redirect(storage + state.sign(name))
        match = re.fullmatch(r"/api/v1/models/([^/]+/[^/]+/[^/]+/[^/]+)/get", path)
        if match:
            if not self._kaggle_authorized(match.group(1)):
                return self._unauthorized()
            if match.group(1).lower() in state.kaggle_latest_answers:
                return self._send_bytes(200, state.kaggle_latest_answers[match.group(1).lower()], "application/json")
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

    def _send_bytes(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> int:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            if name != "Content-Type":
                self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        return status

    def _kaggle_authorized(self, model_path: str) -> bool:
        if model_path.lower() not in self.state.kaggle_private:
            return True
        return self.headers.get("Authorization") in self.state.kaggle_authorizations

    def _unauthorized(self) -> int:
        return self._send_bytes(401, b'{"code": 401, "message": "Unauthenticated"}', "application/json", {"WWW-Authenticate": 'Basic realm="kaggle"'})

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
        data = path.read_bytes()
        size = len(data)
        etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
        modified = email.utils.formatdate(path.stat().st_mtime, usegmt=True)
        start = 0
        status = 200
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
        if_range = self.headers.get("If-Range")
        still_valid = if_range is None or not self.state.honour_if_range or if_range in (etag, modified)
        if match and not self.state.ignore_range and still_valid:
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
        if "etag" in self.state.send_validators:
            self.send_header("ETag", etag)
        if "weak-etag" in self.state.send_validators:
            self.send_header("ETag", "W/" + etag)
        if "last-modified" in self.state.send_validators:
            self.send_header("Last-Modified", modified)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        self.end_headers()
        body = memoryview(data)[start:]
        if fault in ("drop", "stall") or (fault or "").startswith("partial:"):
            sent = int(fault.split(":")[1]) if fault.startswith("partial:") else max(1, len(body) // 2)
            self.wfile.write(body[:sent])
            self.wfile.flush()
            if fault != "drop":
                time.sleep(self.state.stall_seconds)
            self.close_connection = True
            return status
        if fault == "trickle":
            for offset in range(len(body)):
                self.wfile.write(body[offset : offset + 1])
                self.wfile.flush()
                time.sleep(self.state.trickle_interval)
            return status
        if self.state.throttle_bps:
            piece = max(1024, self.state.throttle_bps // 20)
            for offset in range(0, len(body), piece):
                self.wfile.write(body[offset : offset + piece])
                time.sleep(piece / self.state.throttle_bps)
            return status
        self.wfile.flush()
        with open(path, "rb") as source:
            self.connection.sendfile(source, start, size - start)
        return status


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def start_server(tls: tuple[Path, Path] | None = None) -> tuple[HubServer, _Server]:
    """Start a server on a free 127.0.0.1 port in a daemon thread; returns (state, server).

    ``tls``: (certificate chain, private key) PEM files to serve HTTPS with.
    """
    state = HubServer()
    handler = type("Handler", (_Handler,), {"state": state})
    server = _Server(("127.0.0.1", 0), handler)
    scheme = "http"
    if tls is not None:
        import ssl

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(tls[0]), str(tls[1]))
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    state.base_url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
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


def write_partial(part: Path, archive: Path, keep: int, content: bytes | None = None) -> Path:
    """What an interrupted download of ``archive`` from this server leaves: ``keep`` bytes and their record.

    ``content`` replaces the kept bytes (a part that is not what its record says).
    """
    from hubcli.hub import partfile

    data = archive.read_bytes()
    etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
    modified = email.utils.formatdate(archive.stat().st_mtime, usegmt=True)
    part.parent.mkdir(parents=True, exist_ok=True)
    partfile.start(part, partfile.PartRecord(etag, modified, len(data)))
    part.write_bytes(data[:keep] if content is None else content)
    return part


def wait_for_part(part: Path, size: int, proc, timeout: float = 60) -> None:
    """Wait until the download of the process ``proc`` has put ``size`` bytes into ``part``."""
    deadline = time.monotonic() + timeout
    while (not part.exists() or part.stat().st_size < size) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.05)
