"""``hubcli extract``: Beam fills the feature cache that retrain-images then reads as its own."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.cli_run import HUBCLI, error_line, run_hubcli
from tests.helpers.synthetic_images import make_image_dataset

pytest.importorskip("apache_beam")

PER_CLASS = 6


def _shards(cache_dir: Path) -> list[Path]:
    """The shards readers see: a .npy whose .keys exists (a writer renames the .keys last)."""
    return sorted(keys.with_suffix(".npy") for keys in (cache_dir / "features").glob("*/*/shard-*.keys"))


def _rows(cache_dir: Path) -> list[tuple[str, np.ndarray]]:
    """Every (key, feature vector) of every visible shard of a cache, duplicates included."""
    rows = []
    for shard in _shards(cache_dir):
        rows.extend(zip(shard.with_suffix(".keys").read_text().split(), np.load(shard), strict=True))
    return rows


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Three classes of synthetic photos, one file copied into another class, one corrupt file."""
    root = make_image_dataset(tmp_path_factory.mktemp("extract") / "photos", per_class=PER_CLASS)
    shutil.copy(root / "red_squares" / "red_squares_000.jpg", root / "blue_bars" / "copy_of_red.jpg")
    (root / "green_discs" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return root


def _extract(photos: Path, module: Path, cache_dir: Path, *extra) -> subprocess.CompletedProcess:
    return run_hubcli("extract", photos, "--module", module, "--cache-dir", cache_dir, "--offline", "--json", *extra)


def _retrain(photos: Path, module: Path, cache_dir: Path, output: Path) -> dict:
    process = run_hubcli(
        "retrain-images", photos, "--module", module, "--cache-dir", cache_dir, "--offline", "--output", output, "--epochs", "5", "--json"
    )
    assert process.returncode == 0, process.stderr
    return json.loads(process.stdout)


@pytest.mark.slow
def test_extract_on_two_workers_then_retrain_computes_no_feature_and_matches_a_local_run(photos, tiny_image_module, tmp_path):
    process = _extract(photos, tiny_image_module, tmp_path / "cache", "--workers", "2", "--shard-rows", "5")
    assert process.returncode == 0, process.stderr
    assert process.stderr == ""
    summary = json.loads(process.stdout)
    examples = 3 * PER_CLASS + 2
    assert summary["schema"] == "hubcli.extract/1"
    counts = summary["counts"]
    assert (counts["examples"], counts["duplicates"], counts["failed"], counts["computed"], counts["cached"]) == (examples, 1, 1, 3 * PER_CLASS, 0)
    # Large shards, not one per batch or per image: 18 features in 5-row buckets.
    shards = _shards(tmp_path / "cache")
    assert len(shards) == summary["shards_written"] <= 4
    assert sum(len(np.load(shard)) for shard in shards) == 3 * PER_CLASS

    output = Path(summary["output"])
    with (output / "manifest.csv").open() as rows:
        statuses = {row["key"]: row["status"] for row in csv.DictReader(rows)}
    assert len(statuses) == examples
    assert sorted(statuses[key] for key in ("red_squares/red_squares_000.jpg", "blue_bars/copy_of_red.jpg")) == ["computed", "duplicate"]
    failures = list(csv.DictReader((output / "failures.csv").open()))
    assert [row["key"] for row in failures] == ["green_discs/broken.jpg"]
    assert "not a recognised image format" in failures[0]["reason"]
    assert json.loads((output / "extract.json").read_text())["counts"] == counts

    from_beam = _retrain(photos, tiny_image_module, tmp_path / "cache", tmp_path / "run_beam")
    assert from_beam["extraction"]["features_computed"] == 0
    local = _retrain(photos, tiny_image_module, tmp_path / "local_cache", tmp_path / "run_local")
    assert local["extraction"]["features_computed"] == 3 * PER_CLASS
    beam_metrics, local_metrics = (json.loads((tmp_path / run / "metrics.json").read_text()) for run in ("run_beam", "run_local"))
    assert beam_metrics["history"] == local_metrics["history"]
    assert (from_beam["accuracy"], from_beam["confusion_matrix"]) == (local["accuracy"], local["confusion_matrix"])
    # The shards hold the very features local extraction computes, bit for bit.
    from_shards, from_local = dict(_rows(tmp_path / "cache")), dict(_rows(tmp_path / "local_cache"))
    assert from_shards.keys() == from_local.keys()
    assert all(np.array_equal(from_shards[key], from_local[key]) for key in from_shards)


@pytest.mark.slow
def test_a_second_extract_finds_everything_cached_and_rewrites_nothing(photos, tiny_image_module, tmp_path):
    assert _extract(photos, tiny_image_module, tmp_path / "cache").returncode == 0
    before = {shard: shard.stat().st_mtime_ns for shard in _shards(tmp_path / "cache")}
    again = json.loads(_extract(photos, tiny_image_module, tmp_path / "cache").stdout)
    assert (again["counts"]["computed"], again["counts"]["cached"], again["shards_written"]) == (0, 3 * PER_CLASS, 0)
    assert {shard: shard.stat().st_mtime_ns for shard in _shards(tmp_path / "cache")} == before


@pytest.mark.slow
def test_a_killed_extraction_leaves_only_whole_shards_and_a_retry_completes_them(photos, tiny_image_module, tmp_path):
    cache = tmp_path / "cache"
    command = [*HUBCLI, "extract", photos, "--module", tiny_image_module, "--cache-dir", cache, "--offline", "--workers", "2", "--shard-rows", "1"]
    process = subprocess.Popen(list(map(str, command)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while not list((cache / "features").glob("*/*/shard-*.keys")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)  # the launcher and its worker processes, mid-write
    process.wait()
    # Every shard a reader can see is complete: its matrix loads and has a row per key.
    assert all(len(np.load(shard)) == len(shard.with_suffix(".keys").read_text().split()) for shard in _shards(cache))
    retried = _extract(photos, tiny_image_module, cache, "--workers", "2", "--shard-rows", "1")
    assert retried.returncode == 0, retried.stderr
    # The retry computed only what the killed run had not written: the cache now holds each
    # feature once, the same features as an uninterrupted run.
    clean = tmp_path / "clean"
    assert _extract(photos, tiny_image_module, clean).returncode == 0
    retried_rows, clean_rows = _rows(cache), _rows(clean)
    assert sorted(key for key, _ in retried_rows) == sorted(key for key, _ in clean_rows) and len(clean_rows) == 3 * PER_CLASS
    clean_features = dict(clean_rows)
    assert all(np.array_equal(vector, clean_features[key]) for key, vector in retried_rows)


@pytest.mark.slow
def test_a_manifest_names_the_files_to_extract_by_absolute_or_relative_path(photos, tiny_image_module, tmp_path):
    (tmp_path / "more").mkdir()
    shutil.copy(photos / "red_squares" / "red_squares_002.jpg", tmp_path / "more" / "red.jpg")
    manifest = tmp_path / "some.csv"
    manifest.write_text(f"path,label\n{photos}/blue_bars/blue_bars_001.png,blue\nmore/red.jpg,red\n")
    process = _extract(manifest, tiny_image_module, tmp_path / "cache")
    assert process.returncode == 0, process.stderr
    summary = json.loads(process.stdout)
    assert (summary["counts"]["examples"], summary["counts"]["computed"]) == (2, 2)
    with (Path(summary["output"]) / "manifest.csv").open() as rows:
        listed = sorted((row["key"], row["label"]) for row in csv.DictReader(rows))
    assert listed == [(f"{photos}/blue_bars/blue_bars_001.png", "blue"), ("more/red.jpg", "red")]


def test_a_manifest_without_a_path_column_is_one_line(tmp_path, tiny_image_module):
    manifest = tmp_path / "bad.csv"
    manifest.write_text("file,label\na.jpg,x\n")
    line = error_line(_extract(manifest, tiny_image_module, tmp_path / "cache"), 8, alone=True)
    assert "needs a 'path' column" in line


@pytest.mark.parametrize(
    ("options", "exit_code", "expected"),
    [
        (["--runner", "portable"], 2, "needs the address of a Beam job service: --beam-option job_endpoint=HOST:PORT"),
        (["--runner", "flink", "--beam-option", "flink_job_server_jar=/no/such.jar"], 2, "job-server jar /no/such.jar does not exist"),
        (["--runner", "flink"], 4, "downloads from Maven Central, and hubcli is offline: pass --beam-option flink_job_server_jar=PATH"),
        (["--runner", "spark"], 4, "pass --beam-option spark_job_server_jar=PATH"),
        (["--runner", "dataflow", "--features-dir", "gs://bucket/features"], 2, "needs project, region, temp_location"),
        (["--runner", "dataflow"], 2, "Dataflow workers cannot write to this machine's disk: pass --features-dir gs://"),
        (["--runner", "mapreduce"], 2, "unknown --runner 'mapreduce'"),
        (["--workers", "0"], 2, "--workers must be at least 1"),
        (["--beam-option", "=oops"], 2, "give NAME=VALUE"),
        (["--beam-option", "no_such_beam_option=1"], 2, "Beam does not know the option(s) no_such_beam_option"),
    ],
)
def test_a_runner_that_cannot_start_is_one_line_and_writes_nothing(photos, tiny_image_module, tmp_path, options, exit_code, expected):
    process = _extract(photos, tiny_image_module, tmp_path / "cache", *options)
    assert expected in error_line(process, exit_code, alone=True)
    assert not (tmp_path / "cache" / "features").exists()


def test_an_unreachable_job_service_is_one_line(photos, tiny_image_module, tmp_path):
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    options = ["--runner", "portable", "--beam-option", f"job_endpoint=127.0.0.1:{port}", "--beam-option", "job_server_timeout=2"]
    line = error_line(_extract(photos, tiny_image_module, tmp_path / "cache", *options), 4, alone=True)
    assert "no Beam job service answered" in line
    assert not _shards(tmp_path / "cache")


@pytest.mark.slow
def test_workers_with_another_decoder_fail_under_strict_and_are_reported_otherwise(photos, tiny_image_module, tmp_path, capsys):
    from hubcli.config import Settings
    from hubcli.errors import IntegrityError
    from hubcli.scale.extract import extract
    from hubcli.train.decoder_id import decoder_versions, describe_decoder

    # The machine that will train decodes JPEGs with another libjpeg-turbo than these workers.
    trainer = {**decoder_versions(), "jpeg": "libjpeg-turbo 2.0.0"}
    options = {"data": str(photos), "module_handle": str(tiny_image_module), "settings": Settings.load(cache_dir=tmp_path / "cache", offline=True)}
    with pytest.raises(IntegrityError, match=r"a worker decodes images with .* not the launcher's .*jpeg libjpeg-turbo 2\.0\.0 != "):
        extract(**options, strict=True, expected_decoder=trainer)
    assert not _shards(tmp_path / "cache")

    summary = extract(**options, expected_decoder=trainer)
    assert summary["worker_decoders"] == {describe_decoder(decoder_versions()): 3 * PER_CLASS}
    warning = capsys.readouterr().err
    assert "workers decoded images with another decoder than this machine's" in warning and "libjpeg-turbo 2.0.0" in warning
    # Their features are cached under the workers' own preprocessing id, never under the trainer's.
    assert summary["preprocessing"] not in {path.read_text().strip() for path in (tmp_path / "cache" / "features").glob("*/*/preprocessing.txt")}


@pytest.mark.slow
def test_workers_compute_with_the_converted_engine_this_machine_chose(photos, tiny_image_module, tmp_path):
    from hubcli.config import Settings
    from hubcli.train.engines import choose_engine
    from hubcli.train.feature_cache import features_root
    from hubcli.train.images import ImageModality
    from hubcli.train.module_ref import ModuleRef

    # An accepted TFLite conversion on record: retrain-images here computes with it, so extract's workers must too.
    settings = Settings.load(cache_dir=tmp_path / "cache", offline=True)
    module = ModuleRef.resolve(str(tiny_image_module), settings)
    modality = ImageModality(module.info.image_size)
    engine = choose_engine(
        encoder=modality.build_encoder(module, trainable=False), modality=modality, module_digest=module.sha256,
        features_dir=features_root(settings.cache_dir), examples=0, convert_min_examples=0,
    )
    assert engine.name == "tflite-xnnpack"
    process = _extract(photos, tiny_image_module, tmp_path / "cache", "--workers", "2")
    assert process.returncode == 0, process.stderr
    summary = json.loads(process.stdout)
    assert summary["engine"] == "tflite-xnnpack" and summary["preprocessing"].endswith(engine.cache_tag)
    run = _retrain(photos, tiny_image_module, tmp_path / "cache", tmp_path / "run")
    assert (run["extraction"]["features_computed"], run["extraction"]["engine"]) == (0, "tflite-xnnpack")
