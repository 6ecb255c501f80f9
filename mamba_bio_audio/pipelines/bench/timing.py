"""Wall-clock timing of a step on a device (the median of repeated runs after a warm-up run), and the one-line
record of a measurement that failed."""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def sync(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (CUDA); nothing to wait for on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds(step: Callable[[], object], device: torch.device) -> float:
    """Wall seconds of one run of ``step``, synchronised before and after."""
    sync(device)
    started = time.perf_counter()
    step()
    sync(device)
    return time.perf_counter() - started


def median_seconds(step: Callable[[], object], device: torch.device, repeats: int,
                   warmup: Callable[[], object] | None = None) -> float:
    """Median wall seconds of ``repeats`` runs of ``step``, each synchronised, after one run of ``warmup``
    (default: ``step`` itself) for JIT compilation, the allocator and the caches."""
    (warmup or step)()
    return statistics.median(seconds(step, device) for _ in range(repeats))


def failure(err: BaseException) -> str:
    """``err`` as one line for a result row: its type and the first line of its message, at most 300 characters."""
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0][:300] if lines else ''}".rstrip(": ")
