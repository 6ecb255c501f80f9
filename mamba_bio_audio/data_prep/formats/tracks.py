"""Per-base signal tracks: bedGraph text and bigWig (pyBigWig). NaN bases (no score) are left out of both."""
from __future__ import annotations

from pathlib import Path
from typing import IO

import numpy as np
import pyBigWig

__all__ = ["finite_runs", "write_bedgraph_values", "BigWigWriter"]


def finite_runs(values: np.ndarray) -> list[tuple[int, int]]:
    """[(start, end)) runs of the finite entries of values (L,)."""
    finite = np.isfinite(values)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], finite.astype(np.int8), [0]])))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist()))


def write_bedgraph_values(fh: IO[str], chrom: str, start: int, values: np.ndarray, digits: int = 5) -> None:
    """One bedGraph line per finite base of values (L,) fp32 (base i at ``start + i``, 0-based half-open)."""
    values = np.asarray(values, dtype=np.float32)
    for lo, hi in finite_runs(values):
        pos = np.arange(start + lo, start + hi)
        lines = np.char.add(np.char.add(np.char.add(f"{chrom}\t", pos.astype(str)), "\t"),
                            np.char.add(np.char.add((pos + 1).astype(str), "\t"),
                                        np.char.mod(f"%.{digits}g", values[lo:hi])))
        fh.write("\n".join(lines.tolist()) + "\n")


class BigWigWriter:
    """A bigWig file at ``path`` with the sequences ``chroms`` [(name, length)] in that order; call
    :meth:`add` for each sequence's values in that order, then :meth:`close` (or use ``with``)."""

    def __init__(self, path: str | Path, chroms: list[tuple[str, int]]):
        self.bw = pyBigWig.open(str(path), "w")
        self.bw.addHeader([(str(c), int(n)) for c, n in chroms], maxZooms=10)

    def add(self, chrom: str, start: int, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64)
        for lo, hi in finite_runs(values):
            self.bw.addEntries(str(chrom), start + lo, values=values[lo:hi].tolist(), span=1, step=1)

    def close(self) -> None:
        self.bw.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
