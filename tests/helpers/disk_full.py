"""A full disk for tests, without root or tmpfs: a file-size limit makes big writes fail (EFBIG)."""

from __future__ import annotations

import resource
import signal
from contextlib import contextmanager


@contextmanager
def file_size_limit(max_bytes: int):
    """Writes past ``max_bytes`` fail with OSError(EFBIG), as they would on a full disk."""
    # Without ignoring SIGXFSZ the kernel would kill the test process instead of failing the write.
    previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous_handler)
