"""What this process may use and has used of the machine: cores and peak memory.

Thread counts follow the cores the process may run on (its affinity mask, which
containers and ``taskset`` narrow), not the machine's count; peak memory is the
kernel's high-water mark of resident memory, reported in every run's metrics.

Example:
    >>> available_cores() >= 1
    True
    >>> peak_rss_mb() > 0
    True
"""

from __future__ import annotations

import os
import resource
import sys
from pathlib import Path


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def peak_rss_mb() -> float:
    """The largest resident memory this process's program has had so far, in MiB.

    Linux carries ``ru_maxrss`` across ``exec``, so a process started by a larger one would
    report that one's peak: its own high-water mark (``VmHWM``) is read where there is one.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)
