"""What a downloaded body is, told from its first bytes rather than from a URL's suffix.

tensorflow_hub treats any http(s) URL as a module archive and trusts the body; hubcli
looks at the body instead: a module archive (gzip or plain tar, also bzip2 and xz), a
TFLite model, or one of the things that arrive in their place (an HTML login or
captive-portal page, a zip, an empty file).

Example:
    >>> sniff_bytes(b"\\x1f\\x8b\\x08\\x00")
    'gzip'
    >>> sniff_bytes(b"  <!DOCTYPE html><html><title>Sign in</title>")
    'html'
    >>> describe_content("html")
    'an HTML page (a login or captive-portal page?)'
"""

from __future__ import annotations

import os

#: How many leading bytes tell a body apart (a tar header's magic sits at offset 257).
SNIFF_BYTES = 512

_DESCRIPTIONS = {
    "gzip": "a gzip archive",
    "tar": "a tar archive",
    "bzip2": "a bzip2 archive",
    "xz": "an xz archive",
    "tflite": "a TFLite model",
    "zip": "a zip file",
    "html": "an HTML page (a login or captive-portal page?)",
    "empty": "empty",
    "unknown": "not an archive",
}

#: Kinds that a tar reader can open.
ARCHIVE_KINDS = frozenset({"gzip", "tar", "bzip2", "xz"})


def sniff_bytes(head: bytes) -> str:
    """The kind of content that starts with ``head`` (at least the first 512 bytes, when there are that many)."""
    if not head:
        return "empty"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh"):
        return "bzip2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head[257:262] == b"ustar":
        return "tar"
    if head[4:8] == b"TFL3":
        return "tflite"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<!--")):
        return "html"
    if head[257:262] == b"\0\0\0\0\0" and len(head) >= SNIFF_BYTES:
        return "tar"  # a pre-POSIX (v7) tar header has no magic; tarfile still reads it
    return "unknown"


def sniff(path: str | os.PathLike) -> str:
    """The kind of content in the file at ``path``; see :func:`sniff_bytes`."""
    with open(path, "rb") as source:
        return sniff_bytes(source.read(SNIFF_BYTES))


def describe_content(kind: str) -> str:
    """How a kind reads in a message: ``is a zip file``, ``is an HTML page (...)``."""
    return _DESCRIPTIONS.get(kind, _DESCRIPTIONS["unknown"])


def is_html_response(content_type: str | None, head: bytes) -> bool:
    """Whether a response is a web page: its Content-Type says so, or its first bytes do.

    Example:
        >>> is_html_response("text/html; charset=utf-8", b"")
        True
        >>> is_html_response("application/octet-stream", b"\\x1f\\x8b")
        False
    """
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return media_type in ("text/html", "application/xhtml+xml") or sniff_bytes(head) == "html"
