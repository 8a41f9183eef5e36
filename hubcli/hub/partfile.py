"""A resumable download's ``.part`` file and the validators that say what it is a part of.

Resuming with ``Range`` alone splices two files into one when the resource changed
between attempts. So when a ``.part`` is started, the response's validators (its
``ETag`` and ``Last-Modified``, and the total size) are recorded beside it, in
``<file>.part.json``; a resume sends them as ``If-Range`` (the server answers the
whole new file if they no longer match) and checks the ``206`` it gets back against
them too (for servers that ignore ``If-Range``). A ``.part`` without a record, or
with no strong validator, is never resumed: it restarts from zero.

Example:
    >>> import tempfile
    >>> part = Path(tempfile.mkdtemp()) / "abc.part"
    >>> start(part, PartRecord(etag='"v1"', last_modified=None, total=10))
    >>> resume_headers(part, 4)
    {'Range': 'bytes=4-', 'If-Range': '"v1"'}
    >>> discard(part)
    >>> resume_headers(part, 4) is None
    True
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from hubcli.fsio import write_text_atomic


@dataclass(frozen=True)
class PartRecord:
    """What a ``.part`` file is the beginning of."""

    etag: str | None
    last_modified: str | None
    total: int | None

    @classmethod
    def from_response(cls, response, total: int | None) -> PartRecord:
        return cls(response.headers.get("ETag"), response.headers.get("Last-Modified"), total)

    @property
    def if_range(self) -> str | None:
        """The validator to send as ``If-Range``: a strong ETag, else the date (weak ETags may not be used)."""
        if self.etag and not self.etag.startswith("W/"):
            return self.etag
        return self.last_modified

    def matches(self, response, total: int | None) -> bool:
        """Whether a partial answer is still part of the file this record describes."""
        etag, modified = response.headers.get("ETag"), response.headers.get("Last-Modified")
        if self.etag and etag and etag != self.etag:
            return False
        if self.last_modified and modified and modified != self.last_modified:
            return False
        return self.total is None or total is None or total == self.total


def record_path(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def read_record(part: Path) -> PartRecord | None:
    try:
        data = json.loads(record_path(part).read_text(encoding="utf-8"))
        return PartRecord(data.get("etag"), data.get("last_modified"), data.get("total"))
    except (OSError, ValueError, AttributeError):
        return None


def start(part: Path, record: PartRecord) -> None:
    """Empty ``part`` and record what it will hold (the record first: a kill in between leaves an empty part)."""
    write_text_atomic(record_path(part), json.dumps(asdict(record)) + "\n")
    with open(part, "wb"):
        pass


def resume_headers(part: Path, offset: int) -> dict[str, str] | None:
    """The headers that resume ``part`` at ``offset``, or None when it cannot be resumed safely."""
    record = read_record(part)
    if offset <= 0 or record is None or record.if_range is None:
        return None
    return {"Range": f"bytes={offset}-", "If-Range": record.if_range}


def discard(part: Path) -> None:
    """Remove ``part`` and its record."""
    for path in (part, record_path(part)):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
