"""The retrying HTTP client every network request of the hub client goes through.

One policy for archives, registry indexes and Kaggle's version lookups:

- retries connection errors, resets, stalled reads, 5xx, 408 and 429 with
  exponential backoff and jitter, honouring ``Retry-After``;
- times out on connect and on a read that stalls (not on a slow but moving one);
- asks for ``Accept-Encoding: identity`` so byte offsets mean file offsets;
- uses the proxies of ``HTTP(S)_PROXY``/``NO_PROXY`` (requests' ``trust_env``,
  never turned off here).

Tuning comes from the environment, so the CLI and tests share one code path:
``HUBCLI_RETRIES`` (5), ``HUBCLI_CONNECT_TIMEOUT`` (10 s), ``HUBCLI_READ_TIMEOUT``
(60 s), ``HUBCLI_BACKOFF`` (0.5 s, the first delay), ``HUBCLI_MAX_BACKOFF`` (30 s);
a value that is not a number is one usage error naming the variable.

Example:
    >>> HttpOptions.from_env().retries
    5
    >>> fetch_json("https://models.example/hub/index.json")  # doctest: +SKIP
    {'schema': 'hubcli.registry/1', 'modules': {...}}
"""

from __future__ import annotations

import random
import time
import urllib.parse
from dataclasses import dataclass

from hubcli import __version__, console
from hubcli.config import env_number
from hubcli.errors import NetworkError, NotFoundError

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class HttpOptions:
    """Retry and timeout policy for one request or download."""

    retries: int = 5
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    backoff: float = 0.5
    max_backoff: float = 30.0
    #: Longest Retry-After we honour; a server asking for an hour gets asked again sooner.
    max_retry_after: float = 120.0

    @classmethod
    def from_env(cls) -> HttpOptions:
        """The policy, with each field overridden by its ``HUBCLI_*`` variable when set."""
        return cls(
            retries=env_number("HUBCLI_RETRIES", cls.retries, integer=True),
            connect_timeout=env_number("HUBCLI_CONNECT_TIMEOUT", cls.connect_timeout, exclusive=True),
            read_timeout=env_number("HUBCLI_READ_TIMEOUT", cls.read_timeout, exclusive=True),
            backoff=env_number("HUBCLI_BACKOFF", cls.backoff),
            max_backoff=env_number("HUBCLI_MAX_BACKOFF", cls.max_backoff),
        )


class Retrier:
    """Counts failed attempts and sleeps between them (exponential backoff, equal jitter)."""

    def __init__(self, options: HttpOptions, what: str):
        self.options = options
        self.what = what
        self.failures = 0

    def wait(self, reason: str, retry_after: float | None = None) -> None:
        if self.failures >= self.options.retries:
            raise NetworkError(f"{self.what}: {reason} (gave up after {self.failures + 1} attempts)")
        if retry_after is not None:
            delay = min(retry_after, self.options.max_retry_after)
        else:
            ceiling = min(self.options.max_backoff, self.options.backoff * 2**self.failures)
            delay = ceiling / 2 + random.uniform(0, ceiling / 2)
        self.failures += 1
        note(f"{reason}; retry {self.failures}/{self.options.retries} in {delay:.1f}s")
        time.sleep(delay)

    def progressed(self) -> None:
        self.failures = 0


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


def session():
    """A requests session with hubcli's User-Agent that never asks for re-encoded bodies."""
    # requests costs ~100 ms to import; only paths that really download pay for it.
    import requests

    client = requests.Session()
    client.headers["User-Agent"] = f"hubcli/{__version__}"
    # Byte offsets for Range must be offsets in the file we store, never in a re-encoded body.
    client.headers["Accept-Encoding"] = "identity"
    return client


def fetch_text(url: str, options: HttpOptions | None = None) -> str:
    """GET a small text document (a registry index) under the retry policy.

    Raises:
        NetworkError: retries exhausted, access denied, or a non-retryable HTTP status.
        NotFoundError: the server answered 404/410.
    """
    options = options or HttpOptions.from_env()
    retrier = Retrier(options, url)
    with session() as client:
        while True:
            response = get(client, url, headers={}, options=options, retrier=retrier, stream=False)
            if response is not None:
                return response.text


def fetch_json(url: str, options: HttpOptions | None = None) -> object:
    """GET a small JSON document (Kaggle's latest version, a registry index) under the retry policy.

    Returns whatever JSON value the server sent; callers check its shape.
    """
    import json

    try:
        return json.loads(fetch_text(url, options))
    except ValueError:
        raise NetworkError(f"{url}: the server did not answer JSON") from None


def get(
    client,
    url: str,
    *,
    headers: dict,
    options: HttpOptions,
    retrier: Retrier,
    stream: bool = True,
    passthrough: frozenset[int] = frozenset(),
):
    """One GET; transient failures sleep and return None (the caller loops), permanent ones raise.

    Statuses in ``passthrough`` are returned to the caller instead of raising.
    """
    import requests

    try:
        response = client.get(url, headers=headers, stream=stream, timeout=(options.connect_timeout, options.read_timeout))
    except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema) as err:
        raise NetworkError(f"{url}: not a URL that can be fetched ({type(err).__name__})") from None
    except requests.RequestException as err:
        retrier.wait(f"{host(url)}: {describe(err)}")
        return None
    if response.status_code in RETRY_STATUSES:
        response.close()
        retrier.wait(
            f"{host(response.url)}: HTTP {response.status_code} {response.reason}",
            retry_after_seconds(response.headers.get("Retry-After")),
        )
        return None
    if response.status_code >= 400 and response.status_code != 416 and response.status_code not in passthrough:
        _raise_for_status(response, url)
    return response


def _raise_for_status(response, url: str):
    status = response.status_code
    response.close()
    if status == 404 or status == 410:
        raise NotFoundError(f"{url}: not found (HTTP {status}); check the handle and its version")
    if status in (401, 403):
        raise NetworkError(f"{url}: access denied (HTTP {status} {response.reason})")
    raise NetworkError(f"{url}: HTTP {status} {response.reason}")


def transient_errors() -> tuple[type[BaseException], ...]:
    """Failures while reading a body that a retry may cure (requests', urllib3's, the socket's)."""
    import requests
    import urllib3

    return (requests.RequestException, urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)


def describe(err: BaseException) -> str:
    """A short reason for a requests/urllib3 failure, without nested reprs."""
    import requests
    import urllib3

    if isinstance(err, requests.exceptions.ProxyError):
        # Checked first: it is also a ConnectionError, and "connection refused" would blame the module's host.
        return f"cannot connect to the proxy {_environment_proxy(err) or ''} set by HTTP_PROXY/HTTPS_PROXY"
    if isinstance(err, requests.ConnectTimeout):
        return "connection timed out"
    if isinstance(err, (requests.ReadTimeout, urllib3.exceptions.ReadTimeoutError, TimeoutError)) or "timed out" in str(err).lower():
        return "read stalled (timed out)"
    if isinstance(err, (requests.exceptions.ChunkedEncodingError, urllib3.exceptions.ProtocolError)):
        return "connection dropped mid-body"
    if isinstance(err, requests.ConnectionError):
        text = str(err)
        if "Connection refused" in text:
            return "connection refused"
        if "reset" in text.lower():
            return "connection reset"
        if "Name or service not known" in text or "NameResolutionError" in text:
            return "host name not found"
        return "connection failed"
    return type(err).__name__


def _environment_proxy(err) -> str | None:
    """The proxy the environment chose for the failed request's URL."""
    import requests.utils

    url = getattr(getattr(err, "request", None), "url", None) or ""
    return requests.utils.select_proxy(url, requests.utils.get_environ_proxies(url)) if url else None


