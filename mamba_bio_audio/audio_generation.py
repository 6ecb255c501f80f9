"""What audio adds to the sampler of :mod:`mamba_bio_audio.generation`: the mu-law start token, an audio prefix,
16-bit PCM, and SaShiMi's ranking of samples by likelihood.

Each stream starts from the mu-law start token 128 (silence), then the optional prefix (a clip to continue);
the sampler runs them through the model in one parallel pass and draws every new sample with one recurrent
step, recording the model's exact log-probability of every token. Writing WAV files belongs to the pipelines.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from mamba_bio_audio.generation import sample_sequences
from mamba_bio_audio.tokenizers import MU_LAW_START_TOKEN, mu_law_decode

__all__ = ["AudioSamples", "sample_audio", "rank_by_likelihood", "to_pcm16"]


@dataclass
class AudioSamples:
    """tokens (n, P + length) int64 mu-law classes, the prefix (P samples) first; log_probs (n, P + length) fp32,
    log p(tokens[:, t] | tokens[:, :t]) under the model in nats; log_likelihood (n,) fp32, their sum over the
    generated positions P ... P + length − 1. All on the CPU."""

    tokens: torch.Tensor
    log_probs: torch.Tensor
    log_likelihood: torch.Tensor
    prefix_length: int

    def waveforms(self) -> np.ndarray:
        """(n, P + length) int16 PCM, the mu-law decoding of ``tokens``."""
        return to_pcm16(self.tokens)


def to_pcm16(tokens) -> np.ndarray:
    """Mu-law classes (..., L) int (tensor or array) in 0..255 → int16 PCM (..., L); class 128 → 0."""
    tokens = tokens.cpu().numpy() if isinstance(tokens, torch.Tensor) else np.asarray(tokens)
    return np.clip(np.round(mu_law_decode(tokens) * 32767.0), -32768, 32767).astype(np.int16)


def _prefix_rows(prefix, n_samples: int, vocab_size: int) -> torch.Tensor | None:
    """prefix (P,) or (n_samples, P) integer classes → (n_samples, P) int64, or None."""
    if prefix is None:
        return None
    prefix = torch.as_tensor(prefix)
    if prefix.dtype.is_floating_point or prefix.is_complex() or prefix.dtype == torch.bool:
        raise ValueError(f"prefix must hold integer mu-law classes; got dtype {prefix.dtype}")
    if prefix.dim() == 1:
        prefix = prefix.expand(n_samples, -1)
    if prefix.dim() != 2 or prefix.shape[0] != n_samples or prefix.shape[1] == 0:
        raise ValueError(f"prefix must be (P,) or (n_samples={n_samples}, P) with P > 0; got {tuple(prefix.shape)}")
    if prefix.min() < 0 or prefix.max() >= vocab_size:
        raise ValueError(f"prefix values must be classes in [0, {vocab_size}); got values in "
                         f"[{int(prefix.min())}, {int(prefix.max())}]")
    return prefix.to(torch.long)


def sample_audio(model, n_samples: int, length: int, prefix=None, batch_size: int | None = None,
                 temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, min_p: float = 0.0, seed: int = 0,
                 start_token: int = MU_LAW_START_TOKEN) -> AudioSamples:
    """Draw ``n_samples`` streams of ``length`` new samples each from any generative model over mu-law classes
    (SaShiMi, a Mamba LM), ``batch_size`` streams at a time (default: all at once), seeded by ``seed``.

    ``prefix`` (P,) shared or (n_samples, P) per stream: mu-law classes the streams start with (kept verbatim
    in the output, scored but not counted in ``log_likelihood``). Sampling knobs as
    :func:`mamba_bio_audio.generation.sample`; ``top_k=1`` is greedy.
    """
    if not isinstance(n_samples, int) or isinstance(n_samples, bool) or n_samples <= 0:
        raise ValueError(f"n_samples must be a positive integer; got {n_samples!r}")
    vocab_size = model.config.vocab_size
    if not isinstance(start_token, int) or not 0 <= start_token < vocab_size:
        raise ValueError(f"start_token must be a class in [0, {vocab_size}); got {start_token!r}")
    prefix = _prefix_rows(prefix, n_samples, vocab_size)
    start = torch.full((n_samples, 1), start_token, dtype=torch.long)
    prompt = start if prefix is None else torch.cat([start, prefix], dim=1)
    drawn = sample_sequences(model, prompt, length, batch_size=batch_size, temperature=temperature, top_k=top_k,
                             top_p=top_p, min_p=min_p, seed=seed)
    tokens, log_probs = drawn.tokens[:, 1:], drawn.log_probs[:, 1:]  # the start token is input, not audio
    prefix_length = prompt.shape[1] - 1
    return AudioSamples(tokens=tokens, log_probs=log_probs, log_likelihood=log_probs[:, prefix_length:].sum(dim=1),
                        prefix_length=prefix_length)


def rank_by_likelihood(log_likelihood: torch.Tensor, lower: float = 0.0, upper: float = 1.0) -> torch.Tensor:
    """Indices (k,) int64 of the samples, most likely first, keeping only those whose likelihood rank lies in
    the quantile band [lower, upper) from the least likely (SaShiMi's rejection heuristic drops the bottom 40 %
    and the top 5 %: ``lower=0.4, upper=0.95``). log_likelihood (n,) float."""
    if not isinstance(log_likelihood, torch.Tensor) or log_likelihood.dim() != 1 \
            or not log_likelihood.is_floating_point():
        raise ValueError("log_likelihood must be a 1-D float tensor (one value per sample)")
    if not (isinstance(lower, (int, float)) and isinstance(upper, (int, float)) and 0.0 <= lower < upper <= 1.0):
        raise ValueError(f"need 0 <= lower < upper <= 1; got lower={lower!r}, upper={upper!r}")
    ascending = torch.argsort(log_likelihood, stable=True)
    n = ascending.numel()
    return ascending[math.floor(lower * n):math.floor(upper * n)].flip(0)
