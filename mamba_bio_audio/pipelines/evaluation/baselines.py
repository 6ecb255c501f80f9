"""Count-based next-token baselines that put model bits-per-token figures in context."""
from __future__ import annotations

import math

import numpy as np

from mamba_bio_audio.tokenizers import BASE_IDS, DNA_VOCAB

DNA_ALPHABET = (*BASE_IDS, DNA_VOCAB["N"])  # the ids of A, C, G, T, N


class MarkovBaseline:
    """Order-k Markov chain over token ids with add-``alpha`` smoothing.

    ``fit`` counts (k-mer context, next token) pairs in a 1-D int array; ``bits_per_base`` is the mean
    -log2 p(x_t | x_{t-k..t-1}) over positions t >= k of another 1-D int array. Counts are kept sparse (the
    contexts seen), so orders up to 10 and more fit in the memory of their data.
    """

    def __init__(self, order: int, alpha: float = 1.0, alphabet=DNA_ALPHABET):
        if order < 0:
            raise ValueError(f"order must be >= 0; got {order}")
        if not alpha > 0:
            raise ValueError(f"alpha must be > 0; got {alpha}")
        self.order = order
        self.alpha = alpha
        self.alphabet = np.asarray(alphabet, dtype=np.int64)
        if len(self.alphabet) ** (order + 1) >= 2**62:
            raise ValueError(f"order {order} is too high for an alphabet of {len(self.alphabet)}")
        self._index = np.full(int(self.alphabet.max()) + 1, -1, dtype=np.int64)
        self._index[self.alphabet] = np.arange(len(self.alphabet))
        self._pairs = self._pair_counts = self._contexts_seen = self._context_counts = None

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
        ctx = self._contexts(codes)
        self._pairs, self._pair_counts = np.unique(ctx * len(self.alphabet) + codes[self.order :], return_counts=True)
        self._contexts_seen, self._context_counts = np.unique(ctx, return_counts=True)
        return self

    @staticmethod
    def _lookup(keys: np.ndarray, counts: np.ndarray, wanted: np.ndarray) -> np.ndarray:
        at = np.minimum(np.searchsorted(keys, wanted), max(len(keys) - 1, 0))
        return np.where(keys[at] == wanted, counts[at], 0).astype(np.float64) if len(keys) else \
            np.zeros(len(wanted))

    def bits_per_base(self, tokens: np.ndarray) -> float:
        if self._pairs is None:
            raise RuntimeError("call fit() first")
        codes = self._codes(tokens)
        if len(codes) <= self.order:
            raise ValueError(f"need more than {self.order} tokens to score an order-{self.order} model")
        ctx = self._contexts(codes)
        size = len(self.alphabet)
        pair = self._lookup(self._pairs, self._pair_counts, ctx * size + codes[self.order :])
        total = self._lookup(self._contexts_seen, self._context_counts, ctx)
        probs = (pair + self.alpha) / (total + self.alpha * size)
        return float(-np.log(probs).mean() / math.log(2.0))


def best_markov(fit: np.ndarray, select: np.ndarray, orders=range(0, 11), alphas=(1.0, 0.1),
                alphabet=DNA_ALPHABET) -> tuple[MarkovBaseline, dict]:
    """The order-k Markov chain (k in ``orders``, add-``alpha`` for ``alpha`` in ``alphas``) fitted on ``fit``
    with the fewest bits per base on ``select`` (another stretch of the training data, so the choice does not
    look at the evaluation windows). Returns the model and ``{"order", "alpha", "select_bits": {"k/alpha": bits}}``."""
    scores, best = {}, None
    for order in orders:
        model = MarkovBaseline(order, alphabet=alphabet).fit(fit)
        for alpha in alphas:
            model.alpha = alpha
            bits = model.bits_per_base(select)
            scores[f"{order}/{alpha:g}"] = bits
            if best is None or bits < best[0]:
                best = (bits, order, alpha, model)
    _, order, alpha, model = best
    model.alpha = alpha
    return model, {"order": order, "alpha": alpha, "select_bits": scores}


class KmerSpeciesBaseline:
    """Multinomial logistic regression on the k-mer spectrum of a window: an alignment-free species
    classifier that puts a sequence model's accuracy in context (what base composition alone can tell).

    Features of a window: the frequencies of every k-mer over A, C, G, T for k = 1 .. ``k_max`` (k-mers
    holding any other token, such as N or [PAD], are skipped), 4 + 16 + ... + 4^k_max of them, standardised
    with the training windows' mean and deviation. Fitted by L-BFGS on the mean cross entropy plus
    ``l2`` times the squared weights.
    """

    def __init__(self, k_max: int = 4, l2: float = 1e-3, max_iter: int = 200, bases=BASE_IDS):
        if not 1 <= k_max <= 8:
            raise ValueError(f"k_max must be in 1..8; got {k_max}")
        if not l2 >= 0:
            raise ValueError(f"l2 must be >= 0; got {l2}")
        self.k_max, self.l2, self.max_iter = k_max, l2, max_iter
        self._code = np.full(256, -1, dtype=np.int64)
        self._code[np.asarray(bases, dtype=np.int64)] = np.arange(len(bases))
        self.mean = self.scale = self.weight = self.bias = None

    def features(self, windows: np.ndarray) -> np.ndarray:
        """``windows`` (n, L) token ids → (n, sum_k 4^k) float64 k-mer frequencies (rows of each k sum to 1,
        or are all 0 when no k-mer of that size is clean)."""
        windows = np.asarray(windows)
        if windows.ndim != 2 or windows.shape[1] < self.k_max:
            raise ValueError(f"windows must be (n, L) with L >= k_max={self.k_max}; got shape {windows.shape}")
        codes = self._code[windows.astype(np.int64)]
        n, length = codes.shape
        blocks = []
        for k in range(1, self.k_max + 1):
            kmer = np.zeros((n, length - k + 1), dtype=np.int64)
            clean = np.ones((n, length - k + 1), dtype=bool)
            for j in range(k):
                part = codes[:, j:length - k + 1 + j]
                kmer = kmer * 4 + np.maximum(part, 0)
                clean &= part >= 0
            rows = np.broadcast_to(np.arange(n)[:, None] * 4**k, kmer.shape)
            counts = np.bincount((rows + kmer)[clean], minlength=n * 4**k).reshape(n, 4**k).astype(np.float64)
            blocks.append(counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0))
        return np.concatenate(blocks, axis=1)

    def fit(self, windows: np.ndarray, labels: np.ndarray) -> "KmerSpeciesBaseline":
        import torch

        feats = self.features(windows)
        labels = torch.as_tensor(np.asarray(labels, dtype=np.int64))
        if labels.shape != (len(feats),):
            raise ValueError(f"labels must be ({len(feats)},); got {tuple(labels.shape)}")
        self.mean, self.scale = feats.mean(axis=0), feats.std(axis=0) + 1e-8
        x = torch.as_tensor((feats - self.mean) / self.scale)
        classes = int(labels.max()) + 1
        weight = torch.zeros(x.shape[1], classes, dtype=torch.float64, requires_grad=True)
        bias = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.LBFGS([weight, bias], max_iter=self.max_iter, line_search_fn="strong_wolfe")

        def closure():
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(x @ weight + bias, labels) + self.l2 * weight.square().sum()
            loss.backward()
            return loss

        optimizer.step(closure)
        self.weight, self.bias = weight.detach().numpy(), bias.detach().numpy()
        return self

    def predict(self, windows: np.ndarray) -> np.ndarray:
        """``windows`` (n, L) token ids → (n,) int64 predicted labels."""
        if self.weight is None:
            raise RuntimeError("call fit() first")
        x = (self.features(windows) - self.mean) / self.scale
        return np.argmax(x @ self.weight + self.bias, axis=1)

    def accuracy(self, windows: np.ndarray, labels: np.ndarray) -> float:
        return float(np.mean(self.predict(windows) == np.asarray(labels)))
