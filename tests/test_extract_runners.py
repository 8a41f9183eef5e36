"""Remote Beam runners cannot run here: test that extract builds their pipeline with the user's options."""

from __future__ import annotations

import os
import shutil

import pytest

from hubcli.config import Settings
from hubcli.errors import UsageError
from tests.helpers.synthetic_images import make_image_dataset

beam = pytest.importorskip("apache_beam")

from hubcli.scale.extract import plan_extraction  # noqa: E402
from hubcli.scale.runners import parse_beam_options, pipeline_options  # noqa: E402
from hubcli.scale.sources import label_of, list_remote_folder  # noqa: E402

#: The stages every runner is handed, by their labels in the pipeline graph.
STAGES = ["list files", "read and hash", "group by content", "decode and resize", "features", "write shards", "write manifest", "write failures"]

REMOTE = {
    "dataflow": (
        ["project=acme-vision-123", "region=europe-west4", "temp_location=gs://acme-tmp/beam", "machine_type=n2-standard-8"],
        "DataflowRunner",
        {"project": "acme-vision-123", "region": "europe-west4", "machine_type": "n2-standard-8", "num_workers": 3},
    ),
    "flink": (["flink_master=flink.internal:8081", "environment_type=DOCKER"], "FlinkRunner", {"flink_master": "flink.internal:8081", "parallelism": 3}),
    "spark": (["spark_master_url=spark://spark.internal:7077"], "SparkRunner", {"spark_master_url": "spark://spark.internal:7077"}),
    "portable": (["job_endpoint=jobs.internal:8099", "environment_type=DOCKER"], "PortableRunner", {"job_endpoint": "jobs.internal:8099"}),
}


@pytest.fixture()
def java_on_path(tmp_path, monkeypatch):
    """Flink and Spark start a Java job server; building their pipeline only needs java to exist."""
    if shutil.which("java") is None:
        stub = tmp_path / "bin" / "java"
        stub.parent.mkdir()
        stub.write_text("#!/bin/sh\nexit 0\n")
        stub.chmod(0o755)
        monkeypatch.setenv("PATH", f"{stub.parent}:{os.environ['PATH']}")


@pytest.mark.parametrize("runner", sorted(REMOTE))
def test_each_remote_runner_gets_the_whole_pipeline_with_the_users_options(runner, tiny_image_module, tmp_path, java_on_path):
    beam_options, runner_name, expected = REMOTE[runner]
    planned = plan_extraction(
        data=str(make_image_dataset(tmp_path / "photos", per_class=2)),
        module_handle=str(tiny_image_module),
        settings=Settings.load(cache_dir=tmp_path / "cache", offline=False),
        runner=runner,
        workers=3,
        beam_options=beam_options,
        features_dir="gs://acme-features/features" if runner == "dataflow" else None,
    )
    options = planned.pipeline.options.get_all_options()
    assert options["runner"] == runner_name
    assert {name: options[name] for name in expected} == expected
    assert type(planned.pipeline.runner).__name__ == runner_name
    labels = {transform.unique_name for transform in planned.pipeline.to_runner_api().components.transforms.values()}
    assert all(stage in labels for stage in STAGES)
    assert not (tmp_path / "cache" / "features").exists()  # nothing ran


def test_a_tree_behind_a_url_is_listed_by_a_worker_stage(tiny_image_module, tmp_path, java_on_path):
    planned = plan_extraction(
        data="gs://acme-photos/flowers",
        module_handle=str(tiny_image_module),
        settings=Settings.load(cache_dir=tmp_path / "cache", offline=False),
        runner="flink",
        beam_options=["flink_master=flink.internal:8081"],
    )
    labels = {transform.unique_name for transform in planned.pipeline.to_runner_api().components.transforms.values()}
    assert {"root", "list files", "spread files"} <= labels


def test_direct_runner_uses_worker_processes_only_for_more_than_one_worker():
    one = pipeline_options(runner="direct", workers=1).get_all_options()
    two = pipeline_options(runner="direct", workers=2).get_all_options()
    assert (one["direct_running_mode"], two["direct_running_mode"], two["direct_num_workers"]) == ("in_memory", "multi_processing", 2)
    assert one["runner"] is None  # FnApiRunner is passed as an object: Beam never looks for Prism


def test_the_users_option_wins_over_the_workers_default():
    options = pipeline_options(runner="dataflow", workers=2, beam_options=["num_workers=10", "max_num_workers=50"]).get_all_options()
    assert (options["num_workers"], options["max_num_workers"]) == (10, 50)


def test_beam_options_are_flags():
    assert parse_beam_options(["a=1", "--b=x=y", "flag"]) == ["--a=1", "--b=x=y", "--flag"]
    with pytest.raises(UsageError, match="NAME=VALUE"):
        parse_beam_options(["two words=1"])


def test_a_worker_lists_a_tree_with_the_rules_of_retrain_images(tmp_path):
    for relative in ("daisy/a.jpg", "daisy/sub/b.PNG", "tulips/c.webp", ".hidden/d.jpg", "daisy/.e.jpg", "notes.txt", "daisy/f.txt", "train/roses/g.jpg"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(b"x")
    listed = sorted(list_remote_folder(str(tmp_path)))
    assert [(key, label) for key, label, _ in listed] == [
        ("daisy/a.jpg", "daisy"),
        ("daisy/sub/b.PNG", "daisy"),
        ("train/roses/g.jpg", "roses"),
        ("tulips/c.webp", "tulips"),
    ]
    assert all(location == str(tmp_path / key) for key, _, location in listed)
    assert label_of(["train", "x.jpg"]) is None
