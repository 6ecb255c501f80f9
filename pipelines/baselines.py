"""Count-based next-token baselines that put model bits-per-token figures in context."""
from __future__ import annotations

import math

import numpy as np


class MarkovBaseline:
    """Order-k Markov chain over token ids with add-``alpha`` smoothing.

    ``fit`` counts (k-mer context, next token) pairs in a 1-D int array; ``bits_per_base`` is the mean
    -log2 p(x_t | x_{t-k..t-1}) over positions t >= k of another 1-D int array.
    """

    def __init__(self, order: int, alpha: float = 1.0, alphabet=(7, 8, 9, 10, 11)):
        if order < 0:
            raise ValueError(f"order must be >= 0; got {order}")
        if not alpha > 0:
            raise ValueError(f"alpha must be > 0; got {alpha}")
        self.order = order
        self.alpha = alpha
        self.alphabet = np.asarray(alphabet, dtype=np.int64)
        self._index = np.full(int(self.alphabet.max()) + 1, -1, dtype=np.int64)
        self._index[self.alphabet] = np.arange(len(self.alphabet))
        self.counts: np.ndarray | None = None

    def _codes(self, tokens: np.ndarray) -> np.ndarray:
        tokens = np.asarray(tokens, dtype=np.int64)
        if tokens.size and (tokens.min() < 0 or tokens.max() >= len(self._index) or (self._index[tokens] < 0).any()):
            raise ValueError(f"tokens outside the baseline alphabet {self.alphabet.tolist()}")
        return self._index[tokens]

    def _contexts(self, codes: np.ndarray) -> np.ndarray:
        size = len(self.alphabet)
        ctx = np.zeros(len(codes) - self.order, dtype=np.int64)
        for j in range(self.order):
            ctx = ctx * size + codes[j : len(codes) - self.order + j]
        return ctx

    def fit(self, tokens: np.ndarray) -> "MarkovBaseline":
        codes = self._codes(tokens)
        size = len(self.alphabet)
        counts = np.zeros((size**self.order, size), dtype=np.float64)
        np.add.at(counts, (self._contexts(codes), codes[self.order :]), 1.0)
        self.counts = counts
        return self

    def bits_per_base(self, tokens: np.ndarray) -> float:
        if self.counts is None:
            raise RuntimeError("call fit() first")
        codes = self._codes(tokens)
        if len(codes) <= self.order:
            raise ValueError(f"need more than {self.order} tokens to score an order-{self.order} model")
        ctx = self._contexts(codes)
        smoothed = self.counts + self.alpha
        probs = smoothed[ctx, codes[self.order :]] / smoothed[ctx].sum(axis=1)
        return float(-np.log(probs).mean() / math.log(2.0))
