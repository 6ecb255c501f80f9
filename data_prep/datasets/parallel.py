"""Ordered parallel map over a process pool, for decoding and rendering many files."""
from __future__ import annotations

import multiprocessing
import os
import sys
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    """CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int | None = None,
                in_flight_per_worker: int = 4) -> Iterator[R]:
    """``fn(item)`` for every item, yielded in input order.

    ``workers`` <= 1 runs in this process. Otherwise at most ``workers * in_flight_per_worker`` items are
    submitted ahead of the one being yielded, so results of fast items never pile up behind a slow one.
    ``fn`` must be a picklable top-level function (or a ``functools.partial`` of one).
    """
    workers = default_workers() if workers is None else int(workers)
    if workers <= 1:
        yield from map(fn, items)
        return
    # fork starts workers in milliseconds; the workers run numpy / soundfile / soxr / subprocess code only,
    # never torch ops, so the parent's idle torch threads do not matter. Elsewhere the platform default.
    context = multiprocessing.get_context("fork") if sys.platform.startswith("linux") else None
    iterator = iter(items)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)
    pending: deque = deque()
    try:
        for item in iterator:
            pending.append(pool.submit(fn, item))
            if len(pending) >= workers * in_flight_per_worker:
                break
        while pending:
            result = pending.popleft().result()
            for item in iterator:
                pending.append(pool.submit(fn, item))
                break
            yield result
    finally:  # an error or an abandoned generator: drop the queued work instead of finishing it
        pool.shutdown(wait=True, cancel_futures=True)
