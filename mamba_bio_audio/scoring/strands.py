"""The reverse-complement strand: ids and per-base scores read back on the forward strand, and GPN-style strand
averaging (the mean of the two strands' scores)."""
from __future__ import annotations

import numpy as np

from mamba_bio_audio.tokenizers.nucleotide import DNA_VOCAB

__all__ = ["complement_table", "rc_average", "reverse_complement_ids"]


def complement_table() -> np.ndarray:
    """(16,) int64: the complement of every id (A↔T, C↔G; others unchanged)."""
    table = np.arange(16, dtype=np.int64)
    for a, b in ("AT", "TA", "CG", "GC"):
        table[DNA_VOCAB[a]] = DNA_VOCAB[b]
    return table


_COMPLEMENT = complement_table()  # built once: reverse_complement_ids runs per window and per allele


def reverse_complement_ids(ids: np.ndarray) -> np.ndarray:
    """ids (L,) integer → the reverse-complement strand's ids (L,) int64."""
    return _COMPLEMENT[np.asarray(ids, dtype=np.int64)[::-1]]


def rc_average(forward: np.ndarray, reverse: np.ndarray, per_base: bool = False) -> np.ndarray:
    """The mean of the two strands' scores. ``per_base``: ``reverse`` (L,) was computed on the reverse-complement
    strand, base i of it is base L-1-i here, so it is flipped first; otherwise the scores are aligned already
    (one per variant). NaN where either strand has none."""
    forward, reverse = np.asarray(forward, dtype=np.float64), np.asarray(reverse, dtype=np.float64)
    if per_base:
        reverse = reverse[::-1]
    if forward.shape != reverse.shape:
        raise ValueError(f"the strands' scores differ in shape: {forward.shape} vs {reverse.shape}")
    return (forward + reverse) / 2
