"""Comma-separated integer options of the benchmarks (``--batch-sizes 1,16,64``, ``--lanes 0,16``)."""
from __future__ import annotations

from collections.abc import Callable

__all__ = ["int_list"]


def int_list(text: str, option: str, valid: Callable[[int], bool], kind: str) -> list[int]:
    """The integers of ``text`` ("1,16,64"; empty items skipped), each ``valid``; else a ValueError naming
    ``option`` and what it takes (``kind``, e.g. "positive integers")."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or not all(map(valid, values)):
        raise ValueError(f"{option} must be comma-separated {kind}; got {text!r}")
    return values
