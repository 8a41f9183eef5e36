"""The library behind ``hubcli extract``: fill the feature cache of a module on a Beam runner.

Afterwards ``retrain-images`` on the same images and module finds every feature in the cache
and runs the module on none. The output folder (by default beside the shards, under
``<features dir>/<module>/<preprocessing>/extracts/<data name>/``) holds ``manifest.csv`` (every
file: key, class, content hash, computed | duplicate | cached), ``failures.csv`` (files that
could not be read or decoded, with the reason) and ``extract.json`` (the summary ``--json`` prints).

:func:`plan_extraction` builds the pipeline without running it (what a remote runner would
be handed); :func:`extract` plans, runs and reports.

Example:
    >>> summary = extract(data="flowers/", module_handle="efficientnet_lite0", settings=Settings.load(),  # doctest: +SKIP
    ...                   runner="direct", workers=2)
    >>> summary["counts"]["computed"], summary["shards_written"]  # doctest: +SKIP
    (500, 1)
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hubcli import console
from hubcli.config import Settings
from hubcli.errors import HubcliError, UsageError

EXTRACT_SCHEMA = "hubcli.extract/1"
_WORKER_ERROR = re.compile(r"hubcli\.errors\.(\w+): (.+)")
_COUNTS = ("examples", "new", "cached", "duplicates", "failed", "unreadable", "features_written", "shards")


@dataclass
class Extraction:
    """A built, not yet run, extraction pipeline and what its report needs."""

    pipeline: object
    runner: str
    workers: int
    data: str
    module: object
    preprocessing: str
    engine: str
    decoder: str
    features_root: str
    output: str
    #: Where the pipeline writes its files: ``output`` itself for a URL, else a sibling swapped in at the end.
    staging: str


def _require_beam() -> None:
    try:
        import apache_beam  # noqa: F401
    except ImportError:
        raise UsageError("hubcli extract needs Apache Beam: pip install 'hubcli[beam]'") from None


def plan_extraction(
    *,
    data: str | None,
    module_handle: str,
    settings: Settings,
    tfds_name: str | None = None,
    runner: str = "direct",
    workers: int = 1,
    beam_options: Sequence[str] = (),
    features_dir: str | None = None,
    output: str | None = None,
    image_size: tuple[int, int] | None = None,
    batch_size: int = 32,
    rows_per_shard: int | None = None,
    strict: bool = False,
    expected_decoder: dict[str, str] | None = None,
) -> Extraction:
    """Check the runner can start, resolve the module, list the data and build the pipeline.

    Workers compare their image decoder with ``expected_decoder`` (default: this process's,
    :func:`hubcli.train.decoder_id.decoder_versions`), the decoder of the machine that will
    train on the features.

    Example:
        >>> planned = plan_extraction(data="gs://photos/flowers", module_handle="efficientnet_lite0", settings=settings,  # doctest: +SKIP
        ...                           runner="flink", beam_options=["flink_master=flink:8081"])
        >>> planned.pipeline.options.get_all_options()["flink_master"]  # doctest: +SKIP
        'flink:8081'
    """
    _require_beam()
    import apache_beam as beam

    from hubcli.scale import pipeline as stages
    from hubcli.scale import runners, shards, sources
    from hubcli.scale.handler import FeatureModelHandler
    from hubcli.train.decoder_id import decoder_versions, describe_decoder, image_preprocessing_id
    from hubcli.train.feature_cache import cache_subdirectory, features_root
    from hubcli.train.images import module_image_size
    from hubcli.train.module_ref import ModuleRef

    name = sources.describe_data(data, tfds_name)
    options = runners.pipeline_options(runner=runner, workers=workers, beam_options=beam_options)
    root = features_dir or str(features_root(settings.cache_dir))
    if runner == "dataflow" and not sources.is_url(root):
        raise UsageError("Dataflow workers cannot write to this machine's disk: pass --features-dir gs://BUCKET/features")
    runners.check_can_start(runner, options, offline=settings.offline)
    if rows_per_shard is not None and rows_per_shard < 1:
        raise UsageError(f"--shard-rows must be at least 1, got {rows_per_shard}")

    module = ModuleRef.resolve(module_handle, settings)
    size = module_image_size(module.info, image_size, module_handle)
    decoder = expected_decoder or decoder_versions()
    items, remote_root = _list(data, tfds_name)
    engine_tag, flatbuffer = _launcher_engine(module, size, examples=len(items) if items is not None else None)
    preprocessing = image_preprocessing_id(size, versions=decoder) + engine_tag
    final_output = output or f"{root.rstrip('/')}/{cache_subdirectory(module.sha256, preprocessing)}/extracts/{name}"
    staging = final_output if sources.is_url(final_output) else f"{final_output.rstrip('/')}.partial-{uuid.uuid4().hex[:8]}"
    plan = stages.ExtractPlan(
        items=items,
        remote_root=remote_root,
        features_root=root,
        output_dir=staging,
        handler=FeatureModelHandler(
            module_handle=module_handle, module_sha256=module.sha256, settings=settings, image_size=size, batch_size=batch_size, tflite=flatbuffer
        ),
        engine_tag=engine_tag,
        image_size=size,
        module_digest=module.sha256,
        decoder=decoder,
        strict=strict,
        rows_per_shard=rows_per_shard or shards.ROWS_PER_SHARD,
    )
    try:
        pipeline = beam.Pipeline(runner=runners.make_runner(runner), options=options)
    except ValueError as err:  # Dataflow validates its options here
        raise runners.explain_start_failure(runner, err) or err from None
    stages.build(pipeline, plan)
    return Extraction(
        pipeline=pipeline, runner=runner, workers=workers, data=f"tfds:{tfds_name}" if tfds_name else data, module=module,
        preprocessing=preprocessing, engine="tflite-xnnpack" if flatbuffer else "tensorflow", decoder=describe_decoder(decoder),
        features_root=root, output=final_output, staging=staging,
    )


def extract(**options) -> dict:
    """Extract the features of every image of ``data`` (or ``tfds_name``) into the feature cache.

    Takes the keyword arguments of :func:`plan_extraction`; returns the summary ``--json`` prints.
    """
    started = time.perf_counter()
    planned = plan_extraction(**options)
    local = planned.staging != planned.output
    console.info(f"extracting features of {planned.data} on the {planned.runner} runner ({planned.workers} worker(s))")
    if local:
        Path(planned.staging).mkdir(parents=True)
    try:
        counts, worker_decoders = _metrics(_run(planned.pipeline, planned.runner))
        summary = {
            "data": planned.data,
            "module": planned.module.to_json(),
            "runner": planned.runner,
            "workers": planned.workers,
            "preprocessing": planned.preprocessing,
            "engine": planned.engine,
            "decoder": planned.decoder,
            "worker_decoders": worker_decoders,
            "features_dir": planned.features_root,
            "counts": counts,
            "shards_written": counts.pop("shards"),
            "output": planned.output,
            "seconds": round(time.perf_counter() - started, 3),
        }
        warn_other_decoders(worker_decoders, planned.decoder)
        if local:
            from hubcli.fsio import swap_into_place, write_text_atomic

            write_text_atomic(Path(planned.staging) / "extract.json", json.dumps({"schema": EXTRACT_SCHEMA, **summary}, indent=2) + "\n")
            swap_into_place(planned.staging, planned.output)
    except BaseException:
        if local:
            shutil.rmtree(planned.staging, ignore_errors=True)
        raise
    return summary


def _launcher_engine(module, image_size: tuple[int, int], *, examples: int | None) -> tuple[str, bytes | None]:
    """The engine retrain-images here would compute these features with: its cache tag, and its flatbuffer if converted.

    Workers then compute with the same engine and key their shards the same way, so the run
    that trains here finds them. A tree behind a URL has an unknown size: it counts as large.
    """
    from hubcli.train.engines import CONVERT_MIN_EXAMPLES, accepted_flatbuffer, choose_engine
    from hubcli.train.feature_cache import features_root
    from hubcli.train.images import ImageModality

    modality = ImageModality(image_size)
    root = features_root(module.settings.cache_dir)
    engine = choose_engine(
        encoder=modality.build_encoder(module, trainable=False), modality=modality, module_digest=module.sha256, features_dir=root,
        examples=CONVERT_MIN_EXAMPLES if examples is None else examples,
    )
    if not engine.cache_tag:
        return "", None
    return engine.cache_tag, accepted_flatbuffer(features_dir=root, module_digest=module.sha256, preprocessing=modality.preprocessing)


def _list(data: str | None, tfds_name: str | None):
    """(items listed here, or None) and the URL of a tree for a worker to list."""
    from hubcli.scale import sources

    if tfds_name:
        return sources.read_tfds(tfds_name), None
    if data.lower().endswith(".csv"):
        return sources.read_manifest(data), None
    if sources.is_url(data):
        return None, data
    return sources.list_folder(data), None


def _run(pipeline, runner: str):
    """Run to the end; a runner that cannot start, or a hubcli error on a worker, is one line."""
    from hubcli.quiet_tensorflow import native_stderr_silenced
    from hubcli.scale.runners import explain_start_failure

    # Beam's launcher and its worker processes (which inherit file descriptor 2) log every
    # stage on stderr; HUBCLI_DEBUG=1 shows it.
    quiet = native_stderr_silenced() if os.environ.get("HUBCLI_DEBUG") != "1" else contextlib.nullcontext()
    try:
        with quiet:
            result = pipeline.run()
            result.wait_until_finish()
        return result
    except HubcliError:
        raise
    except Exception as err:  # noqa: BLE001 - runners raise anything while starting and running
        explained = explain_start_failure(runner, err)
        if explained is not None:
            raise explained from None
        from_worker = _WORKER_ERROR.search(str(err))
        if from_worker:
            import hubcli.errors

            kind = getattr(hubcli.errors, from_worker.group(1), HubcliError)
            raise kind(from_worker.group(2).strip()) from None
        raise


def _metrics(result) -> tuple[dict[str, int], dict[str, int]]:
    """Counts of the pipeline's outcomes, and of features per worker decoder."""
    from apache_beam.metrics.metric import MetricsFilter

    from hubcli.scale.pipeline import COUNTS, DECODERS

    counts = dict.fromkeys(_COUNTS, 0)
    decoders: dict[str, int] = {}
    for namespace, target in ((COUNTS, counts), (DECODERS, decoders)):
        for counter in result.metrics().query(MetricsFilter().with_namespace(namespace))["counters"]:
            target[counter.key.metric.name] = target.get(counter.key.metric.name, 0) + int(counter.committed or 0)
    counts["computed"] = counts.pop("features_written")
    return counts, decoders


def warn_other_decoders(worker_decoders: dict[str, int], here: str) -> None:
    """One warning when workers decoded with another decoder than this machine's ``here``.

    Example:
        >>> warn_other_decoders({"Pillow 13.0.0 with libjpeg-turbo 3.2.0 and WebP 1.6.0": 3}, "Pillow 13.0.0 with libjpeg-turbo 3.2.0 and WebP 1.6.0")
    """
    others = {decoder: count for decoder, count in worker_decoders.items() if decoder != here}
    if others:
        shown = "; ".join(f"{count} with {decoder}" for decoder, count in sorted(others.items()))
        console.warn(
            f"workers decoded images with another decoder than this machine's {here} ({shown}); their features are "
            f"cached under their own key, so retrain-images here computes them again (--strict makes this an error)"
        )
