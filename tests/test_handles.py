"""parse_handle: every handle form users write, cache keys, endpoint overrides, trust."""

from __future__ import annotations

import hashlib
import urllib.parse

import pytest

from hubcli.config import Settings
from hubcli.errors import NotFoundError, UsageError
from hubcli.hub.handles import Handle, is_trusted_host, parse_handle

MOBILENET = "https://tfhub.dev/google/imagenet/mobilenet_v2_100_224/feature_vector/5"


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """No user config file, no endpoint overrides from the developer's shell."""
    monkeypatch.setenv("HUBCLI_CONFIG", str(tmp_path / "no-config.toml"))
    for name in ("HUBCLI_TFHUB_ENDPOINT", "HUBCLI_TFHUB_CN_ENDPOINT", "HUBCLI_KAGGLE_ENDPOINT", "HUBCLI_TRUSTED_HOSTS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def settings(tmp_path):
    return Settings.load(cache_dir=tmp_path / "cache")


def query_of(url: str) -> list[tuple[str, str]]:
    return urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query, keep_blank_values=True)


# --- tfhub.dev ---------------------------------------------------------------


def test_tfhub_url(settings):
    handle = parse_handle(MOBILENET, settings)
    assert handle.kind == "tfhub"
    assert handle.url == MOBILENET + "?tf-hub-format=compressed"
    assert handle.registry_path == "google/imagenet/mobilenet_v2_100_224/feature_vector"
    assert handle.version == "5"
    assert handle.path is None and handle.alias is None
    # tensorflow_hub 0.16.1 names the cache dir sha1(handle as given, utf-8), normalising nothing.
    assert handle.cache_key == MOBILENET
    assert handle.cache_dir_name == hashlib.sha1(MOBILENET.encode("utf-8")).hexdigest()


def test_tfhub_query_is_merged_not_appended(settings):
    raw = MOBILENET + "?foo=1&bar=a%20b&empty="
    handle = parse_handle(raw, settings)
    assert query_of(handle.url) == [("foo", "1"), ("bar", "a b"), ("empty", ""), ("tf-hub-format", "compressed")]
    assert urllib.parse.urlsplit(handle.url).path == urllib.parse.urlsplit(MOBILENET).path
    assert handle.cache_key == raw  # the request changes, the key stays what the user wrote


def test_tfhub_existing_format_parameter_is_replaced(settings):
    handle = parse_handle(MOBILENET + "?tf-hub-format=uncompressed&x=2", settings)
    assert query_of(handle.url) == [("x", "2"), ("tf-hub-format", "compressed")]


def test_tfhub_without_version_means_latest(settings):
    handle = parse_handle("https://tfhub.dev/google/nnlm-en-dim50", settings)
    assert (handle.registry_path, handle.version) == ("google/nnlm-en-dim50", None)


def test_tfhub_distinct_spellings_keep_distinct_cache_keys(settings):
    # Exactly as tensorflow_hub does: it hashes the string, so http:// and https:// differ.
    first = parse_handle(MOBILENET, settings)
    second = parse_handle(MOBILENET.replace("https://", "http://"), settings)
    assert first.cache_dir_name != second.cache_dir_name
    assert first.registry_path == second.registry_path


def test_tfhub_surrounding_whitespace_is_ignored(settings):
    assert parse_handle(f"  {MOBILENET}\n", settings).cache_key == MOBILENET


def test_tfhub_handle_needs_publisher_and_model(settings):
    with pytest.raises(UsageError, match="publisher and a model"):
        parse_handle("https://tfhub.dev/google", settings)


def test_china_mirror_downloads_from_its_storage(settings):
    raw = "https://hub.tensorflow.google.cn/tensorflow/efficientnet/lite0/feature-vector/2"
    handle = parse_handle(raw, settings)
    assert handle.kind == "tfhub"
    assert handle.url == "https://gcs.tensorflow.google.cn/tfhub-modules/tensorflow/efficientnet/lite0/feature-vector/2.tar.gz"
    assert handle.cache_key == raw
    assert (handle.registry_path, handle.version) == ("tensorflow/efficientnet/lite0/feature-vector", "2")


def test_tfhub_endpoint_override_changes_request_not_cache_key(settings, monkeypatch):
    monkeypatch.setenv("HUBCLI_TFHUB_ENDPOINT", "http://127.0.0.1:8123/hub/")
    handle = parse_handle(MOBILENET + "?foo=1", settings)
    assert handle.url == (
        "http://127.0.0.1:8123/hub/google/imagenet/mobilenet_v2_100_224/feature_vector/5?foo=1&tf-hub-format=compressed"
    )
    assert handle.cache_key == MOBILENET + "?foo=1"
    assert is_trusted_host(handle.url, settings)


def test_china_endpoint_override(settings, monkeypatch):
    monkeypatch.setenv("HUBCLI_TFHUB_CN_ENDPOINT", "http://127.0.0.1:9000")
    handle = parse_handle("https://hub.tensorflow.google.cn/google/nnlm-en-dim50/2", settings)
    assert handle.url == "http://127.0.0.1:9000/tfhub-modules/google/nnlm-en-dim50/2.tar.gz"


def test_bad_endpoint_override_is_a_usage_error(settings, monkeypatch):
    monkeypatch.setenv("HUBCLI_TFHUB_ENDPOINT", "127.0.0.1:8000")
    with pytest.raises(UsageError, match="HUBCLI_TFHUB_ENDPOINT"):
        parse_handle(MOBILENET, settings)


# --- Kaggle Models -----------------------------------------------------------

KAGGLE_API = "https://www.kaggle.com/api/v1/models/google/mobilenet-v2/tensorflow2/100-224-feature-vector"
KAGGLE_CANONICAL = "https://www.kaggle.com/models/google/mobilenet-v2/frameworks/TensorFlow2/variations/100-224-feature-vector"


@pytest.mark.parametrize("framework", ["tensorFlow2", "TensorFlow2", "tensorflow2", "TENSORFLOW2"])
def test_kaggle_short_handle_framework_is_case_insensitive(settings, framework):
    handle = parse_handle(f"google/mobilenet-v2/{framework}/100-224-feature-vector/2", settings)
    assert handle.kind == "kaggle"
    assert handle.url == KAGGLE_API + "/2/download"
    assert handle.registry_path == "google/mobilenet-v2/tensorflow2/100-224-feature-vector"
    assert handle.version == "2"
    # Every spelling shares one cache entry, named like the URL Kaggle's snippets give hub.load.
    assert handle.cache_key == KAGGLE_CANONICAL + "/versions/2"


@pytest.mark.parametrize(
    ("framework", "lowered"), [("tfjs", "tfjs"), ("TfLite", "tflite"), ("Keras", "keras"), ("jax", "jax"), ("PyTorch", "pytorch")]
)
def test_kaggle_other_frameworks(settings, framework, lowered):
    handle = parse_handle(f"keras/gemma/{framework}/gemma_2b_en/3", settings)
    assert handle.url == f"https://www.kaggle.com/api/v1/models/keras/gemma/{lowered}/gemma_2b_en/3/download"
    assert handle.registry_path == f"keras/gemma/{lowered}/gemma_2b_en"


def test_kaggle_short_handle_without_version_is_latest(settings):
    handle = parse_handle("google/mobilenet-v2/tensorFlow2/100-224-feature-vector", settings)
    assert handle.version is None
    assert handle.needs_version_lookup
    assert handle.url == KAGGLE_API + "/get"
    assert handle.cache_key == KAGGLE_CANONICAL

    pinned = handle.with_version(3)
    assert (pinned.version, pinned.needs_version_lookup) == ("3", False)
    assert pinned.url == KAGGLE_API + "/3/download"
    assert pinned.cache_key == KAGGLE_CANONICAL + "/versions/3"
    assert pinned.raw == handle.raw and pinned.registry_path == handle.registry_path


def test_with_version_only_for_kaggle(settings):
    with pytest.raises(UsageError):
        parse_handle(MOBILENET, settings).with_version(6)
    with pytest.raises(UsageError, match="number"):
        parse_handle("google/mobilenet-v2/tensorFlow2/100-224-feature-vector", settings).with_version("latest")


@pytest.mark.parametrize(
    ("raw", "version"),
    [
        ("https://www.kaggle.com/models/google/mobilenet-v2/TensorFlow2/100-224-feature-vector/2", "2"),
        ("https://www.kaggle.com/models/google/mobilenet-v2/tensorFlow2/100-224-feature-vector", None),
        (KAGGLE_CANONICAL + "/versions/2", "2"),
        (KAGGLE_CANONICAL, None),
        ("https://kaggle.com/models/google/mobilenet-v2/frameworks/tensorflow2/variations/100-224-feature-vector/versions/2", "2"),
        (KAGGLE_CANONICAL + "/versions/2?tfhub-redirect=true", "2"),
    ],
)
def test_kaggle_web_urls_short_and_long_forms(settings, raw, version):
    handle = parse_handle(raw, settings)
    assert handle.kind == "kaggle"
    assert handle.registry_path == "google/mobilenet-v2/tensorflow2/100-224-feature-vector"
    assert handle.version == version
    assert handle.url == (KAGGLE_API + (f"/{version}/download" if version else "/get"))
    assert handle.cache_key == raw  # a URL is hashed as given, so hub.load(raw) finds the entry


def test_kaggle_endpoint_override(settings, monkeypatch):
    monkeypatch.setenv("HUBCLI_KAGGLE_ENDPOINT", "http://127.0.0.1:7000/kaggle")
    handle = parse_handle("google/mobilenet-v2/tensorFlow2/100-224-feature-vector/2", settings)
    assert handle.url == "http://127.0.0.1:7000/kaggle/api/v1/models/google/mobilenet-v2/tensorflow2/100-224-feature-vector/2/download"
    assert handle.cache_key == KAGGLE_CANONICAL + "/versions/2"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("google/mobilenet-v2/tensorflow3/100-224-feature-vector/2", "unknown framework 'tensorflow3'"),
        ("google/mobilenet-v2/tensorflow2/100-224-feature-vector/latest", "version is a number"),
        ("https://www.kaggle.com/models/google/mobilenet-v2", "names owner, model, framework and variation"),
        ("https://www.kaggle.com/models/google/mobilenet-v2/caffe/x/1", "unknown Kaggle framework 'caffe'"),
    ],
)
def test_malformed_kaggle_handles(settings, raw, message):
    with pytest.raises(UsageError, match=message):
        parse_handle(raw, settings)


@pytest.mark.parametrize("suffix, version", [("/", None), ("/2/", "2")])
def test_kaggle_short_handle_with_trailing_slash(settings, suffix, version):
    # Pasted from a browser's address bar; the slash names nothing.
    handle = parse_handle("google/mobilenet-v2/TensorFlow2/100-224-feature-vector" + suffix, settings)
    assert (handle.kind, handle.version) == ("kaggle", version)
    assert handle.cache_key == parse_handle(f"google/mobilenet-v2/TensorFlow2/100-224-feature-vector{suffix.rstrip('/')}", settings).cache_key


# --- plain URLs, gs://, local ------------------------------------------------


@pytest.mark.parametrize("raw", ["http://[::1", "https://[bad-host]/m.tar.gz"])
def test_unparsable_url_is_a_usage_error(settings, raw):
    with pytest.raises(UsageError, match="not a valid URL"):
        parse_handle(raw, settings)


@pytest.mark.parametrize(
    "raw",
    [
        "https://example.com/models/encoder.tar.gz",
        "http://10.0.0.5:8000/m.tgz",
        "https://example.com/m.TAR",
        "https://storage.googleapis.com/bucket/m.tar.gz?X-Goog-Signature=abc&X-Goog-Expires=600",
    ],
)
def test_archive_urls(settings, raw):
    handle = parse_handle(raw, settings)
    assert (handle.kind, handle.url, handle.cache_key) == ("url", raw, raw)
    assert handle.registry_path is None and handle.version is None


@pytest.mark.parametrize(
    "raw, url",
    [
        ("https://example.com/models/encoder", "https://example.com/models/encoder?tf-hub-format=compressed"),
        ("http://10.0.0.5:8000/models/foo/1", "http://10.0.0.5:8000/models/foo/1?tf-hub-format=compressed"),
        ("https://example.com/m?token=a%20b&tf-hub-format=uncompressed", "https://example.com/m?token=a+b&tf-hub-format=compressed"),
        ("https://www.kaggle.com/datasets/x", "https://www.kaggle.com/datasets/x?tf-hub-format=compressed"),
    ],
)
def test_any_other_http_url_is_a_module_asked_for_its_compressed_form(settings, raw, url):
    handle = parse_handle(raw, settings)
    assert (handle.kind, handle.url, handle.cache_key) == ("url", url, raw)  # the cache key is what tensorflow_hub hashes


def test_gcs_path(settings):
    handle = parse_handle("gs://tfhub-modules/google/nnlm-en-dim50/2.tar.gz", settings)
    assert (handle.kind, handle.url, handle.cache_key) == ("gcs", handle.raw, handle.raw)
    with pytest.raises(UsageError, match="bucket"):
        parse_handle("gs:///x.tar.gz", settings)


def test_unsupported_scheme(settings):
    with pytest.raises(UsageError, match="ftp://"):
        parse_handle("ftp://example.com/m.tar.gz", settings)


def test_local_directory_is_used_in_place(settings, tmp_path, monkeypatch):
    module = tmp_path / "my module"
    module.mkdir()
    handle = parse_handle(str(module), settings)
    assert (handle.kind, handle.path, handle.cache_key, handle.cache_dir_name) == ("local_dir", module, None, None)

    monkeypatch.chdir(tmp_path)
    assert parse_handle("./my module", settings).path == module
    assert parse_handle(module.as_uri(), settings).path == module


def test_local_archive(settings, tmp_path, monkeypatch):
    archive = tmp_path / "m.tgz"
    archive.write_bytes(b"\x1f\x8b")
    monkeypatch.chdir(tmp_path)
    handle = parse_handle("m.tgz", settings)
    assert (handle.kind, handle.path, handle.cache_key) == ("local_archive", archive, str(archive))


def test_local_file_that_is_not_an_archive(settings, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("hi")
    with pytest.raises(UsageError, match="not a module directory, a .tar.gz, .tgz or .tar archive, or a .tflite file"):
        parse_handle(str(readme), settings)


@pytest.mark.parametrize("raw", ["./missing", "/no/such/dir", "missing.tar.gz", "~/no-such-module-dir", "modle.keras"])
def test_missing_local_paths(settings, raw):
    with pytest.raises(NotFoundError, match="no such module directory or archive"):
        parse_handle(raw, settings)


def test_path_like_string_that_is_nothing(settings):
    with pytest.raises(NotFoundError, match="not an existing path, a known alias, a URL, or a Kaggle handle"):
        parse_handle("models/encoder", settings)


def test_empty_handle(settings):
    with pytest.raises(UsageError, match="empty"):
        parse_handle("   ", settings)


# --- aliases -----------------------------------------------------------------


@pytest.mark.parametrize("raw", ["mobilenet_v2", "MobileNet-V2", " mobilenet-v2 "])
def test_builtin_alias(settings, raw):
    handle = parse_handle(raw, settings)
    assert isinstance(handle, Handle)
    assert (handle.kind, handle.alias, handle.raw) == ("tfhub", "mobilenet_v2", raw)
    # The cache key is the real handle, so hub.load(real handle) and hubcli share the entry.
    assert handle.cache_key == MOBILENET
    assert handle.url == MOBILENET + "?tf-hub-format=compressed"


def test_alias_wins_over_same_named_directory_unless_written_as_path(settings, tmp_path, monkeypatch):
    (tmp_path / "mobilenet_v2").mkdir()
    monkeypatch.chdir(tmp_path)
    assert parse_handle("mobilenet_v2", settings).kind == "tfhub"
    assert parse_handle("./mobilenet_v2", settings).kind == "local_dir"


def test_unknown_alias_names_the_closest(settings):
    with pytest.raises(NotFoundError) as caught:
        parse_handle("mobilnet_v2", settings)
    message = str(caught.value)
    assert message.startswith("unknown module alias 'mobilnet_v2'; did you mean mobilenet_v2")
    assert "\n" not in message


def test_unknown_alias_with_nothing_close(settings):
    with pytest.raises(NotFoundError, match="hubcli list"):
        parse_handle("zzzzqqq", settings)


def test_user_aliases_from_config_file(tmp_path, monkeypatch):
    config = tmp_path / "config.toml"
    config.write_text(
        '[aliases.my-encoder]\nhandle = "https://models.example/hub/encoder/3.tar.gz"\ntask = "text-embedding"\n'
        '[aliases.mobilenet_v2]\nhandle = "https://tfhub.dev/google/imagenet/mobilenet_v2_140_224/feature_vector/5"\n'
        f'[aliases.local]\nhandle = "{tmp_path}"\n'
    )
    monkeypatch.setenv("HUBCLI_CONFIG", str(config))
    settings = Settings.load()

    mine = parse_handle("my-encoder", settings)
    assert (mine.kind, mine.alias, mine.url) == ("url", "my-encoder", "https://models.example/hub/encoder/3.tar.gz")
    overridden = parse_handle("mobilenet_v2", settings)
    assert overridden.registry_path == "google/imagenet/mobilenet_v2_140_224/feature_vector"
    local = parse_handle("local", settings)
    assert (local.kind, local.path) == ("local_dir", tmp_path)


def test_broken_user_alias_is_named_in_the_error(tmp_path, monkeypatch):
    config = tmp_path / "config.toml"
    config.write_text('[aliases.team-encoder]\nhandle = "ftp://models.example/hub/encoder"\n')
    monkeypatch.setenv("HUBCLI_CONFIG", str(config))
    with pytest.raises(UsageError, match=r"^alias 'team-encoder' \(config\): ftp://models.example/hub/encoder: unsupported URL scheme"):
        parse_handle("team-encoder", Settings.load())


# --- trusted hosts -----------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "trusted"),
    [
        ("https://tfhub.dev/google/x/1", True),
        ("https://TFHUB.dev./google/x/1", True),
        ("https://www.kaggle.com/api/v1/models/a/b/keras/c/1/download", True),
        ("https://storage.googleapis.com/bucket/x.tar.gz?sig=1", True),
        ("https://kaggle-models-data.storage.googleapis.com/x", True),
        ("https://gcs.tensorflow.google.cn/tfhub-modules/x.tar.gz", True),
        ("https://evilkaggle.com/x.tar.gz", False),
        ("https://kaggle.com.evil.example/x.tar.gz", False),
        ("http://127.0.0.1:8000/x.tar.gz", False),
        ("gs://some-bucket/x.tar.gz", False),
        ("/home/me/module", True),
        ("file:///home/me/m.tar.gz", True),
    ],
)
def test_is_trusted_host(settings, url, trusted):
    assert is_trusted_host(url, settings) is trusted


def test_trusted_hosts_extend_to_subdomains(tmp_path, monkeypatch):
    monkeypatch.setenv("HUBCLI_TRUSTED_HOSTS", "models.example")
    settings = Settings.load()
    assert is_trusted_host("https://models.example/a.tar.gz", settings)
    assert is_trusted_host("https://eu.models.example:8443/a.tar.gz", settings)
    assert not is_trusted_host("https://badmodels.example/a.tar.gz", settings)
