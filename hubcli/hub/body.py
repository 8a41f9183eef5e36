"""Reading one response body fast and under watch: stalls, slow transfers and the deadline.

A body of known length (no chunked encoding) is read straight from the connection's
buffered socket with ``readinto1`` into one preallocated buffer: one system call and
no Python-level copy per read, and every read returns what has arrived rather than
waiting to fill the buffer, so a dropped or stalled connection loses nothing already
received. Other bodies go through urllib3's ``read1``.

Before each read the socket's timeout is set to the read timeout, or less when the
overall deadline comes sooner; after each read a :class:`SpeedMeter` checks the rate.
Every failure that a retry may cure comes out as :class:`BodyBroken` with a short
reason, so callers never mistake a full disk (an ``OSError`` of their own writes) for
a network problem.

Example:
    >>> reader = BodyReader(response, retrier)  # doctest: +SKIP
    >>> while chunk := reader.read():  # doctest: +SKIP
    ...     out.write(chunk)
"""

from __future__ import annotations

import http.client
import time

from hubcli.hub.failures import describe

#: Bytes per read: large enough that Python overhead is negligible next to the copy.
BUFFER_SIZE = 4 << 20


class BodyBroken(Exception):
    """The body broke off, stalled or crawled; a retry (with Range) may cure it. ``str()`` is the reason."""

    #: A crawl, as opposed to a break: its trickle of bytes is no progress worth a fresh retry budget.
    too_slow = False


class TooSlow(BodyBroken):
    """The transfer stayed below the speed limit for a whole window."""

    too_slow = True


class SpeedMeter:
    """Fails a transfer slower than ``speed_limit`` bytes/s over each ``speed_time`` window.

    Example:
        >>> from hubcli.hub.http_client import HttpOptions
        >>> meter = SpeedMeter(HttpOptions(speed_limit=1000, speed_time=0.01))
        >>> meter.add(5)
        >>> time.sleep(0.02)
        >>> meter.check()  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        hubcli.hub.body.TooSlow: transfer slower than 1000 bytes/s for 0.01 s (5 bytes arrived in 0.0... s)
    """

    def __init__(self, options):
        self.limit = options.speed_limit
        self.window = options.speed_time
        self.started = time.monotonic()
        self.bytes = 0

    def add(self, count: int) -> None:
        self.bytes += count

    def check(self) -> None:
        if self.limit <= 0:
            return
        now = time.monotonic()
        elapsed = now - self.started
        if elapsed < self.window:
            return
        if self.bytes < self.limit * self.window:
            raise TooSlow(
                f"transfer slower than {self.limit:g} bytes/s for {self.window:g} s ({self.bytes} bytes arrived in {elapsed:.1f} s)"
            )
        self.started, self.bytes = now, 0


class BodyReader:
    """Reads ``response``'s body chunk by chunk; see the module docstring."""

    def __init__(self, response, retrier, buffer_size: int = BUFFER_SIZE):
        self.retrier = retrier
        self.options = retrier.options
        self.meter = SpeedMeter(self.options)
        self._urllib3 = response.raw
        wire = getattr(self._urllib3, "_fp", None)  # http.client.HTTPResponse under urllib3
        stream = getattr(wire, "fp", None)  # its buffered socket file
        direct = isinstance(wire, http.client.HTTPResponse) and not wire.chunked and hasattr(stream, "readinto1")
        self._stream = stream if direct else None
        self._remaining = wire.length if direct else None
        self._socket = getattr(getattr(stream, "raw", None), "_sock", None) if direct else None
        self._buffer = memoryview(bytearray(buffer_size)) if direct else None
        self._buffer_size = buffer_size

    def read(self):
        """The next chunk (a memoryview valid until the next call, or bytes); empty at the end of the body.

        Raises:
            BodyBroken: the connection dropped, stalled or crawled.
            DeadlineError: the overall timeout ran out.
        """
        self.meter.check()  # Before reading, so the chunk that arrived last was kept.
        self._arm_timeout()
        try:
            chunk = self._read_direct() if self._stream is not None else self._urllib3.read1(self._buffer_size)
        except BodyBroken:
            raise
        except _transient_errors() as err:
            self.retrier.check_deadline()
            raise BodyBroken(describe(err)) from None
        if chunk:
            self.meter.add(len(chunk))
        self.retrier.check_deadline()
        return chunk

    def _read_direct(self):
        if self._remaining == 0:
            return b""
        want = self._buffer_size if self._remaining is None else min(self._buffer_size, self._remaining)
        count = self._stream.readinto1(self._buffer[:want])
        if count == 0 and self._remaining is not None:
            raise BodyBroken(f"connection dropped mid-body ({self._remaining} bytes short)")
        if self._remaining is not None:
            self._remaining -= count
        return self._buffer[:count]

    def _arm_timeout(self) -> None:
        if self._socket is not None and self.options.deadline is not None:
            self._socket.settimeout(self.options.capped(self.options.read_timeout))


def _transient_errors() -> tuple[type[BaseException], ...]:
    """Failures while reading a body that a retry may cure (requests', urllib3's, http.client's, the socket's)."""
    import requests
    import urllib3

    return (requests.RequestException, urllib3.exceptions.HTTPError, http.client.HTTPException, ConnectionError, TimeoutError)
