"""Shorter busy-waiting for PyTorch's OpenMP workers, set before torch loads.

After each parallel region, GNU OpenMP's workers (PyTorch's Linux CPU wheels bundle libgomp) spin for
``GOMP_SPINCOUNT`` iterations before they sleep: 300,000 by default, a few milliseconds. The numba kernels (the CPU
selective scan) run on numba's own threads, so for those milliseconds after each GEMM a spinning torch worker and a
numba worker share a core. On the 2-core VM this project is developed on, the training step of ``bench cpu`` took
250-292 ms with the default and 215-251 ms with a count between 3,000 and 30,000 over two sittings (its scan
kernels ran about twice as long inside the step as alone at the default); 0 (``OMP_WAIT_POLICY=passive``) gave
255-257 ms, because then every torch op must wake its workers (``docs/performance.md``, "OpenMP spin").

libgomp reads the setting once, when it loads (on ``import torch``), so :func:`shorten_openmp_spin` changes nothing
once torch is loaded, and it leaves the setting alone where the environment already has one (``GOMP_SPINCOUNT`` or
``OMP_WAIT_POLICY``): that is how a user chooses another. It changes the environment of the process and of the
processes it starts, so the library never calls it on import: the ``mamba-bio-audio`` command does, first thing.
Other OpenMP runtimes ignore the variable: a PyTorch built with LLVM's or Intel's OpenMP (some conda builds) spins
for ``KMP_BLOCKTIME`` instead (200 ms by default), which this module leaves alone, since no such build was measured.
"""
from __future__ import annotations

import os
import sys

__all__ = ["SPIN_COUNT", "shorten_openmp_spin"]

SPIN_COUNT = 10_000  # the middle of the 3,000-30,000 plateau measured on the 2-core VM


def shorten_openmp_spin(spin_count: int = SPIN_COUNT) -> str:
    """Set ``GOMP_SPINCOUNT`` to ``spin_count`` (>= 0) for this process and its children, before torch loads.
    Returns what happened: ``"set"``; ``"user"`` (``GOMP_SPINCOUNT`` or ``OMP_WAIT_POLICY`` was already set: left
    as it is); ``"late"`` (torch is already loaded, so its OpenMP runtime has read its settings: nothing set)."""
    if isinstance(spin_count, bool) or not isinstance(spin_count, int) or spin_count < 0:
        raise ValueError(f"spin_count must be an integer >= 0; got {spin_count!r}")
    if "GOMP_SPINCOUNT" in os.environ or "OMP_WAIT_POLICY" in os.environ:
        return "user"
    if "torch" in sys.modules:
        return "late"
    os.environ["GOMP_SPINCOUNT"] = str(spin_count)
    return "set"
