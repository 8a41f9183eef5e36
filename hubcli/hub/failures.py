"""Short, user-facing reasons for network failures (requests', urllib3's, the socket's, TLS).

Nested exception reprs (``HTTPSConnectionPool(host=...): Max retries exceeded with url: ...
(Caused by NewConnectionError(...))``) help no one; these functions say what happened in
a few words, and for TLS which option fixes it.

Example:
    >>> describe(TimeoutError("timed out"))
    'read stalled (timed out)'
    >>> describe(ConnectionResetError(104, "Connection reset by peer"))
    'connection reset'
"""

from __future__ import annotations

import re
import socket
import urllib.parse

_TLS_REASON = re.compile(r"certificate verify failed: ([^(]+?)\s*\(")


def _chain(err: BaseException):
    """``err`` and every exception it wraps (``__cause__``, ``__context__``, urllib3's ``reason``)."""
    seen: set[int] = set()
    pending = [err]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending += [current.__cause__, current.__context__, getattr(current, "reason", None)]
        pending += [arg for arg in getattr(current, "args", ()) if isinstance(arg, BaseException)]


def is_name_resolution_error(err: BaseException) -> bool:
    """Whether ``err`` comes from a host name that does not resolve (DNS), not from a flaky link."""
    return any(isinstance(inner, socket.gaierror) or type(inner).__name__ == "NameResolutionError" for inner in _chain(err))


def describe(err: BaseException) -> str:
    """A short reason for a failed request or body read."""
    import requests
    import urllib3

    if isinstance(err, requests.exceptions.ProxyError):
        # Checked first: it is also a ConnectionError, and "connection refused" would blame the module's host.
        return f"cannot connect to the proxy {_environment_proxy(err) or ''} set by HTTP_PROXY/HTTPS_PROXY"
    if isinstance(err, requests.ConnectTimeout):
        return "connection timed out"
    text = str(err)
    if isinstance(err, (requests.ReadTimeout, urllib3.exceptions.ReadTimeoutError, TimeoutError)) or "timed out" in text.lower():
        return "read stalled (timed out)"
    if is_name_resolution_error(err):
        return "host name not found"
    if "Connection refused" in text or any(isinstance(e, ConnectionRefusedError) for e in _chain(err)):
        return "connection refused"
    if "reset" in text.lower() or any(isinstance(e, ConnectionResetError) for e in _chain(err)):
        return "connection reset"
    if isinstance(err, (requests.exceptions.ChunkedEncodingError, urllib3.exceptions.ProtocolError)) or type(err).__name__ in (
        "IncompleteRead",
        "RemoteDisconnected",
    ):
        return "connection dropped mid-body"
    if isinstance(err, (requests.ConnectionError, ConnectionError)):
        return "connection failed"
    return type(err).__name__


def tls_failure(url: str, err: BaseException, ca_bundle: str | None) -> str:
    """The one line for a TLS failure: what the certificate check said, and the option that fixes it."""
    text = " ".join(str(e) for e in _chain(err))
    match = _TLS_REASON.search(text)
    host = urllib.parse.urlsplit(url).netloc
    if match:
        reason = f"its certificate does not verify ({match.group(1).strip()})"
    elif "hostname" in text.lower() and "match" in text.lower():
        reason = "its certificate is for another host name"
    else:
        reason = "the TLS handshake failed"
    trusted = f"the CA bundle {ca_bundle}" if ca_bundle else "the default certificate authorities"
    return (
        f"{host}: {reason}, checked against {trusted}; if a proxy re-signs TLS, pass its CA certificate "
        "with --ca-bundle FILE (or REQUESTS_CA_BUNDLE / SSL_CERT_FILE)"
    )


def _environment_proxy(err) -> str | None:
    """The proxy the environment chose for the failed request's URL."""
    import requests.utils

    url = getattr(getattr(err, "request", None), "url", None) or ""
    return requests.utils.select_proxy(url, requests.utils.get_environ_proxies(url)) if url else None
