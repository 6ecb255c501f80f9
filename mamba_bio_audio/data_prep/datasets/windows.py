"""Window schemes: where training windows of ``seq_len`` tokens start (pure numpy, no I/O).

Inputs are a split's intervals, int64 (n, 3): record, start, end (relative to the record, see
:mod:`.dna_layout`), and its record lengths (n_records,). A window is (record, start); its tokens are
``record[start : start + seq_len]``, and a window is moved inside its record (never past either end) where a
scheme would put it outside; only a record shorter than ``seq_len`` gives a window that needs padding.

``mamba`` (Mamba paper §E.3.1, HG38 pretraining)
    ``seq_len <= tile_max`` (2^17): non-overlapping tiles of each interval, ``floor(len / seq_len)`` of them,
    the remainder dropped; ``seq_len > tile_max``: two windows per interval, one starting at its start and one
    ending at its end, the context beyond the interval taken from its record.
``caduceus`` (Caduceus ``hg38_dataset.py``)
    each interval's end reset to ``start + span`` (2^20), the span moved inside the record, then cut into
    ``span / seq_len`` tiles (``seq_len`` must divide ``span``).
``uniform``
    an interval drawn with probability proportional to its length, then a start uniform in it (a window may
    run past the interval's end into its record).
"""
from __future__ import annotations

import numpy as np

PAPER_TILE_MAX = 1 << 17
CADUCEUS_SPAN = 1 << 20
SCHEMES = ("mamba", "caduceus", "uniform")


def fit(records: np.ndarray, starts: np.ndarray, record_lengths: np.ndarray, length: int) -> np.ndarray:
    """``starts`` moved so that ``[start, start + length)`` lies inside its record where the record allows."""
    return np.clip(starts, 0, np.maximum(record_lengths[records] - length, 0))


def _tile(records: np.ndarray, starts: np.ndarray, counts: np.ndarray, step: int) -> np.ndarray:
    """``counts[i]`` windows at ``starts[i] + k * step`` per row i: (sum(counts), 2) int64."""
    total = int(counts.sum())
    k = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    return np.stack([np.repeat(records, counts), np.repeat(starts, counts) + k * step], axis=1)


def mamba_windows(intervals: np.ndarray, record_lengths: np.ndarray, seq_len: int,
                  tile_max: int = PAPER_TILE_MAX) -> np.ndarray:
    """The Mamba paper's windows: (m, 2) int64 (record, start); see the module docstring."""
    rec, a, b = intervals[:, 0], intervals[:, 1], intervals[:, 2]
    if seq_len <= tile_max:
        return _tile(rec, a, (b - a) // seq_len, seq_len)
    starts = np.stack([a, b - seq_len], axis=1).reshape(-1)
    rec2 = np.repeat(rec, 2)
    return np.stack([rec2, fit(rec2, starts, record_lengths, seq_len)], axis=1)


def caduceus_windows(intervals: np.ndarray, record_lengths: np.ndarray, seq_len: int,
                     span: int = CADUCEUS_SPAN) -> np.ndarray:
    """Caduceus' windows: ``span // seq_len`` tiles of a ``span`` from each interval's start; (m, 2) int64."""
    if span % seq_len:
        raise ValueError(f"seq_len {seq_len} must divide the Caduceus span {span}")
    rec = intervals[:, 0]
    base = fit(rec, intervals[:, 1], record_lengths, span)
    windows = _tile(rec, base, np.full(len(rec), span // seq_len), seq_len)
    windows[:, 1] = fit(windows[:, 0], windows[:, 1], record_lengths, seq_len)
    return windows


def uniform_window(rng: np.random.Generator, intervals: np.ndarray, cum_lengths: np.ndarray,
                   record_lengths: np.ndarray, seq_len: int) -> tuple[int, int]:
    """One (record, start): interval by length (``cum_lengths`` = cumsum of interval lengths), start uniform."""
    i = int(np.searchsorted(cum_lengths, rng.integers(cum_lengths[-1]), side="right"))
    rec, a, b = (int(x) for x in intervals[i])
    start = a + int(rng.integers(max(b - a - seq_len, 0) + 1))
    return rec, int(fit(np.array([rec]), np.array([start]), record_lengths, seq_len)[0])
