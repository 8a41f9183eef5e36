"""Beam runners for ``hubcli extract``: their options, and why one cannot start, in one line.

``direct`` runs the pipeline here on Beam's ``FnApiRunner``, in this process for one worker
and in N worker processes otherwise; it never downloads anything (Beam's ``DirectRunner``
would first try to fetch the Prism binary). ``dataflow``, ``flink``, ``spark`` and
``portable`` hand the same pipeline to Beam's runner of that name with the user's
``--beam-option K=V`` settings; what each needs is checked before Beam starts, and the
failures Beam reports when starting (a job-server jar it cannot download, an unreachable
job service, incomplete Dataflow options) become one line naming what is missing.

Example:
    >>> options = pipeline_options(runner="flink", workers=4, beam_options=["flink_master=localhost:8081"])
    >>> options.get_all_options()["runner"], options.get_all_options()["parallelism"]
    ('FlinkRunner', 4)
"""

from __future__ import annotations

import glob
import logging
import os
import re
import shutil
from collections.abc import Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.portability.fn_api_runner import FnApiRunner

from hubcli.errors import HubcliError, NetworkError, UsageError

#: ``--runner`` choices and the Beam runner each names (direct: FnApiRunner, see above).
RUNNERS = {"direct": None, "dataflow": "DataflowRunner", "flink": "FlinkRunner", "spark": "SparkRunner", "portable": "PortableRunner"}
#: The option through which ``--workers N`` reaches each remote runner.
_WORKERS_OPTION = {"dataflow": "num_workers", "flink": "parallelism"}
_JAR_OPTION = {"flink": "flink_job_server_jar", "spark": "spark_job_server_jar"}
#: Where Beam keeps the job-server jars it downloaded (apache_beam.utils.subprocess_server).
_JAR_CACHE = os.path.expanduser("~/.apache_beam/cache/jars")


def parse_beam_options(items: Sequence[str]) -> list[str]:
    """``--beam-option`` values (``K=V``, or ``K`` for a flag) as Beam command-line flags.

    Example:
        >>> parse_beam_options(["project=acme", "--region=europe-west1", "save_main_session"])
        ['--project=acme', '--region=europe-west1', '--save_main_session']
    """
    flags = []
    for item in items:
        name, _, value = item.lstrip("-").partition("=")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise UsageError(f"--beam-option {item!r}: give NAME=VALUE, e.g. --beam-option project=my-project")
        flags.append(f"--{name}={value}" if "=" in item else f"--{name}")
    return flags


def pipeline_options(*, runner: str, workers: int, beam_options: Sequence[str] = ()) -> PipelineOptions:
    """The PipelineOptions for ``runner`` with ``workers`` and the user's ``--beam-option`` values.

    Options Beam does not know are refused (Beam itself would drop them with a log line).
    """
    if runner not in RUNNERS:
        raise UsageError(f"unknown --runner {runner!r}; choose from {', '.join(RUNNERS)}")
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    user = parse_beam_options(beam_options)
    given = {flag[2:].partition("=")[0] for flag in user}
    flags = list(user)
    if runner == "direct":
        flags += [f"--direct_num_workers={workers}", f"--direct_running_mode={'in_memory' if workers == 1 else 'multi_processing'}"]
    else:
        flags.append(f"--runner={RUNNERS[runner]}")
        if runner in _WORKERS_OPTION and _WORKERS_OPTION[runner] not in given:
            flags.append(f"--{_WORKERS_OPTION[runner]}={workers}")
    if os.environ.get("HUBCLI_DEBUG") != "1" and "default_sdk_harness_log_level" not in given:
        # Worker processes log every bundle at INFO on our stderr otherwise.
        flags.append("--default_sdk_harness_log_level=ERROR")
    options = PipelineOptions(flags)
    unknown = _unknown_options(options)
    if unknown:
        raise UsageError(f"Beam does not know the option(s) {', '.join(sorted(unknown))} (from --beam-option)")
    return options


def _unknown_options(options: PipelineOptions) -> set[str]:
    beam_logger = logging.getLogger("apache_beam.options.pipeline_options")
    level = beam_logger.level
    beam_logger.setLevel(logging.ERROR)  # it would log "Discarding unparseable args"
    try:
        return set(options.get_all_options(retain_unknown_options=True)) - set(options.get_all_options())
    finally:
        beam_logger.setLevel(level)


def make_runner(runner: str):
    """The Beam runner object (``direct``) or name that runs a pipeline for ``--runner``."""
    return FnApiRunner() if runner == "direct" else RUNNERS[runner]


def check_can_start(runner: str, options: PipelineOptions, *, offline: bool) -> None:
    """Refuse, in one line, a runner that cannot start with these options (before Beam tries).

    Example:
        >>> check_can_start("portable", pipeline_options(runner="portable", workers=1), offline=False)
        Traceback (most recent call last):
        ...
        hubcli.errors.UsageError: the portable runner needs the address of a Beam job service: --beam-option job_endpoint=HOST:PORT
    """
    values = options.get_all_options()
    if runner == "portable" and not values.get("job_endpoint"):
        raise UsageError("the portable runner needs the address of a Beam job service: --beam-option job_endpoint=HOST:PORT")
    if runner in _JAR_OPTION:
        _check_job_server(runner, values, offline=offline)
    if runner == "dataflow":
        missing = [name for name in ("project", "region", "temp_location") if not values.get(name)]
        if missing:
            shown = " ".join(f"--beam-option {name}=..." for name in missing)
            raise UsageError(f"the Dataflow runner needs {', '.join(missing)}: {shown}")
        if offline:
            raise NetworkError("the Dataflow runner submits the job over the network, and hubcli is offline")


def _check_job_server(runner: str, values: dict, *, offline: bool) -> None:
    """Flink and Spark start a Java job server from a jar that Beam downloads unless given one."""
    option = _JAR_OPTION[runner]
    jar = values.get(option)
    name = runner.capitalize()
    if jar and "://" not in jar and not os.path.isfile(jar):
        raise UsageError(f"the {name} runner's job-server jar {jar} does not exist (--beam-option {option}=PATH)")
    if shutil.which("java") is None:
        raise UsageError(f"the {name} runner's job server is a Java program, and java is not on PATH")
    cached = glob.glob(os.path.join(_JAR_CACHE, f"beam-runners-{runner}-*job-server-{beam.__version__}.jar"))
    if not jar and not cached and offline:
        raise NetworkError(
            f"the {name} runner needs its job-server jar, which Beam downloads from Maven Central, and hubcli is offline: "
            f"pass --beam-option {option}=PATH"
        )


def explain_start_failure(runner: str, err: BaseException) -> HubcliError | None:
    """The one-line error for an exception a runner raised while starting, or None if it is not one."""
    text = " ".join(str(err).split())
    download = re.search(r"Unable to fetch remote job server jar at (\S+?): (.*?)(?:\. Also| If no|$)", text)
    if download:
        option = _JAR_OPTION.get(runner, "job_server_jar")
        return NetworkError(
            f"cannot start the {runner.capitalize()} runner: its job-server jar could not be downloaded from {download.group(1)} "
            f"({download.group(2).strip('<>. ')}); fetch it where the network allows and pass --beam-option {option}=PATH"
        )
    if type(err).__name__ == "FutureTimeoutError":
        return NetworkError(f"cannot start the {runner} runner: no Beam job service answered at the job_endpoint")
    if "Pipeline has validations errors" in text:
        problems = [line.strip().rstrip(".") for line in str(err).splitlines()[1:] if line.strip()]
        return UsageError(f"the {runner} runner refused the options: {'; '.join(problems)}")
    if isinstance(err, ImportError) and "apache_beam[gcp]" in text:
        return UsageError("the Dataflow runner needs Beam's Google Cloud extra: pip install 'apache-beam[gcp]'")
    if type(err).__name__ == "DefaultCredentialsError":
        return UsageError("no Google Cloud credentials: run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS")
    return None
