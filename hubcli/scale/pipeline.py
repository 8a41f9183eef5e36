"""The Beam pipeline of ``hubcli extract``, stage by stage.

    list files -> read bytes, content hash -> skip hashes already cached, group duplicates
    -> decode and resize -> batch -> RunInference (hubcli's own handler) -> shards into the
    feature cache, plus manifest.csv and failures.csv

Hashes already in the cache and duplicate files are found by one ``CoGroupByKey`` on the
content hash, so only one file per new content is decoded and run through the module.
Files are read twice (to hash, then to decode the ones that need it) rather than carrying
every image's bytes through the shuffle. Counts go to Beam metrics, which every runner
returns to the launcher.

A worker whose decoder (Pillow, libjpeg-turbo, WebP) differs from the launcher's fails the
pipeline under ``strict``; otherwise its features are written under its own preprocessing
id, where they are honest but not found by this machine's ``retrain-images``, and the
launcher warns.

Example:
    >>> pipeline = beam.Pipeline(runner=make_runner("direct"), options=options)  # doctest: +SKIP
    >>> build(pipeline, plan)  # doctest: +SKIP
    >>> pipeline.run().wait_until_finish()  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

from hubcli.errors import IntegrityError
from hubcli.scale import shards
from hubcli.scale.handler import FeatureModelHandler
from hubcli.scale.sources import Item, list_remote_folder
from hubcli.train.decoder_id import decoder_differences, decoder_versions, describe_decoder, image_preprocessing_id
from hubcli.train.feature_cache import cache_subdirectory

#: Metrics namespaces: counts of the pipeline's outcomes, and the decoders workers used.
COUNTS = "hubcli.extract"
DECODERS = "hubcli.decoders"
MANIFEST_HEADER = "key,label,sha256,status"
FAILURES_HEADER = "key,reason"


@dataclass
class ExtractPlan:
    """Everything the pipeline needs, decided on the launcher."""

    #: Items listed on the launcher, or None to list ``remote_root`` on a worker.
    items: list[Item] | None
    remote_root: str | None
    features_root: str
    output_dir: str
    handler: FeatureModelHandler
    image_size: tuple[int, int]
    module_digest: str
    #: The launcher's decoder versions; workers compare theirs with them.
    decoder: dict[str, str] = field(default_factory=decoder_versions)
    #: The engine's part of the feature-cache key (hubcli.train.engines; "" for TensorFlow).
    engine_tag: str = ""
    strict: bool = False
    rows_per_shard: int = shards.ROWS_PER_SHARD


def _count(name: str, value: int = 1) -> None:
    Metrics.counter(COUNTS, name).inc(value)


def _read(source: str | bytes) -> bytes:
    if isinstance(source, bytes):
        return source
    with FileSystems.open(source) as stream:
        return stream.read()


def _reason(err: BaseException) -> str:
    return " ".join(f"{type(err).__name__}: {err}".split())


class ReadAndHash(beam.DoFn):
    """(key, label, source) -> (sha256, (key, label, source)); unreadable files to ``unreadable``."""

    def process(self, item: Item):
        import hashlib

        key, label, source = item
        try:
            data = _read(source)
        except (OSError, ValueError) as err:
            _count("unreadable")
            yield beam.pvalue.TaggedOutput("failed", (key, _reason(err)))
            return
        _count("examples")
        yield hashlib.sha256(data).hexdigest(), (key, label, source)


def _cached_keys_files(directory: str) -> list[str]:
    matches = FileSystems.match([f"{directory}/shard-*.keys"])
    return [metadata.path for metadata in matches[0].metadata_list]


def _cached_keys(keys_file: str) -> Iterator[tuple[str, None]]:
    for line in _read(keys_file).decode("utf-8").splitlines():
        if line and "+" not in line:  # augmented copies are "<hash>+aug..."; extract makes none
            yield line, None


class Decide(beam.DoFn):
    """Per content hash: manifest rows for every file, and one file to compute unless cached."""

    def process(self, grouped):
        digest, sides = grouped
        examples = sorted(sides["examples"])
        if not examples:
            return
        cached = bool(list(sides["cached"]))
        for position, (key, label, _) in enumerate(examples):
            status = "cached" if cached else "computed" if position == 0 else "duplicate"
            yield key, label, digest, status
        _count("cached" if cached else "new")
        _count("duplicates", len(examples) - 1)
        if not cached:
            yield beam.pvalue.TaggedOutput("todo", (digest, (examples[0][2], [key for key, _, _ in examples])))


class Decode(beam.DoFn):
    """(sha256, (source, keys)) -> ((preprocessing id, sha256), uint8 pixels); failures to ``failed``."""

    def __init__(self, *, image_size: tuple[int, int], launcher_decoder: dict[str, str], engine_tag: str, strict: bool):
        self.image_size = tuple(image_size)
        self.launcher_decoder = dict(launcher_decoder)
        self.engine_tag = engine_tag
        self.strict = strict
        self.preprocessing = None

    def setup(self):
        versions = decoder_versions()
        differences = decoder_differences(self.launcher_decoder, versions)
        if differences and self.strict:
            raise IntegrityError(
                f"a worker decodes images with {describe_decoder(versions)}, not the launcher's "
                f"{describe_decoder(self.launcher_decoder)} ({'; '.join(differences)}); install the same Pillow on both"
            )
        self.preprocessing = image_preprocessing_id(self.image_size, versions=versions) + self.engine_tag
        self.decoder = describe_decoder(versions)

    def process(self, todo):
        from hubcli.train.images import decode_failure, decode_image

        digest, (source, keys) = todo
        try:
            pixels = decode_image(_read(source), self.image_size)
        except Exception as err:  # noqa: BLE001 - PIL raises many types for damaged files
            _count("failed", len(keys))
            for key in keys:
                yield beam.pvalue.TaggedOutput("failed", (key, decode_failure(err)))
            return
        Metrics.counter(DECODERS, self.decoder).inc()
        yield (self.preprocessing, digest), pixels


def _to_bucket(computed, buckets: int):
    (preprocessing, digest), vector = computed
    return (preprocessing, shards.bucket_of(digest, buckets)), (digest, np.asarray(vector, dtype=np.float32))


class WriteShard(beam.DoFn):
    """((preprocessing id, bucket), [(sha256, vector)]) -> one shard in the feature cache."""

    def __init__(self, *, features_root: str, module_digest: str):
        self.features_root = features_root
        self.module_digest = module_digest

    def process(self, bucket):
        (preprocessing, _), rows = bucket
        rows = list(rows)
        name = shards.write_shard(
            features_root=self.features_root,
            module_digest=self.module_digest,
            preprocessing=preprocessing,
            keys=[digest for digest, _ in rows],
            features=np.stack([vector for _, vector in rows]),
        )
        _count("shards")
        _count("features_written", len(rows))
        yield f"{cache_subdirectory(self.module_digest, preprocessing)}/{name}"


def _csv_line(*values) -> str:
    line = io.StringIO()
    csv.writer(line, lineterminator="").writerow(values)
    return line.getvalue()


def build(pipeline: beam.Pipeline, plan: ExtractPlan) -> None:
    """Add the extraction stages to ``pipeline`` (nothing runs until the pipeline does)."""
    if plan.items is not None:
        listed = pipeline | "list files" >> beam.Create(plan.items, reshuffle=True)
    else:
        listed = (
            pipeline
            | "root" >> beam.Create([plan.remote_root])
            | "list files" >> beam.FlatMap(list_remote_folder)
            | "spread files" >> beam.Reshuffle()
        )
    hashed = listed | "read and hash" >> beam.ParDo(ReadAndHash()).with_outputs("failed", main="hashed")
    launcher_preprocessing = image_preprocessing_id(plan.image_size, versions=plan.decoder) + plan.engine_tag
    cached = (
        pipeline
        | "cache directory" >> beam.Create([f"{plan.features_root.rstrip('/')}/{cache_subdirectory(plan.module_digest, launcher_preprocessing)}"])
        | "list shards" >> beam.FlatMap(_cached_keys_files)
        | "spread shards" >> beam.Reshuffle()
        | "cached keys" >> beam.FlatMap(_cached_keys)
    )
    decided = (
        {"examples": hashed.hashed, "cached": cached}
        | "group by content" >> beam.CoGroupByKey()
        | "skip cached, group duplicates" >> beam.ParDo(Decide()).with_outputs("todo", main="manifest")
    )
    decoded = decided.todo | "decode and resize" >> beam.ParDo(
        Decode(image_size=plan.image_size, launcher_decoder=plan.decoder, engine_tag=plan.engine_tag, strict=plan.strict)
    ).with_outputs("failed", main="pixels")
    buckets = decided.todo | "count new" >> beam.combiners.Count.Globally() | "shard count" >> beam.Map(
        shards.bucket_count, rows_per_shard=plan.rows_per_shard
    )
    (
        decoded.pixels
        | "features" >> RunInference(KeyedModelHandler(plan.handler))
        | "assign shards" >> beam.Map(_to_bucket, buckets=beam.pvalue.AsSingleton(buckets))
        | "group shards" >> beam.GroupByKey()
        | "write shards" >> beam.ParDo(WriteShard(features_root=plan.features_root, module_digest=plan.module_digest))
    )
    output = plan.output_dir.rstrip("/")
    (
        decided.manifest
        | "manifest rows" >> beam.MapTuple(lambda key, label, digest, status: _csv_line(key, label, digest, status))
        | "write manifest" >> beam.io.WriteToText(f"{output}/manifest.csv", shard_name_template="", header=MANIFEST_HEADER)
    )
    (
        (hashed.failed, decoded.failed)
        | "all failures" >> beam.Flatten()
        | "failure rows" >> beam.MapTuple(lambda key, reason: _csv_line(key, reason))
        | "write failures" >> beam.io.WriteToText(f"{output}/failures.csv", shard_name_template="", header=FAILURES_HEADER)
    )
