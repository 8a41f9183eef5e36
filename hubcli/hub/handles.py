"""Module handles, parsed exactly as users write them.

:func:`parse_handle` turns what a user typed into a :class:`Handle`: what kind
of source it is, the first URL to request, the local path, where it lives in a
registry or mirror, and the ``cache_key`` whose sha1 names its cache directory.

Forms understood, in the order they are tried:

- ``https://tfhub.dev/<publisher>/<name...>/<version>`` (and ``http://``,
  ``www.tfhub.dev``): requested with ``tf-hub-format=compressed`` merged into
  the query; tfhub.dev redirects to Kaggle Models, then to signed storage.
- ``https://hub.tensorflow.google.cn/<path>``: the China mirror; like
  tensorflow_hub, requested straight from
  ``https://gcs.tensorflow.google.cn/tfhub-modules/<path>.tar.gz``.
- Kaggle Models web URLs, ``https://www.kaggle.com/models/<owner>/<model>/<framework>/<variation>[/<version>]``
  and ``.../models/<owner>/<model>/frameworks/<fw>/variations/<var>[/versions/<n>]``,
  and short handles ``<owner>/<model>/<framework>/<variation>[/<version>]``.
  The framework is case-insensitive; no version means the latest.
- Any other ``http(s)://`` URL, as for tensorflow_hub: requested with
  ``tf-hub-format=compressed`` merged into its query, redirects followed, the body
  accepted by its content (gzip or tar), not by the URL's suffix; a URL ending in
  ``.tar.gz`` / ``.tgz`` / ``.tar`` names the archive itself and is requested as is.
- ``gs://`` paths.
- Local directories (used in place), local archives and ``.tflite`` files, also as ``file://`` URLs.
- ``?lite-format=tflite`` in a tfhub.dev or http(s) handle (what ``pull --tflite`` adds)
  asks for the model's ``.tflite`` file, cached under that handle.
- Aliases: a bare name from the built-in catalog or the config file's
  ``[aliases.NAME]`` tables (``hubcli list`` shows them). Write ``./name`` to
  mean a local directory that happens to share an alias's name.

Cache keys match tensorflow_hub 0.16.1, which names a cache directory
``sha1(handle as given, utf-8)`` and normalises nothing, so a module pulled by
hubcli loads with ``hub.load(handle)`` offline and the other way round:

- URL handles (tfhub.dev, the .cn mirror, Kaggle web URLs, archive URLs,
  ``gs://``): the handle string itself (surrounding whitespace stripped).
- Aliases: the catalog's handle (what ``hub.load`` would be given).
- Kaggle short handles: the canonical Kaggle web URL
  ``https://www.kaggle.com/models/<owner>/<model>/frameworks/<Framework>/variations/<var>[/versions/<n>]``
  (the form Kaggle's snippets pass to ``hub.load``), so every spelling of the
  framework shares one entry.
- Local archives: the absolute path; local directories have none (used in place).

Environment overrides point the request (never the cache key) at another
server, so tests and air-gapped sites run the exact same code path:

- ``HUBCLI_TFHUB_ENDPOINT``: replaces ``https://tfhub.dev`` in request URLs.
- ``HUBCLI_TFHUB_CN_ENDPOINT``: replaces ``https://gcs.tensorflow.google.cn``.
- ``HUBCLI_KAGGLE_ENDPOINT``: replaces ``https://www.kaggle.com`` in Kaggle API URLs.
- ``HUBCLI_GCS_ENDPOINT``: replaces ``https://storage.googleapis.com`` for ``gs://`` objects.

Each value is a base URL, optionally with a path prefix
(``http://127.0.0.1:8000/tfhub``); hosts named there count as trusted.

Example:
    >>> from hubcli.config import Settings
    >>> h = parse_handle("https://tfhub.dev/google/imagenet/mobilenet_v2_100_224/feature_vector/5", Settings.load())
    >>> h.kind, h.registry_path, h.version
    ('tfhub', 'google/imagenet/mobilenet_v2_100_224/feature_vector', '5')
    >>> h.url
    'https://tfhub.dev/google/imagenet/mobilenet_v2_100_224/feature_vector/5?tf-hub-format=compressed'
    >>> parse_handle("google/mobilenet-v2/tensorFlow2/100-224-feature-vector/2", Settings.load()).url
    'https://www.kaggle.com/api/v1/models/google/mobilenet-v2/tensorflow2/100-224-feature-vector/2/download'
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from hubcli.errors import HubcliError, NotFoundError, UsageError

if TYPE_CHECKING:
    from hubcli.config import Settings

KINDS = ("tfhub", "kaggle", "url", "gcs", "local_dir", "local_archive")
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")

TFHUB_HOST = "tfhub.dev"
TFHUB_CN_HOST = "hub.tensorflow.google.cn"
TFHUB_ENDPOINT = "https://tfhub.dev"
TFHUB_CN_STORAGE_ENDPOINT = "https://gcs.tensorflow.google.cn"
KAGGLE_HOSTS = ("kaggle.com", "www.kaggle.com")
KAGGLE_ENDPOINT = "https://www.kaggle.com"
GCS_ENDPOINT = "https://storage.googleapis.com"
ENDPOINT_ENV = {
    TFHUB_ENDPOINT: "HUBCLI_TFHUB_ENDPOINT",
    TFHUB_CN_STORAGE_ENDPOINT: "HUBCLI_TFHUB_CN_ENDPOINT",
    KAGGLE_ENDPOINT: "HUBCLI_KAGGLE_ENDPOINT",
    GCS_ENDPOINT: "HUBCLI_GCS_ENDPOINT",
}

#: Kaggle Models frameworks, lower-case -> the spelling Kaggle's web URLs use.
#: Only the TensorFlow ones matter for tensorflow_hub cache compatibility.
KAGGLE_FRAMEWORKS = {
    "tensorflow1": "TensorFlow1",
    "tensorflow2": "TensorFlow2",
    "tflite": "TfLite",
    "tfjs": "TfJs",
    "keras": "Keras",
    "jax": "Jax",
    "flax": "Flax",
    "pytorch": "PyTorch",
    "transformers": "Transformers",
    "onnx": "Onnx",
    "gguf": "Gguf",
    "gemmacpp": "GemmaCpp",
    "maxtext": "MaxText",
    "tensorrtllm": "TensorRtLlm",
    "coral": "Coral",
    "scikitlearn": "ScikitLearn",
    "other": "Other",
}

_COMPRESSED_QUERY = ("tf-hub-format", "compressed")
#: What tfhub.dev's lite models answer with a ``.tflite`` file (also in a handle as the user wrote it).
_TFLITE_QUERY = ("lite-format", "tflite")
ARTIFACTS = ("module", "tflite")


@dataclass(frozen=True)
class Handle:
    """A parsed module handle.

    Attributes:
        raw: what the user wrote.
        kind: one of ``"tfhub"``, ``"kaggle"``, ``"url"``, ``"gcs"``, ``"local_dir"``, ``"local_archive"``.
        cache_key: the string whose sha1 names the tensorflow_hub-compatible cache
            directory (see :attr:`cache_dir_name`); ``None`` for local directories.
        url: the first URL to request; for a Kaggle handle without a version, the
            model-instance URL whose JSON ``versionNumber`` is the latest version
            (then call :meth:`with_version`). ``None`` for local kinds.
        path: the absolute local path (local kinds only).
        registry_path: where the module lives in a registry or mirror
            (``"google/imagenet/mobilenet_v2_100_224/feature_vector"``), or ``None``.
        version: the version as a string, ``None`` for "latest".
        alias: the catalog or config alias the user wrote, if any.
        artifact: ``"module"`` (a SavedModel archive) or ``"tflite"`` (a ``.tflite`` file:
            ``?lite-format=tflite`` in the handle, ``pull --tflite``, or a local ``.tflite`` file).
    """

    raw: str
    kind: str
    cache_key: str | None
    url: str | None = None
    path: Path | None = None
    registry_path: str | None = None
    version: str | None = None
    alias: str | None = None
    artifact: str = "module"

    @property
    def cache_dir_name(self) -> str | None:
        """The cache directory name tensorflow_hub uses: ``sha1(cache_key)`` in hex."""
        if self.cache_key is None:
            return None
        return hashlib.sha1(self.cache_key.encode("utf-8")).hexdigest()

    @property
    def needs_version_lookup(self) -> bool:
        """True for a Kaggle handle without a version: ``url`` answers JSON with ``versionNumber``."""
        return self.kind == "kaggle" and self.version is None

    def for_tflite(self) -> Handle:
        """The handle of the same model's TFLite file, as tfhub.dev serves it (``?lite-format=tflite``).

        Example:
            >>> from hubcli.config import Settings
            >>> lite = parse_handle("https://tfhub.dev/google/lite-model/aiy/vision/classifier/birds_V1/3", Settings.load())
            >>> lite.for_tflite().url, lite.for_tflite().artifact
            ('https://tfhub.dev/google/lite-model/aiy/vision/classifier/birds_V1/3?lite-format=tflite', 'tflite')
        """
        if self.artifact == "tflite":
            return self
        if self.kind not in ("tfhub", "url") or self.url is None or self.cache_key is None or ".tensorflow.google.cn" in self.url:
            raise UsageError(f"{self.raw}: --tflite needs a tfhub.dev or http(s) handle; Kaggle TFLite models are handles of framework tfLite")
        if self.url.split("?", 1)[0].lower().endswith(ARCHIVE_SUFFIXES):
            raise UsageError(f"{self.raw} names an archive; --tflite asks a hub for a model's .tflite file")
        parts = urllib.parse.urlsplit(self.cache_key)
        lite = _parse_http(self.raw, _merge_query(f"{parts.scheme}://{parts.netloc}{parts.path}", parts.query, _TFLITE_QUERY))
        return dataclasses.replace(lite, raw=self.raw, alias=self.alias)

    def with_version(self, version: int | str) -> Handle:
        """The same Kaggle handle pinned to ``version``, as if the user had written it.

        Example:
            >>> from hubcli.config import Settings
            >>> latest = parse_handle("google/mobilenet-v2/TensorFlow2/100-224-feature-vector", Settings.load())
            >>> latest.with_version(2).url.endswith("/100-224-feature-vector/2/download")
            True
        """
        if self.kind != "kaggle":
            raise UsageError(f"{self.raw}: only Kaggle handles are pinned to a version after parsing")
        version = _check_version(str(version), self.raw)
        owner, model, framework, variation = self.registry_path.split("/")
        return dataclasses.replace(
            self,
            cache_key=_kaggle_web_url(owner, model, framework, variation, version),
            url=_kaggle_api_url(owner, model, framework, variation, version),
            version=version,
        )


def parse_handle(text: str, settings: Settings) -> Handle:
    """Parse a handle, URL, path or alias as a user writes it.

    Raises:
        UsageError: the string has a recognisable form but is malformed.
        NotFoundError: a path that does not exist, or an unknown alias (with the closest names).

    Example:
        >>> from hubcli.config import Settings
        >>> parse_handle("nnlm-en-dim50", Settings.load()).cache_key
        'https://tfhub.dev/google/nnlm-en-dim50/2'
    """
    return _parse(text, settings, allow_alias=True)


def is_trusted_host(url: str, settings: Settings) -> bool:
    """Whether ``url`` is served by a trusted host (or a subdomain of one).

    Trusted: ``settings.trusted_hosts`` and the hosts of the endpoint overrides.
    Local paths have no host and count as trusted; for ``gs://`` the bucket is the host.

    Example:
        >>> from hubcli.config import Settings
        >>> is_trusted_host("https://storage.googleapis.com/x.tar.gz", Settings.load())
        True
        >>> is_trusted_host("https://evilkaggle.com/x.tar.gz", Settings.load())
        False
    """
    parts = urllib.parse.urlsplit(url)
    if "://" not in url or parts.scheme == "file":
        return True
    host = (parts.hostname or "").rstrip(".")
    if not host:
        return False
    override_hosts = (urllib.parse.urlsplit(_endpoint(default)).hostname for default in _overridden_endpoints())
    for trusted in (*settings.trusted_hosts, *override_hosts):
        trusted = (trusted or "").lower().rstrip(".")
        if trusted and (host == trusted or host.endswith("." + trusted)):
            return True
    return False


# --- parsing ---------------------------------------------------------------


def _parse(text: str, settings: Settings, allow_alias: bool) -> Handle:
    raw = text
    text = text.strip()
    if not text:
        raise UsageError("empty module handle")
    if "://" in text:
        scheme = text.split("://", 1)[0].lower()
        if scheme in ("http", "https"):
            return _parse_http(raw, text)
        if scheme == "gs":
            return _parse_gcs(raw, text)
        if scheme == "file":
            return _parse_local(raw, Path(urllib.parse.unquote(urllib.parse.urlsplit(text).path)))
        raise UsageError(f"{text}: unsupported URL scheme '{scheme}://' (use https://, gs://, file:// or a path)")

    is_bare_name = "/" not in text and os.sep not in text and not text.startswith((".", "~"))
    if is_bare_name and allow_alias:
        from hubcli.hub import catalog

        entry = catalog.find(text, settings)
        if entry is not None:
            try:
                target = _parse(entry.handle, settings, allow_alias=False)
            except HubcliError as err:
                # Name the alias, or users hunt for a handle they never typed.
                raise type(err)(f"alias '{entry.name}' ({entry.source}): {err}") from None
            return dataclasses.replace(target, raw=raw, alias=entry.name)

    local = Path(text).expanduser()
    if local.exists():
        return _parse_local(raw, local)
    kaggle = _parse_kaggle_short(raw, text)
    if kaggle is not None:
        return kaggle
    _not_found(text, settings, is_bare_name and allow_alias)


#: Names that mean a file, never an alias, when nothing by that name exists.
_FILE_SUFFIXES = (*ARCHIVE_SUFFIXES, ".keras")


def _not_found(text: str, settings: Settings, could_be_alias: bool) -> NoReturn:
    if could_be_alias and not text.endswith(_FILE_SUFFIXES):
        from hubcli.hub import catalog

        close = catalog.suggest(text, settings)
        hint = f"did you mean {', '.join(close)}?" if close else "`hubcli list` shows the known names"
        raise NotFoundError(f"unknown module alias '{text}'; {hint}")
    looks_like_path = text.startswith(("/", ".", "~")) or text.endswith(_FILE_SUFFIXES)
    if looks_like_path:
        raise NotFoundError(f"no such module directory or archive: {text}")
    raise NotFoundError(
        f"'{text}' is not an existing path, a known alias, a URL, or a Kaggle handle "
        "owner/model/framework/variation[/version]"
    )


def _parse_http(raw: str, text: str) -> Handle:
    try:
        parts = urllib.parse.urlsplit(text)
        host = (parts.hostname or "").lower().rstrip(".")
    except ValueError as err:  # A malformed [IPv6] host, for one.
        raise UsageError(f"{text}: not a valid URL ({err})") from None
    segments = [s for s in parts.path.split("/") if s]
    if host == TFHUB_HOST or host.endswith("." + TFHUB_HOST):
        registry_path, version = _tfhub_path(text, segments)
        url, artifact = _request_url(_endpoint(TFHUB_ENDPOINT) + parts.path, parts.query)
        return Handle(raw, "tfhub", cache_key=text, url=url, registry_path=registry_path, version=version, artifact=artifact)
    if host == TFHUB_CN_HOST:
        registry_path, version = _tfhub_path(text, segments)
        url = f"{_endpoint(TFHUB_CN_STORAGE_ENDPOINT)}/tfhub-modules/{'/'.join(segments)}.tar.gz"
        return Handle(raw, "tfhub", cache_key=text, url=url, registry_path=registry_path, version=version)
    if host in KAGGLE_HOSTS and segments[:1] == ["models"]:
        return _parse_kaggle_web(raw, text, segments[1:])
    if parts.path.lower().endswith(ARCHIVE_SUFFIXES):
        # A file's own URL is fetched as it is: a query added to a signed link would break its signature.
        return Handle(raw, "url", cache_key=text, url=text)
    # Any other URL is a module, as for tensorflow_hub, asked for its compressed form (the body's bytes decide).
    url, artifact = _request_url(f"{parts.scheme}://{parts.netloc}{parts.path}", parts.query)
    return Handle(raw, "url", cache_key=text, url=url, artifact=artifact)


def _request_url(base: str, query: str) -> tuple[str, str]:
    """(URL to request, artifact): ``lite-format=tflite`` asks for a .tflite file, anything else for the compressed module."""
    if (_TFLITE_QUERY[0], _TFLITE_QUERY[1]) in urllib.parse.parse_qsl(query, keep_blank_values=True):
        kept = urllib.parse.urlencode([(k, v) for k, v in urllib.parse.parse_qsl(query, keep_blank_values=True) if k != _COMPRESSED_QUERY[0]])
        return _merge_query(base, kept, _TFLITE_QUERY), "tflite"
    return _merge_query(base, query, _COMPRESSED_QUERY), "module"


def _tfhub_path(text: str, segments: list[str]) -> tuple[str, str | None]:
    """``google/x/feature_vector/5`` -> ("google/x/feature_vector", "5"); no number means latest."""
    if segments and segments[-1].isdigit():
        registry_path, version = segments[:-1], segments[-1]
    else:
        registry_path, version = segments, None
    if len(registry_path) < 2:
        raise UsageError(f"{text}: a tfhub.dev handle names a publisher and a model, as in https://tfhub.dev/google/nnlm-en-dim50/2")
    return "/".join(registry_path), version


def _merge_query(base: str, query: str, item: tuple[str, str]) -> str:
    """Set ``item`` in ``query`` (replacing an existing value), keeping every other parameter."""
    pairs = [(k, v) for k, v in urllib.parse.parse_qsl(query, keep_blank_values=True) if k != item[0]]
    return f"{base}?{urllib.parse.urlencode([*pairs, item])}"


def _parse_kaggle_web(raw: str, text: str, parts: list[str]) -> Handle:
    """``owner/model/fw/var[/n]`` or ``owner/model/frameworks/fw/variations/var[/versions/n]``."""
    keywords = [p.lower() for p in parts[2::2]]
    if len(parts) in (6, 8) and keywords == ["frameworks", "variations", "versions"][: len(keywords)]:
        parts = parts[0:2] + parts[3::2]
    if len(parts) not in (4, 5):
        raise UsageError(
            f"{text}: a Kaggle model URL names owner, model, framework and variation, as in "
            "https://www.kaggle.com/models/google/mobilenet-v2/TensorFlow2/100-224-feature-vector/2"
        )
    return _kaggle_handle(raw, text, parts, cache_key=text)


def _parse_kaggle_short(raw: str, text: str) -> Handle | None:
    parts = text.rstrip("/").split("/")  # A trailing slash (pasted from a browser) names nothing.
    if len(parts) not in (4, 5) or not all(parts) or text.endswith(ARCHIVE_SUFFIXES):
        return None
    return _kaggle_handle(raw, text, parts, cache_key=None)


def _kaggle_handle(raw: str, text: str, parts: list[str], cache_key: str | None) -> Handle:
    owner, model, framework, variation = parts[:4]
    framework = framework.lower()
    if framework not in KAGGLE_FRAMEWORKS:
        what = "unknown Kaggle framework" if cache_key else "no such path, and not a Kaggle handle: unknown framework"
        raise UsageError(f"{text}: {what} '{parts[2]}' (expected one of: {', '.join(KAGGLE_FRAMEWORKS)})")
    version = _check_version(parts[4], text) if len(parts) == 5 else None
    if cache_key is None:
        cache_key = _kaggle_web_url(owner, model, framework, variation, version)
    if version is None:
        url = f"{_kaggle_api_base(owner, model, framework, variation)}/get"
    else:
        url = _kaggle_api_url(owner, model, framework, variation, version)
    registry_path = "/".join((owner, model, framework, variation))
    return Handle(raw, "kaggle", cache_key=cache_key, url=url, registry_path=registry_path, version=version)


def _check_version(version: str, text: str) -> str:
    if not version.isdigit():
        raise UsageError(f"{text}: a Kaggle model version is a number, not '{version}'")
    return str(int(version))


def _kaggle_api_base(owner: str, model: str, framework: str, variation: str) -> str:
    path = "/".join(urllib.parse.quote(p, safe="") for p in (owner, model, framework, variation))
    return f"{_endpoint(KAGGLE_ENDPOINT)}/api/v1/models/{path}"


def _kaggle_api_url(owner: str, model: str, framework: str, variation: str, version: str) -> str:
    return f"{_kaggle_api_base(owner, model, framework, variation)}/{version}/download"


def _kaggle_web_url(owner: str, model: str, framework: str, variation: str, version: str | None) -> str:
    url = f"{KAGGLE_ENDPOINT}/models/{owner}/{model}/frameworks/{KAGGLE_FRAMEWORKS[framework]}/variations/{variation}"
    return url if version is None else f"{url}/versions/{version}"


def _parse_gcs(raw: str, text: str) -> Handle:
    bucket = urllib.parse.urlsplit(text).netloc
    if not bucket:
        raise UsageError(f"{text}: a gs:// path names a bucket, as in gs://bucket/path/module.tar.gz")
    return Handle(raw, "gcs", cache_key=text, url=text)


def _parse_local(raw: str, path: Path) -> Handle:
    path = path.expanduser()
    if path.is_dir():
        return Handle(raw, "local_dir", cache_key=None, path=path.resolve())
    if path.is_file():
        tflite = path.name.lower().endswith(".tflite")
        if not path.name.lower().endswith(ARCHIVE_SUFFIXES) and not tflite:
            raise UsageError(f"{path}: not a module directory, a .tar.gz, .tgz or .tar archive, or a .tflite file")
        resolved = path.resolve()
        return Handle(raw, "local_archive", cache_key=str(resolved), path=resolved, artifact="tflite" if tflite else "module")
    raise NotFoundError(f"no such module directory or archive: {path}")


def _overridden_endpoints() -> list[str]:
    return [default for default, env in ENDPOINT_ENV.items() if os.environ.get(env, "").strip()]


def _endpoint(default: str) -> str:
    """The base URL to request instead of ``default``, from its environment override."""
    override = os.environ.get(ENDPOINT_ENV[default], "").strip()
    if not override:
        return default
    if urllib.parse.urlsplit(override).scheme not in ("http", "https"):
        raise UsageError(f"{ENDPOINT_ENV[default]}={override!r} is not an http(s) URL")
    return override.rstrip("/")


def gcs_object_url(gs_url: str) -> str:
    """The HTTPS URL of a ``gs://`` object on Cloud Storage's public endpoint.

    Public objects (``tfhub-modules`` and the like) are fetched over plain HTTPS through the
    same retrying, resuming client as every other download, so no TensorFlow is needed.

    Example:
        >>> gcs_object_url("gs://tfhub-modules/google/nnlm en/2.tar.gz")
        'https://storage.googleapis.com/tfhub-modules/google/nnlm%20en/2.tar.gz'
    """
    parts = urllib.parse.urlsplit(gs_url)
    return f"{_endpoint(GCS_ENDPOINT)}/{parts.netloc}/{urllib.parse.quote(parts.path.lstrip('/'))}"


def kaggle_endpoint() -> str:
    """The base URL Kaggle API requests go to: ``https://www.kaggle.com`` or ``HUBCLI_KAGGLE_ENDPOINT``."""
    return _endpoint(KAGGLE_ENDPOINT)
