"""Benchmark `pull`: download throughput against curl, and cached-pull latency.

Serves a module archive of ``--mb`` MB (incompressible bytes) from the test
suite's loopback server, then measures, best of ``--repeat`` runs each:

1. ``curl -o FILE URL``: the reference throughput; and ``curl URL | tar -xz``,
   the shell equivalent of an end-to-end pull (no hashing, no safety checks);
2. :func:`hubcli.hub.download.download` of the same URL, timed inside its own
   process (like curl, apart from the server): hubcli's HTTP path (requests,
   ``.part`` file, running sha256), the part comparable to curl;
3. ``hubcli pull URL`` as a process, end to end: startup, download, sha256,
   safe extraction with per-file hashing, atomic install;
4. ``hubcli pull URL`` again, now cached: process wall time (target < 0.3 s),
   and the in-process :func:`hubcli.hub.pull` call alone; plus ``python -c pass``
   under the same conditions, since machine load moves every process time.

Run:
    .venv/bin/python -m benchmarks.bench_pull            # 100 MB, best of 5
    .venv/bin/python -m benchmarks.bench_pull --mb 20 --json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path


def _archive(path: Path, megabytes: int) -> Path:
    payload = os.urandom(megabytes * 1024 * 1024)
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for name, data in (("saved_model.pb", payload), ("variables/variables.index", b"\0" * 64)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


_TIMED_DOWNLOAD = """
import sys, time
from pathlib import Path
from hubcli.hub.download import download
start = time.perf_counter()
download(sys.argv[1], Path(sys.argv[2]), progress=False)
print(time.perf_counter() - start)
"""


def _best(samples: list[float]) -> float:
    return min(samples)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100, help="archive payload in MiB")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--cached-repeat", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    from hubcli.config import Settings
    from hubcli.hub.pull import pull
    from tests.helpers.hubserver import start_server

    work = Path(tempfile.mkdtemp(prefix="hubcli-bench-"))
    state, server = start_server()
    try:
        archive = _archive(work / "module.tar.gz", args.mb)
        size = archive.stat().st_size
        url = state.put_file("module.tar.gz", archive)
        env = {
            **os.environ,
            "NO_PROXY": "127.0.0.1",
            "HUBCLI_CONFIG": str(work / "none.toml"),
            "HUBCLI_TRUSTED_HOSTS": "127.0.0.1",
        }
        os.environ.update({k: env[k] for k in ("NO_PROXY", "HUBCLI_CONFIG", "HUBCLI_TRUSTED_HOSTS")})

        curl, curl_tar, library, process = [], [], [], []
        for run in range(args.repeat):
            target = work / f"curl-{run}.bin"
            start = time.perf_counter()
            subprocess.run(["curl", "-s", "-S", "-f", "-o", str(target), url], check=True, env=env)
            curl.append(time.perf_counter() - start)
            target.unlink()

            unpacked = work / f"curl-tar-{run}"
            unpacked.mkdir()
            start = time.perf_counter()
            subprocess.run(f"curl -s -S -f '{url}' | tar -xz -C '{unpacked}'", shell=True, check=True, env=env)
            curl_tar.append(time.perf_counter() - start)
            shutil.rmtree(unpacked)

            # In its own process, like curl: the server's thread must not share our GIL.
            part = work / f"lib-{run}.part"
            timed = subprocess.run([sys.executable, "-c", _TIMED_DOWNLOAD, url, str(part)], check=True, env=env,
                                   capture_output=True, text=True)
            library.append(float(timed.stdout))
            part.unlink()

            cache = work / f"cache-{run}"
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "hubcli", "pull", url, "--cache-dir", str(cache), "--quiet"],
                check=True, env=env, stdout=subprocess.DEVNULL,
            )
            process.append(time.perf_counter() - start)
            if run < args.repeat - 1:
                shutil.rmtree(cache)

        cache = work / f"cache-{args.repeat - 1}"
        cached_process = []
        for _ in range(args.cached_repeat):
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "hubcli", "pull", url, "--cache-dir", str(cache), "--quiet"],
                check=True, env=env, stdout=subprocess.DEVNULL,
            )
            cached_process.append(time.perf_counter() - start)
        # Context for the number above on a busy machine: a bare interpreter start, same conditions.
        bare_python = []
        for _ in range(args.cached_repeat):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], check=True)
            bare_python.append(time.perf_counter() - start)
        settings = Settings.load(cache_dir=cache)
        cached_call = []
        for _ in range(args.cached_repeat):
            start = time.perf_counter()
            assert pull(url, settings, progress=False).from_cache
            cached_call.append(time.perf_counter() - start)
        requests_made = len(state.requests_to("/files/"))
    finally:
        server.shutdown()
        server.server_close()
        shutil.rmtree(work, ignore_errors=True)

    mib = size / 2**20
    results = {
        "archive_mib": round(mib, 1),
        "curl_mib_s": round(mib / _best(curl), 1),
        "download_mib_s": round(mib / _best(library), 1),
        "download_vs_curl": round(_best(curl) / _best(library), 3),
        "pull_process_mib_s": round(mib / _best(process), 1),
        "pull_process_vs_curl": round(_best(curl) / _best(process), 3),
        "curl_pipe_tar_mib_s": round(mib / _best(curl_tar), 1),
        "pull_process_vs_curl_pipe_tar": round(_best(curl_tar) / _best(process), 3),
        "cached_pull_process_s_median": round(statistics.median(cached_process), 3),
        "cached_pull_process_s_best": round(min(cached_process), 3),
        "cached_pull_call_ms_median": round(1000 * statistics.median(cached_call), 2),
        "bare_python_start_s_median": round(statistics.median(bare_python), 3),
        "server_requests": requests_made,
        "cpus": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        width = max(map(len, results))
        for key, value in results.items():
            print(f"{key:<{width}}  {value}")
    return results


if __name__ == "__main__":
    main()
