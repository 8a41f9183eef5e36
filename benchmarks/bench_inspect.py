"""`hubcli inspect PATH --json` vs `saved_model_cli show --all --dir PATH` on the same modules.

Both are timed as whole commands (wall clock, process start included), since
that is what a person or a script waits for; the in-process
``inspect_module`` call is reported too. Modules: Keras' EfficientNetB0
(``weights=None``, exported with ``model.export``) and a module with a 64 MB ``saved_model.pb`` (weights as
graph constants) built here, the modules of
``make modules`` when ``.modules`` has them, and the tiny test modules. Rounds
alternate between the two commands so load on a shared machine hits both
alike; medians are reported. Targets (issue A): inspect < 1 s, >= 5x faster.

Example:
    .venv/bin/python -m benchmarks.bench_inspect --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def build_modules(out: Path) -> dict[str, Path]:
    """Build (once) the benchmark modules under ``out``; return name -> module directory."""
    modules = {}
    efficientnet = out / "efficientnet_b0_export"
    if not (efficientnet / "saved_model.pb").is_file():
        import keras

        model = keras.applications.EfficientNetB0(weights=None, include_top=False, pooling="avg", input_shape=(224, 224, 3))
        model.export(str(efficientnet))
    modules["efficientnet_b0 (keras export)"] = efficientnet
    big = out / "big_constants"
    if not (big / "saved_model.pb").is_file():
        build_big_constant_module(big)
    modules["big_constants (64 MB of graph constants)"] = big
    for built in ("efficientnet_lite0_feature_vector", "minilm_l6_v2"):
        if (REPO / ".modules" / built / "saved_model.pb").is_file():
            modules[f"{built} (make modules)"] = REPO / ".modules" / built
    from tests.helpers import tiny_modules

    for name, builder in (("tiny_image", tiny_modules.build_image_module), ("tiny_tf1", tiny_modules.build_tf1_hub_module)):
        if not (out / name / "saved_model.pb").is_file():
            builder(out / name)
        modules[name] = out / name
    return modules


def build_big_constant_module(path: Path) -> None:
    """A module whose weights are constants inside its functions (as frozen graphs are): a 64 MB saved_model.pb."""
    import numpy as np
    import tensorflow as tf

    module = tf.Module()
    weights = [tf.constant(np.random.default_rng(i).standard_normal((1024, 1024)).astype(np.float32)) for i in range(16)]

    @tf.function(input_signature=[tf.TensorSpec([None, 1024], tf.float32, name="x")])
    def call(x):
        for kernel in weights:
            x = tf.nn.relu(tf.matmul(x, kernel))
        return x

    module.__call__ = call
    tf.saved_model.save(module, str(path), signatures={"serving_default": call})


def time_command(command: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run. CPU time is what a busy shared machine distorts least."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {result.stderr.decode()[-500:]}")
    return elapsed, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def time_library(path: Path, rounds: int) -> float:
    from hubcli.savedmodel.inspector import inspect_module

    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        inspect_module(path)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / ".bench" / "inspect", help="where benchmark modules are built")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    args.out.mkdir(parents=True, exist_ok=True)
    modules = build_modules(args.out)

    results = []
    for name, path in modules.items():
        hubcli_cmd = [str(BIN / "hubcli"), "inspect", str(path), "--json"]
        tf_cmd = [str(BIN / "saved_model_cli"), "show", "--all", "--dir", str(path)]
        hubcli_runs, tf_runs = [], []
        for _ in range(args.rounds):
            hubcli_runs.append(time_command(hubcli_cmd))
            tf_runs.append(time_command(tf_cmd))
        hubcli_s, tf_s = (statistics.median(wall for wall, _ in runs) for runs in (hubcli_runs, tf_runs))
        hubcli_cpu, tf_cpu = (statistics.median(cpu for _, cpu in runs) for runs in (hubcli_runs, tf_runs))
        results.append({
            "module": name,
            "saved_model_pb_bytes": (path / "saved_model.pb").stat().st_size,
            "hubcli_inspect_s": round(hubcli_s, 3),
            "saved_model_cli_s": round(tf_s, 3),
            "speedup": round(tf_s / hubcli_s, 1),
            "hubcli_inspect_cpu_s": round(hubcli_cpu, 3),
            "saved_model_cli_cpu_s": round(tf_cpu, 3),
            "cpu_speedup": round(tf_cpu / hubcli_cpu, 1),
            "inspect_module_in_process_s": round(time_library(path, args.rounds), 3),
            "hubcli_all_s": [round(wall, 3) for wall, _ in hubcli_runs],
            "saved_model_cli_all_s": [round(wall, 3) for wall, _ in tf_runs],
        })
    report = {
        "commands": {"hubcli": "hubcli inspect PATH --json", "tensorflow": "saved_model_cli show --all --dir PATH"},
        "rounds": args.rounds,
        "machine": {"cpu_count": os.cpu_count(), "load_average": os.getloadavg(), "python": platform.python_version()},
        "results": results,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{'module':46} {'pb size':>9} {'hubcli':>7} {'smc':>7} {'speedup':>7} {'cpu x':>6} {'in-proc':>8}")
        for row in results:
            print(
                f"{row['module']:46} {row['saved_model_pb_bytes'] / 1e6:>7.2f}MB {row['hubcli_inspect_s']:>6.2f}s "
                f"{row['saved_model_cli_s']:>6.2f}s {row['speedup']:>6.1f}x {row['cpu_speedup']:>5.1f}x "
                f"{row['inspect_module_in_process_s']:>7.3f}s"
            )
        print(f"wall: median of {args.rounds} rounds; cpu x: CPU-time ratio; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
