"""Selective copying (Gu & Dao 2023, §4.1.1, Fig. 2, App. E.1): remember ``n_tokens`` data tokens scattered at
random positions among noise, then emit them in order.

Layout of one sequence of ``length`` tokens (the paper: length 4096, 16 data tokens, a vocabulary of 16 with the
noise token; the markers follow state-spaces/s4's ``torch_copying_data``)::

    positions [0, length - n_tokens)        NOISE (0), with the n_tokens data tokens (1 .. 14) at random places
    positions [length - n_tokens, length)   MARKER (15): "emit the next data token"

``targets`` are aligned to the positions (position t is trained on ``targets[t]``, the ``targets=`` convention
of the models): the data tokens in order at the marker positions, :data:`~mamba_bio_audio.targets.IGNORE_INDEX`
elsewhere, so the loss and the accuracy count only the answers.
"""
from __future__ import annotations

import numpy as np

from mamba_bio_audio.targets import IGNORE_INDEX

__all__ = ["MARKER", "NOISE", "VOCAB_SIZE", "selective_copying"]

VOCAB_SIZE = 16
NOISE, MARKER = 0, VOCAB_SIZE - 1  # data tokens are 1 .. VOCAB_SIZE - 2


def selective_copying(rng: np.random.Generator, batch: int, length: int, n_tokens: int = 16
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets), int64 (batch, length) each, drawn from ``rng``; see the module docstring."""
    if n_tokens < 1 or length < 2 * n_tokens:
        raise ValueError(f"selective copying needs n_tokens >= 1 and length >= 2 * n_tokens (room for the tokens "
                         f"and their answers); got length={length}, n_tokens={n_tokens}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1; got {batch}")
    span = length - n_tokens
    tokens = rng.integers(1, MARKER, size=(batch, n_tokens), dtype=np.int64)
    places = np.sort(np.argsort(rng.random((batch, span)), axis=1)[:, :n_tokens], axis=1)
    inputs = np.full((batch, length), NOISE, dtype=np.int64)
    np.put_along_axis(inputs, places, tokens, axis=1)
    inputs[:, span:] = MARKER
    targets = np.full((batch, length), IGNORE_INDEX, dtype=np.int64)
    targets[:, span:] = tokens
    return inputs, targets
