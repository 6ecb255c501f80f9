"""Ordered parallel map over a process pool, for decoding and rendering many files."""
from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import sys
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")
_POLL_S = 0.5  # how often a wait for a result checks that the pool still runs


class PoolStopped(ChildProcessError):
    """The process pool's manager thread died: the pool would never answer."""


def default_workers() -> int:
    """CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int | None = None,
                in_flight_per_worker: int = 4) -> Iterator[R]:
    """``fn(item)`` for every item, yielded in input order.

    ``workers`` <= 1 runs in this process. Otherwise at most ``workers * in_flight_per_worker`` items are
    submitted ahead of the one being yielded, so results of fast items never pile up behind a slow one.
    ``fn`` must be a picklable top-level function (or a ``functools.partial`` of one). A pool that stops
    answering because its manager thread died (it could not start the queue's feeder thread, as happens under
    a tight address-space limit, ``ulimit -v``) raises :class:`PoolStopped` and its workers are ended, where
    ``concurrent.futures`` alone would wait forever.
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
            result = _result(pending.popleft(), pool, workers)
            for item in iterator:
                pending.append(pool.submit(fn, item))
                break
            yield result
    finally:  # an error or an abandoned generator: drop the queued work instead of finishing it
        manager = getattr(pool, "_executor_manager_thread", None)
        running = manager is not None and manager.is_alive()
        if not running:  # nothing will feed or stop the workers: end them
            processes = list((getattr(pool, "_processes", None) or {}).values())
            for process in processes:
                process.terminate()
            for process in processes:
                process.join()
        pool.shutdown(wait=running, cancel_futures=True)  # joining a manager that never started would raise


def _result(future: concurrent.futures.Future, pool: ProcessPoolExecutor, workers: int):
    """``future.result()``, or PoolStopped when the pool's manager thread is gone with the future unfinished
    (``_executor_manager_thread``: CPython's, 3.9 and later; without it this is a plain wait)."""
    while True:
        try:
            return future.result(timeout=_POLL_S)
        except concurrent.futures.TimeoutError:
            manager = getattr(pool, "_executor_manager_thread", None)
            if manager is not None and not manager.is_alive() and not future.done():
                raise PoolStopped(f"the pool of {workers} worker processes stopped answering (it could not start "
                                  f"a thread: a memory limit such as ulimit -v?); run with --workers 1 or "
                                  f"raise the limit") from None
