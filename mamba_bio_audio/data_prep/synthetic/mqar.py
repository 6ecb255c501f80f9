"""Multi-query associative recall (MQAR; Arora et al., "Zoology", ICML 2024): seeded, drawn on demand, no files.

One sequence of ``length`` tokens, in Zoology's layout (its ``multiquery_ar``):

* the vocabulary is split in two: keys are ids ``1 .. vocab_size // 2 - 1``, values ``vocab_size // 2 ..
  vocab_size - 1``; id 0 is the blank filler;
* the first ``2 * num_pairs`` tokens are the pairs ``k1 v1 k2 v2 ...`` (distinct keys, distinct values);
* every key is then queried once, in random order, at even offsets ``2 * gap`` after the pairs, the gaps drawn
  without replacement with weights ``gap ** (power_a - 1)``, gap = 1 ... (length - 2 * num_pairs) / 2 (a power
  law: most queries come soon after the pairs, as repeated bigrams do in text; ``power_a = 1`` is uniform);
* every other position holds the blank 0 (with ``random_non_queries``, a random id of the whole vocabulary).

``targets`` are aligned to the positions (position t is trained on ``targets[t]``): at a query, the value paired
with its key; :data:`~mamba_bio_audio.targets.IGNORE_INDEX` (-100) everywhere else, so the loss counts the answers
only. Zoology's Figure 2 uses vocabulary 8192, (length, pairs) (64, 4), (128, 8), (256, 16), power_a 0.01 and a
blank filler.
"""
from __future__ import annotations

import numpy as np

from mamba_bio_audio.targets import IGNORE_INDEX

__all__ = ["BLANK", "check_mqar", "mqar"]

BLANK = 0


def _positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")


def check_mqar(vocab_size: int, length: int, num_pairs: int, power_a: float = 0.01, *,
               names: dict[str, str] | None = None) -> None:
    """Raise ValueError naming the argument when no MQAR sequence of these sizes exists. ``names``: how the
    message spells each argument (default ``MQAR <argument>``; a config passes its keys)."""
    name = {key: f"MQAR {key}" for key in ("vocab_size", "length", "num_pairs", "power_a")} | (names or {})
    for key, value in (("vocab_size", vocab_size), ("length", length), ("num_pairs", num_pairs)):
        _positive_int(name[key], value)
    if length < 4 * num_pairs:
        raise ValueError(f"{name['length']} must be >= 4 * {name['num_pairs']} (the pairs, then a query and a gap per "
                         f"pair); got {length} with {num_pairs} pairs")
    if num_pairs > vocab_size // 2 - 1:
        raise ValueError(f"{name['num_pairs']} must be <= {name['vocab_size']} // 2 - 1 = {vocab_size // 2 - 1} "
                         f"(distinct keys among ids 1 .. vocab_size // 2 - 1); got {num_pairs}")
    if isinstance(power_a, bool) or not isinstance(power_a, (int, float)) or not 0 < power_a <= 1:
        raise ValueError(f"{name['power_a']} must be in (0, 1] (1: uniform query gaps); got {power_a!r}")


def _distinct(rng: np.random.Generator, batch: int, population: int, k: int) -> np.ndarray:
    """(batch, k) int64: k distinct draws from range(population) per row, in random order."""
    return np.stack([rng.choice(population, size=k, replace=False) for _ in range(batch)]).astype(np.int64)


def mqar(rng: np.random.Generator, batch: int, length: int, *, vocab_size: int, num_pairs: int,
         power_a: float = 0.01, random_non_queries: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(inputs, targets)``, int64 (batch, length) each, drawn from ``rng``; see the module docstring."""
    _positive_int("MQAR batch", batch)
    check_mqar(vocab_size, length, num_pairs, power_a)
    half, context = vocab_size // 2, 2 * num_pairs
    keys = 1 + _distinct(rng, batch, half - 1, num_pairs)
    values = half + _distinct(rng, batch, vocab_size - half, num_pairs)
    # gaps without replacement, weights w: the k largest log w + Gumbel noise (the same law as drawing one by one)
    space = (length - context) // 2
    log_w = (power_a - 1) * np.log(np.arange(1, space + 1, dtype=np.float64))
    gaps = np.argsort(-(log_w + rng.gumbel(size=(batch, space))), axis=1)[:, :num_pairs]
    if random_non_queries:
        inputs = rng.integers(0, vocab_size, size=(batch, length), dtype=np.int64)
    else:
        inputs = np.full((batch, length), BLANK, dtype=np.int64)
    targets = np.full((batch, length), IGNORE_INDEX, dtype=np.int64)
    inputs[:, 0:context:2], inputs[:, 1:context:2] = keys, values
    rows = np.arange(batch)[:, None]
    where = context + 2 * gaps  # gap j queries pair j (the gaps come in random order)
    inputs[rows, where], targets[rows, where] = keys, values
    return inputs, targets
