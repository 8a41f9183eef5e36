"""The HTTP client every request of the hub client goes through, with one policy for all of them.

Archives, registry indexes and Kaggle's version lookups share it:

- transient failures (connection errors, resets, stalled or too-slow reads, 5xx, 408
  and 429) are retried with exponential backoff and jitter, honouring ``Retry-After``;
- permanent ones fail at once with one line: a host name that does not resolve (unless
  ``HUBCLI_RETRIES`` is set, the user's way of asking for retries), a TLS certificate
  that does not verify (naming ``--ca-bundle``), a redirect loop or a redirect to
  something that is not http(s) (naming the target), 4xx answers;
- redirects are followed here, one hop at a time, so each hop is checked and Kaggle
  credentials are attached only to requests to Kaggle itself
  (:mod:`hubcli.hub.kaggle_auth`), never carried across a redirect;
- a read that stalls for ``read_timeout`` fails; so does a transfer slower than
  ``speed_limit`` bytes/s over ``speed_time`` seconds (like curl's
  ``--speed-limit``/``--speed-time``), and anything at all once the overall
  ``timeout`` (``pull --timeout``) is spent;
- ``Accept-Encoding: identity``, so byte offsets mean file offsets; proxies from
  ``HTTP(S)_PROXY``/``NO_PROXY``; certificate authorities from ``--ca-bundle``,
  ``REQUESTS_CA_BUNDLE`` or ``SSL_CERT_FILE``.

Tuning comes from the environment, so the CLI and tests share one code path:
``HUBCLI_RETRIES`` (5), ``HUBCLI_CONNECT_TIMEOUT`` (10 s), ``HUBCLI_READ_TIMEOUT``
(60 s), ``HUBCLI_BACKOFF`` (0.5 s, the first delay), ``HUBCLI_MAX_BACKOFF`` (30 s),
``HUBCLI_SPEED_LIMIT`` (1024 bytes/s; 0 turns the check off), ``HUBCLI_SPEED_TIME``
(30 s), ``HUBCLI_TIMEOUT`` (none); a value that is not a number is one usage error.

Example:
    >>> options = HttpOptions.from_env()
    >>> options.retries, options.speed_limit
    (5, 1024.0)
    >>> fetch_json("https://models.example/hub/index.json", options)  # doctest: +SKIP
    {'schema': 'hubcli.registry/1', 'modules': {...}}
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hubcli import __version__, console
from hubcli.config import env_number
from hubcli.errors import NetworkError, NotFoundError
from hubcli.hub import kaggle_auth
from hubcli.hub.failures import describe, is_name_resolution_error, tls_failure

if TYPE_CHECKING:
    from hubcli.config import Settings

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 10
#: The most a small document (an index, a version lookup) may weigh.
MAX_DOCUMENT_BYTES = 64 * 1024**2


@dataclass(frozen=True)
class HttpOptions:
    """Retry, timeout, speed and TLS policy for one operation (a pull, an index read)."""

    retries: int = 5
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    backoff: float = 0.5
    max_backoff: float = 30.0
    #: Longest Retry-After we honour; a server asking for an hour gets asked again sooner.
    max_retry_after: float = 120.0
    speed_limit: float = 1024.0
    speed_time: float = 30.0
    #: ``time.monotonic()`` by which the whole operation must be done, or None.
    deadline: float | None = None
    #: The overall timeout the deadline came from, for messages.
    timeout: float | None = None
    ca_bundle: str | None = None
    #: A host name that does not resolve is retried only when the user asked for retries.
    retry_unresolved_hosts: bool = False

    @classmethod
    def from_env(cls, settings: Settings | None = None) -> HttpOptions:
        """The policy from the ``HUBCLI_*`` variables, with TLS and the timeout from ``settings`` when given.

        The deadline starts now: make the options once per operation.
        """
        import os

        timeout = settings.timeout if settings is not None else env_number("HUBCLI_TIMEOUT", None, exclusive=True)
        if settings is not None:
            bundle = str(settings.ca_bundle) if settings.ca_bundle else None
        else:
            bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE") or None
        return cls(
            retries=env_number("HUBCLI_RETRIES", cls.retries, integer=True),
            connect_timeout=env_number("HUBCLI_CONNECT_TIMEOUT", cls.connect_timeout, exclusive=True),
            read_timeout=env_number("HUBCLI_READ_TIMEOUT", cls.read_timeout, exclusive=True),
            backoff=env_number("HUBCLI_BACKOFF", cls.backoff),
            max_backoff=env_number("HUBCLI_MAX_BACKOFF", cls.max_backoff),
            speed_limit=env_number("HUBCLI_SPEED_LIMIT", cls.speed_limit),
            speed_time=env_number("HUBCLI_SPEED_TIME", cls.speed_time, exclusive=True),
            deadline=None if timeout is None else time.monotonic() + timeout,
            timeout=timeout,
            ca_bundle=bundle,
            retry_unresolved_hosts=bool(os.environ.get("HUBCLI_RETRIES", "").strip()),
        )

    def remaining(self) -> float | None:
        """Seconds left before the deadline (None: no deadline)."""
        return None if self.deadline is None else self.deadline - time.monotonic()

    def capped(self, seconds: float) -> float:
        """``seconds``, or less if the deadline comes sooner (never below a millisecond)."""
        left = self.remaining()
        return seconds if left is None else max(0.001, min(seconds, left))

    def with_retries(self, retries: int) -> HttpOptions:
        return dataclasses.replace(self, retries=retries)


class DeadlineError(NetworkError):
    """The overall ``--timeout`` ran out."""


class Retrier:
    """Counts failed attempts and sleeps between them (exponential backoff, equal jitter).

    ``progress`` (set by a download) says what has arrived; it is added to the final
    message, so the user learns how far hubcli got before it gave up.
    """

    def __init__(self, options: HttpOptions, what: str):
        self.options = options
        self.what = what
        self.failures = 0
        self.progress: Callable[[], str] | None = None

    def wait(self, reason: str, retry_after: float | None = None) -> None:
        if self.failures >= self.options.retries:
            attempts = self.failures + 1
            raise NetworkError(f"{self.what}: {reason} (gave up after {attempts} attempt{'s' * (attempts > 1)}{self._received()})")
        if retry_after is not None:
            delay = min(retry_after, self.options.max_retry_after)
        else:
            ceiling = min(self.options.max_backoff, self.options.backoff * 2**self.failures)
            delay = ceiling / 2 + random.uniform(0, ceiling / 2)
        left = self.options.remaining()
        if left is not None and left <= delay:
            self.give_up_for_deadline(reason)
        self.failures += 1
        note(f"{reason}; retry {self.failures}/{self.options.retries} in {delay:.1f}s")
        time.sleep(delay)

    def progressed(self) -> None:
        self.failures = 0

    def check_deadline(self) -> None:
        left = self.options.remaining()
        if left is not None and left <= 0:
            self.give_up_for_deadline("still not done")

    def give_up_for_deadline(self, reason: str):
        raise DeadlineError(f"{self.what}: gave up after --timeout {self.options.timeout:g} s ({reason}{self._received()})")

    def _received(self) -> str:
        return f"; {self.progress()}" if self.progress else ""


def note(message: str) -> None:
    """Retry notes are for a person watching; off a TTY a failed command's stderr stays one line."""
    if console.progress_enabled():
        console.info(message)


def retry_after_seconds(value: str | None) -> float | None:
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


def host(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc or url


class Client:
    """A requests session under one :class:`HttpOptions`; a context manager.

    Example:
        >>> with Client(HttpOptions.from_env()) as client:  # doctest: +SKIP
        ...     response = client.get(url, headers={}, retrier=Retrier(client.options, url))
    """

    def __init__(self, options: HttpOptions):
        # requests costs ~100 ms to import; only paths that really download pay for it.
        import requests

        self.options = options
        self.session = requests.Session()
        self.session.headers["User-Agent"] = f"hubcli/{__version__}"
        # Byte offsets for Range must be offsets in the file we store, never in a re-encoded body.
        self.session.headers["Accept-Encoding"] = "identity"
        self._credentials: kaggle_auth.KaggleCredentials | None | bool = False  # False: not looked up yet

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.session.close()

    def get(self, url: str, *, headers: dict, retrier: Retrier, stream: bool = True, passthrough: frozenset[int] = frozenset()):
        """One GET, redirects followed hop by hop; None after a transient failure (the caller loops).

        Statuses in ``passthrough`` are returned instead of raising. The response's
        ``history`` lists the redirect responses it came through.
        """
        retrier.check_deadline()
        history: list = []
        visited = [url]
        while True:
            response = self._one_request(visited[-1], headers, retrier, stream)
            if response is None:
                return None
            if response.status_code not in REDIRECT_STATUSES or "Location" not in response.headers:
                break
            response.close()
            history.append(response)
            visited.append(_redirect_target(url, visited, response.headers["Location"]))
        response.history = history
        status = response.status_code
        if status in RETRY_STATUSES:
            response.close()
            retrier.wait(f"{host(response.url)}: HTTP {status} {response.reason}", retry_after_seconds(response.headers.get("Retry-After")))
            return None
        if status >= 400 and status != 416 and status not in passthrough:
            self._raise_for_status(response, url)
        return response

    def _one_request(self, url: str, headers: dict, retrier: Retrier, stream: bool):
        import requests

        request_headers = {**headers, **self._credentials_for(url)}
        timeout = (self.options.capped(self.options.connect_timeout), self.options.capped(self.options.read_timeout))
        try:
            return self.session.get(
                url,
                headers=request_headers,
                stream=stream,
                timeout=timeout,
                allow_redirects=False,
                verify=self.options.ca_bundle or True,
            )
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema) as err:
            raise NetworkError(f"{url}: not a URL that can be fetched ({type(err).__name__})") from None
        except requests.exceptions.SSLError as err:
            raise NetworkError(tls_failure(url, err, self.options.ca_bundle)) from None
        except requests.RequestException as err:
            if is_name_resolution_error(err) and not self.options.retry_unresolved_hosts:
                raise NetworkError(
                    f"{host(url)}: host name not found; check the name and the network (not retried: set HUBCLI_RETRIES to retry)"
                ) from None
            self._check_deadline_after(err, retrier)
            retrier.wait(f"{host(url)}: {describe(err)}")
            return None

    def _check_deadline_after(self, err: BaseException, retrier: Retrier) -> None:
        left = self.options.remaining()
        if left is not None and left <= 0.01:
            retrier.give_up_for_deadline(describe(err))

    def _credentials_for(self, url: str) -> dict[str, str]:
        if not kaggle_auth.sends_credentials(url):
            return {}
        if self._credentials is False:
            self._credentials = kaggle_auth.find_credentials()
        return self._credentials.headers() if self._credentials else {}

    def _raise_for_status(self, response, url: str):
        status = response.status_code
        response.close()
        if status == 404 or status == 410:
            raise NotFoundError(f"{url}: not found (HTTP {status}); check the handle and its version")
        if status in (401, 403):
            raise NetworkError(f"{url}: access denied (HTTP {status} {response.reason}){self._credentials_note(response.url)}")
        raise NetworkError(f"{url}: HTTP {status} {response.reason}")

    def _credentials_note(self, answered_by: str) -> str:
        """For a refusal by Kaggle: which credential was tried, or where none was found."""
        if not kaggle_auth.sends_credentials(answered_by):
            return ""
        if self._credentials:
            return f"; Kaggle refused the credentials from {self._credentials.source}"
        return f"; no Kaggle credentials were found ({kaggle_auth.SOURCES_TRIED}); gated and private models need them"


def _redirect_target(url: str, visited: list[str], location: str) -> str:
    """Where a redirect leads; fails at once for a loop, too many hops or anything but http(s)."""
    target = urllib.parse.urljoin(visited[-1], location.strip())
    if urllib.parse.urlsplit(target).scheme.lower() not in ("http", "https"):
        raise NetworkError(f"{url}: redirected to {target}, which is not http(s)")
    if target in visited:
        raise NetworkError(f"{url}: redirect loop: {visited[-1]} redirects back to {target}")
    if len(visited) > MAX_REDIRECTS:
        raise NetworkError(f"{url}: more than {MAX_REDIRECTS} redirects (the last to {target})")
    return target


def fetch_bytes(url: str, options: HttpOptions | None = None) -> bytes:
    """GET a small document (a registry index, a version lookup) under the policy.

    The body is read under the same stall, speed and deadline checks as an archive.

    Raises:
        NetworkError: retries exhausted, access denied, or a non-retryable HTTP status.
        NotFoundError: the server answered 404/410.
    """
    from hubcli.hub.body import BodyBroken, BodyReader, BufferRing

    options = options or HttpOptions.from_env()
    retrier = Retrier(options, url)
    with Client(options) as client:
        while True:
            response = client.get(url, headers={}, retrier=retrier)
            if response is None:
                continue
            with response:
                pieces, size = [], 0
                reader = BodyReader(response, retrier, BufferRing(count=1, size=1 << 16))
                try:
                    while chunk := reader.read():
                        size += len(chunk)
                        if size > MAX_DOCUMENT_BYTES:
                            raise NetworkError(f"{url}: the answer is larger than {MAX_DOCUMENT_BYTES} bytes; not a document hubcli reads")
                        pieces.append(bytes(chunk))
                        reader.release(chunk)
                except BodyBroken as broken:
                    retrier.wait(f"{host(url)}: {broken}")
                    continue
                return b"".join(pieces)


def fetch_text(url: str, options: HttpOptions | None = None) -> str:
    """:func:`fetch_bytes`, decoded as UTF-8 (a registry index)."""
    try:
        return fetch_bytes(url, options).decode("utf-8")
    except UnicodeDecodeError:
        raise NetworkError(f"{url}: the answer is not UTF-8 text") from None


def fetch_json(url: str, options: HttpOptions | None = None) -> object:
    """:func:`fetch_bytes`, parsed as JSON; returns whatever JSON value was sent (callers check its shape)."""
    body = fetch_bytes(url, options)
    try:
        return json.loads(body)
    except ValueError:
        shown = body[:60].decode("utf-8", "replace")
        raise NetworkError(f"{url}: the server did not answer JSON (it sent {shown!r})") from None
