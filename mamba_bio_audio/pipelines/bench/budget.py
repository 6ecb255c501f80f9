"""A sweep's wall-clock allowance (``--time-budget SECONDS``), so that a sweep run under a hard time limit stops
before a point that would not fit and still writes the points it measured.

A point is started only when the seconds left cover the estimate of its cost, which each sweep takes from the
points it has already measured; a point that was not started is recorded as :data:`NOT_RUN`.
"""
from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

NOT_RUN = "not run: the time budget (--time-budget) was spent"


def add_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                        help="wall-clock seconds for the whole sweep: a point is skipped (and recorded as not run) "
                             "when the time left does not cover the estimate of its cost (default: no limit)")


class TimeBudget:
    """Seconds left of ``seconds`` from construction (None: unlimited)."""

    def __init__(self, seconds: float | None):
        if seconds is not None and seconds <= 0:
            raise ValueError(f"--time-budget must be > 0 seconds; got {seconds}")
        self.deadline = None if seconds is None else time.monotonic() + seconds
        self.last_point_s = 0.0

    def left(self) -> float:
        """Seconds left (``inf`` without a limit; negative once overrun)."""
        return math.inf if self.deadline is None else self.deadline - time.monotonic()

    def allows(self, estimate_s: float) -> bool:
        """Whether a point estimated to take ``estimate_s`` seconds fits in what is left."""
        return estimate_s <= self.left()

    def run_point(self, measure: Callable[[dict, float], dict], spec: dict, timeout_s: float) -> dict:
        """``measure(spec, timeout)`` (a point of a sweep in a child process, see :mod:`.train_step`) if the last
        point's wall time fits in what is left, its timeout cut to what is left; else ``{"error": NOT_RUN}``."""
        if not self.allows(self.last_point_s):
            return {"error": NOT_RUN}
        started = time.monotonic()
        result = measure(spec, min(timeout_s, max(self.left(), 1.0)))
        self.last_point_s = time.monotonic() - started
        return result
