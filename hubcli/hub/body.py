"""Reading one response body fast and under watch: stalls, slow transfers and the deadline.

A body of known length (no chunked encoding) is read straight from the connection's
buffered socket with ``readinto1`` into preallocated buffers (a :class:`BufferRing`):
one system call and no Python-level copy per read, and every read returns what has
arrived rather than waiting to fill the buffer, so a dropped or stalled connection
loses nothing already received. A chunk stays valid until the caller releases it,
so the caller may hash it on another thread while the next one is read. Other
bodies go through urllib3's ``read1``.

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
import queue
import time

from hubcli.hub.failures import describe

#: Bytes per read: large enough that Python overhead is negligible next to the copy.
BUFFER_SIZE = 4 << 20


class BufferRing:
    """A few preallocated read buffers, handed out and given back, so none is reused while still in use.

    Example:
        >>> ring = BufferRing(count=2, size=8)
        >>> first = ring.take()
        >>> len(first), ring.give_back(first[:3])
        (8, None)
    """

    def __init__(self, count: int = 3, size: int = BUFFER_SIZE):
        self.size = size
        self._free: queue.Queue[bytearray] = queue.Queue()
        self._owned = set()
        for _ in range(count):
            buffer = bytearray(size)
            self._owned.add(id(buffer))
            self._free.put(buffer)

    def take(self) -> memoryview:
        """A free buffer; waits for one to be given back when all are in use."""
        return memoryview(self._free.get())

    def give_back(self, chunk) -> None:
        """Return the buffer ``chunk`` (a view of it) was read into; anything else is ignored."""
        owner = chunk.obj if isinstance(chunk, memoryview) else None
        if owner is not None and id(owner) in self._owned:
            self._free.put(owner)


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

    def __init__(self, response, retrier, ring: BufferRing | None = None):
        self.retrier = retrier
        self.ring = ring or BufferRing(count=1)
        self.options = retrier.options
        self.meter = SpeedMeter(self.options)
        self._urllib3 = response.raw
        wire = getattr(self._urllib3, "_fp", None)  # http.client.HTTPResponse under urllib3
        stream = getattr(wire, "fp", None)  # its buffered socket file
        direct = isinstance(wire, http.client.HTTPResponse) and not wire.chunked and hasattr(stream, "readinto1")
        self._stream = stream if direct else None
        self._remaining = wire.length if direct else None
        self._socket = getattr(getattr(stream, "raw", None), "_sock", None) if direct else None

    def read(self):
        """The next chunk (a memoryview valid until :meth:`release`, or bytes); empty at the end of the body.

        With every buffer of the ring unreleased, this waits for one to be released.

        Raises:
            BodyBroken: the connection dropped, stalled or crawled.
            DeadlineError: the overall timeout ran out.
        """
        self.meter.check()  # Before reading, so the chunk that arrived last was kept.
        self._arm_timeout()
        try:
            chunk = self._read_direct() if self._stream is not None else self._urllib3.read1(self.ring.size)
        except BodyBroken:
            raise
        except _transient_errors() as err:
            self.retrier.check_deadline()
            raise BodyBroken(describe(err)) from None
        if chunk:
            self.meter.add(len(chunk))
        self.retrier.check_deadline()
        return chunk

    def release(self, chunk) -> None:
        """Done with ``chunk``: its buffer may be read into again."""
        self.ring.give_back(chunk)

    def _read_direct(self):
        if self._remaining == 0:
            return b""
        buffer = self.ring.take()
        try:
            want = len(buffer) if self._remaining is None else min(len(buffer), self._remaining)
            count = self._stream.readinto1(buffer[:want])
            if count == 0 and self._remaining is not None:
                raise BodyBroken(f"connection dropped mid-body ({self._remaining} bytes short)")
        except BaseException:
            self.ring.give_back(buffer)
            raise
        if self._remaining is not None:
            self._remaining -= count
        if count == 0:
            self.ring.give_back(buffer)
            return b""
        return buffer[:count]

    def _arm_timeout(self) -> None:
        if self._socket is not None and self.options.deadline is not None:
            self._socket.settimeout(self.options.capped(self.options.read_timeout))


def _transient_errors() -> tuple[type[BaseException], ...]:
    """Failures while reading a body that a retry may cure (requests', urllib3's, http.client's, the socket's)."""
    import requests
    import urllib3

    return (requests.RequestException, urllib3.exceptions.HTTPError, http.client.HTTPException, ConnectionError, TimeoutError)
