"""Batched autoregressive audio sampling from a :class:`~mamba_bio_audio.models.sashimi.SashimiLM` (REFERENCE.md §5.5).

Each stream starts from the mu-law start token 128 (silence). An optional prefix (a clip to continue) goes
through the model in one parallel pass that leaves the recurrent state after it; then every new sample is one
recurrent ``step`` (O(1) per sample) and one draw from the next-sample distribution, filtered as in
:func:`mamba_bio_audio.generation.sample` (temperature, ``top_k`` with 0 = whole vocabulary, ``top_p`` with
0 or 1 = off, ``min_p``). Alongside, the **model's** exact log-probability of every token (temperature 1, no
filtering) is recorded, so samples can be ranked by log-likelihood as SaShiMi does. Decoding to 16-bit PCM
is here; writing WAV files belongs to the pipelines.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from mamba_bio_audio.generation import check_sampling_arguments, sample
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


def _positive_int(value, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return value


def _prefix_rows(prefix, n_samples: int, vocab_size: int) -> torch.Tensor | None:
    """prefix (P,) or (n_samples, P) integer ids → (n_samples, P) int64 on the CPU, or None."""
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
    return prefix.to(torch.long).cpu()


def _token_log_probs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """logits (..., V), tokens (...) int64 → log_softmax(logits)[tokens] (...) fp32."""
    return torch.log_softmax(logits.float(), dim=-1).gather(-1, tokens[..., None])[..., 0]


def _sample_batch(model, prefix: torch.Tensor | None, batch: int, length: int, start_token: int,
                  generator: torch.Generator, **knobs) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch of streams → (tokens, log_probs), both (batch, P + length) on the model's device."""
    device = next(model.parameters()).device
    prefix_length = 0 if prefix is None else prefix.shape[1]
    tokens = torch.empty(batch, prefix_length + length, dtype=torch.long, device=device)
    log_probs = torch.empty(batch, prefix_length + length, dtype=torch.float32, device=device)
    state = model.allocate_inference_cache(batch)
    current = torch.full((batch,), start_token, dtype=torch.long, device=device)
    if prefix is not None:
        prefix = prefix.to(device)
        inputs = torch.cat([current[:, None], prefix[:, :-1]], dim=1)  # the prefix's inputs, shifted right
        tokens[:, :prefix_length] = prefix
        log_probs[:, :prefix_length] = _token_log_probs(model(inputs, state).logits, prefix)
        current = prefix[:, -1]
    for position in range(prefix_length, prefix_length + length):
        logits, state = model.step(current, state)
        current = sample(logits, generator=generator, **knobs)
        tokens[:, position] = current
        log_probs[:, position] = _token_log_probs(logits, current)
    return tokens, log_probs


@torch.inference_mode()
def sample_audio(model, n_samples: int, length: int, prefix=None, batch_size: int | None = None,
                 temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, min_p: float = 0.0, seed: int = 0,
                 start_token: int = MU_LAW_START_TOKEN) -> AudioSamples:
    """Draw ``n_samples`` streams of ``length`` new samples each, ``batch_size`` streams at a time (default:
    all at once), seeded by ``seed`` (same seed, batch size and device: same samples).

    ``prefix`` (P,) shared or (n_samples, P) per stream: mu-law classes the streams start with (kept verbatim
    in the output, scored but not counted in ``log_likelihood``). Sampling knobs as
    :func:`mamba_bio_audio.generation.sample`; ``top_k=1`` is greedy.
    """
    _positive_int(n_samples, "n_samples")
    _positive_int(length, "length")
    batch_size = n_samples if batch_size is None else _positive_int(batch_size, "batch_size")
    vocab_size = model.config.vocab_size
    if not isinstance(start_token, int) or not 0 <= start_token < vocab_size:
        raise ValueError(f"start_token must be a class in [0, {vocab_size}); got {start_token!r}")
    prefix = _prefix_rows(prefix, n_samples, vocab_size)
    prompt = torch.full((1, 1 if prefix is None else 1 + prefix.shape[1]), start_token)
    check_sampling_arguments(prompt, prompt.shape[1] + length, temperature, top_k, top_p, min_p, 1.0, None, None)

    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    knobs = dict(temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p)
    parts = [
        _sample_batch(model, None if prefix is None else prefix[first:first + batch_size],
                      min(batch_size, n_samples - first), length, start_token, generator, **knobs)
        for first in range(0, n_samples, batch_size)
    ]
    tokens = torch.cat([p[0] for p in parts]).cpu()
    log_probs = torch.cat([p[1] for p in parts]).cpu()
    prefix_length = 0 if prefix is None else prefix.shape[1]
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
