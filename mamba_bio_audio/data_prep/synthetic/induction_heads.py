"""Induction heads (Gu & Dao 2023, §4.1.2, Table 2, App. E.1): after a TRIGGER token, recall the token that
followed the trigger's first occurrence.

One sequence of ``length`` tokens over a vocabulary of 16 (the paper's): random content tokens (0 .. 14), the
TRIGGER (15) once at a random position p in [0, length - 3] followed by the answer (a content token), and the
TRIGGER again at the last position, whose target is the answer. ``targets`` are aligned to the positions
(position t is trained on ``targets[t]``): only the last one counts, the others are
:data:`~mamba_bio_audio.targets.IGNORE_INDEX`. Any ``length`` >= 3 works, so a model trained at 256 is tested
at 2^20 on the same task.
"""
from __future__ import annotations

import numpy as np

from mamba_bio_audio.targets import IGNORE_INDEX

__all__ = ["TRIGGER", "VOCAB_SIZE", "induction_heads"]

VOCAB_SIZE = 16
TRIGGER = VOCAB_SIZE - 1  # content tokens are 0 .. VOCAB_SIZE - 2


def induction_heads(rng: np.random.Generator, batch: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets), int64 (batch, length) each, drawn from ``rng``; see the module docstring."""
    if length < 3:
        raise ValueError(f"induction heads needs length >= 3 (trigger, answer, trigger); got {length}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1; got {batch}")
    inputs = rng.integers(0, TRIGGER, size=(batch, length), dtype=np.int64)
    rows = np.arange(batch)
    first = rng.integers(0, length - 2, size=batch)  # the answer at first + 1 <= length - 2
    inputs[rows, first] = TRIGGER
    inputs[:, -1] = TRIGGER
    targets = np.full((batch, length), IGNORE_INDEX, dtype=np.int64)
    targets[:, -1] = inputs[rows, first + 1]
    return inputs, targets
