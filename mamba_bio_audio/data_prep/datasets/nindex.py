"""Counts of N tokens in any stretch of a split, exact and fast, from prefix counts at block boundaries.

``cum[k]`` is the number of N tokens in ``tokens[: k * BLOCK]`` (the last entry covers the whole stream), an
int64 array of ``ceil(T / BLOCK) + 1`` entries (6 MB for a human genome). The count before any position adds
a scan of at most one block, or one vectorised pass (``np.add.reduceat``) over a chunk when many positions
fall in it.
"""
from __future__ import annotations

import numpy as np

N_ID = 11
BLOCK = 4096
_CHUNK = BLOCK * 4096


def block_counts(tokens: np.ndarray) -> np.ndarray:
    """N tokens per BLOCK of ``tokens`` (uint8, any length; a final partial block counts too), int64."""
    n = tokens.size
    out = np.empty(-(-n // BLOCK), dtype=np.int64)
    for a in range(0, n, _CHUNK):
        piece = np.asarray(tokens[a: a + _CHUNK])
        full = piece.size // BLOCK
        k = a // BLOCK
        out[k: k + full] = np.count_nonzero(piece[: full * BLOCK].reshape(full, BLOCK) == N_ID, axis=1)
        if piece.size > full * BLOCK:
            out[k + full] = np.count_nonzero(piece[full * BLOCK:] == N_ID)
    return out


class NIndexBuilder:
    """Accumulate the prefix counts of a token stream appended piece by piece."""

    def __init__(self):
        self._counts: list[np.ndarray] = []
        self._partial = 0  # N in the current, unfinished block
        self._fill = 0  # tokens in it

    def add(self, tokens: np.ndarray) -> None:
        pos = 0
        if self._fill:
            pos = min(BLOCK - self._fill, tokens.size)
            self._partial += int(np.count_nonzero(np.asarray(tokens[:pos]) == N_ID))
            self._fill += pos
            if self._fill == BLOCK:
                self._counts.append(np.array([self._partial]))
                self._partial = self._fill = 0
        full_end = pos + (tokens.size - pos) // BLOCK * BLOCK
        if full_end > pos:
            self._counts.append(block_counts(tokens[pos:full_end]))
        if full_end < tokens.size:
            self._partial = int(np.count_nonzero(np.asarray(tokens[full_end:]) == N_ID))
            self._fill = tokens.size - full_end

    def finish(self) -> np.ndarray:
        counts = self._counts + ([np.array([self._partial])] if self._fill else [])
        return np.concatenate([np.zeros(1, np.int64)] + counts).cumsum()


class NIndex:
    """Exact N counts over ``tokens`` (uint8, e.g. a memmap) given its prefix counts ``cum``."""

    def __init__(self, tokens: np.ndarray, cum: np.ndarray | None = None):
        self.tokens = tokens
        self.cum = cum if cum is not None else np.concatenate([np.zeros(1, np.int64), block_counts(tokens)]).cumsum()

    def before(self, positions: np.ndarray) -> np.ndarray:
        """N tokens in ``tokens[:p]`` for each p of ``positions`` (int64 array, 0 <= p <= T)."""
        positions = np.asarray(positions, dtype=np.int64)
        block = positions // BLOCK
        out = self.cum[block].copy()
        rem = positions - block * BLOCK
        todo = np.flatnonzero(rem > 0)
        if todo.size == 0:
            return out
        chunk = positions[todo] // _CHUNK
        order = np.argsort(chunk, kind="stable")
        todo, chunk = todo[order], chunk[order]
        bounds = np.flatnonzero(np.diff(chunk)) + 1
        for group in np.split(todo, bounds):
            c0 = int(positions[group[0]] // _CHUNK * _CHUNK)
            if group.size * BLOCK // 2 > _CHUNK // 8:  # dense: one pass over the chunk
                piece = np.asarray(self.tokens[c0: c0 + _CHUNK])
                eq = np.zeros(piece.size + 1, bool)  # one spare element: a position may equal the chunk's end
                eq[:-1] = piece == N_ID
                bounds = np.empty(2 * group.size, np.int64)  # [block start, position) pairs; odd sums unused
                bounds[0::2] = block[group] * BLOCK - c0
                bounds[1::2] = positions[group] - c0
                out[group] += np.add.reduceat(eq, bounds, dtype=np.int64)[0::2]
            else:
                for i in group:
                    b0 = int(block[i]) * BLOCK
                    out[i] += np.count_nonzero(np.asarray(self.tokens[b0: int(positions[i])]) == N_ID)
        return out

    def count(self, starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
        """N tokens in ``tokens[start:stop]`` for each pair (int64 arrays)."""
        return self.before(stops) - self.before(starts)
