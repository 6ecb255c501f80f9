"""Keep freed memory in the process for reuse, instead of handing it back to the OS after every step.

glibc's malloc serves every block above its mmap threshold (128 KiB, rising to at most 32 MiB) with a fresh
``mmap`` and unmaps it on ``free``, and trims the heap's free top beyond its trim threshold. A CPU training step
allocates and frees the same large activations, gradients and scan scratch every step, so every step page-faults
them in again: each first touch of a 4 KiB page traps to the kernel, which zeroes the page. On the 2-core VM this
project is developed on that was 15-35 % of a small-model training step (the MQAR study's models, batch 128, L 32;
``docs/performance.md``, "Freed memory kept"). :func:`keep_freed_memory` raises both thresholds (glibc's
``mallopt``), so freed blocks below ``limit_bytes`` go back to the heap and are reused by the next step with no
faults; the process's resident memory then stays near its peak instead of falling between steps. It is what
jemalloc or tcmalloc, preloaded, would give, without a preload.

It changes a process-wide setting, so the library never calls it on import: the ``mamba-bio-audio`` command does,
once, before a subcommand runs (``--release-memory`` keeps glibc's defaults). Other C libraries (musl, macOS)
have no ``mallopt``; there it does nothing and says so.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["DEFAULT_LIMIT_BYTES", "keep_freed_memory"]

DEFAULT_LIMIT_BYTES = 1 << 30  # 1 GiB: larger blocks are still mapped and unmapped one by one

# glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def keep_freed_memory(limit_bytes: int = DEFAULT_LIMIT_BYTES) -> bool:
    """Serve blocks below ``limit_bytes`` (1 MiB ... 2 GiB - 1) from the heap and keep up to ``limit_bytes`` of
    freed heap in the process (glibc). Returns whether the C library took both settings (False off glibc)."""
    if not (1 << 20) <= limit_bytes < (1 << 31):
        raise ValueError(f"limit_bytes must be between 1 MiB and 2 GiB - 1 (a C int); got {limit_bytes}")
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # no libc by that name, or one without mallopt (musl)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # the mmap threshold first: setting either one turns off glibc's sliding thresholds
    return bool(mallopt(_M_MMAP_THRESHOLD, limit_bytes)) and bool(mallopt(_M_TRIM_THRESHOLD, limit_bytes))
