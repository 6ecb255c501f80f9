"""Reverse-complement parameter sharing (RCPS, Zhou et al. 2022; Caduceus, Schiff et al. 2024).

An RCPS tensor h (batch, L, 2·D) carries the strand in its first D channels and the reverse complement in the
last D, flipped along L and along the channels. The RC of such a tensor is :func:`rc_hidden`: flip L and all
2·D channels, which swaps the halves. Every module here satisfies f(RC(x)) = RC(f(x)) exactly:

* :class:`RCPSEmbedding`: h = [E[x_l], flip_C(E[comp(x_l)])], E (vocab, D).
* :class:`RCPSWrapper` (the mixer): [m(h1), rc(m(rc(h2)))] for any sequence module m of width D.
* :func:`rcps_add_norm` (the block's add + norm): s = h + residual; [n(s1), rc(n(rc(s2)))], n a per-position
  norm of width D; with ``swap`` the halves of s are exchanged first, which is what upstream's fused RCPS
  block computes (its fused kernel reads the second half as the forward strand).
* :class:`RCPSLMHead`: logits = W h1 + W[comp] flip_C(h2), W (vocab, D), one row per token.
* :func:`rc_invariant_pool` (classifier pooling): the pooled forward half and the pooled, channel-flipped RC
  half, each scored by the same head and averaged: an RC-invariant sequence output.

Ids are reverse-complemented with :func:`rc_ids`; logits (batch, L, vocab) with :func:`rc_logits`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mamba_bio_audio import ops
from mamba_bio_audio.modules.pooling import pool
from mamba_bio_audio.modules.rms_norm import RMSNorm

__all__ = ["RCPSEmbedding", "RCPSLMHead", "RCPSWrapper", "rc_hidden", "rc_ids", "rc_invariant_pool", "rc_logits",
           "rcps_add_norm", "rcps_norm"]

_OPPOSITE = {"first": "last", "last": "first", "mean": "mean"}


def rc_ids(input_ids: torch.Tensor, complement: torch.Tensor) -> torch.Tensor:
    """Reverse complement of input_ids (batch, L) int64: flip L, then map every id through ``complement``
    (vocab,) int64."""
    return complement.to(input_ids.device)[input_ids.flip(-1)]


def rc_hidden(hidden: torch.Tensor) -> torch.Tensor:
    """Reverse complement of an RCPS tensor (..., L, C): flip L and the channels."""
    return hidden.flip(-2, -1)


def rc_logits(logits: torch.Tensor, complement: torch.Tensor) -> torch.Tensor:
    """Logits (batch, L, vocab) of the reverse-complement strand read back on this strand: flip L and permute
    the vocabulary by ``complement`` (vocab,) int64 (the logit of token t is the RC strand's logit of comp(t))."""
    return logits.flip(-2)[..., complement.to(logits.device)]


def _register_complement(module: nn.Module, complement_map: list[int], vocab_size: int, device) -> None:
    if len(complement_map) != vocab_size:
        raise ValueError(f"complement_map must have vocab_size ({vocab_size}) entries; got {len(complement_map)}")
    module.register_buffer("complement_map", torch.tensor(complement_map, dtype=torch.long, device=device))


def _halves(hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    width = hidden.shape[-1]
    if width % 2:
        raise ValueError(f"an RCPS tensor has an even number of channels; got {width}")
    return hidden[..., : width // 2], hidden[..., width // 2:]


class RCPSEmbedding(nn.Module):
    """input_ids (batch, L) int64 → (batch, L, 2·d_model): [E[x], flip_C(E[comp(x)])].

    Keys (upstream's): ``embedding.weight`` (vocab, d_model) and the buffer ``complement_map`` (vocab,) int64.
    """

    def __init__(self, vocab_size: int, d_model: int, complement_map: list[int], device=None, dtype=None):
        super().__init__()
        _register_complement(self, complement_map, vocab_size, device)
        self.embedding = nn.Embedding(vocab_size, d_model, device=device, dtype=dtype)

    @property
    def weight(self) -> nn.Parameter:
        return self.embedding.weight

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        forward = self.embedding(input_ids)
        reverse = self.embedding(self.complement_map[input_ids]).flip(-1)
        return torch.cat([forward, reverse], dim=-1)


class RCPSWrapper(nn.Module):
    """Any sequence module ``submodule`` (batch, L, D) → (batch, L, D) made RC-equivariant on (batch, L, 2·D):
    [m(h1), rc(m(rc(h2)))]. Both strands go through ``submodule`` as one batch of 2·batch sequences."""

    def __init__(self, submodule: nn.Module):
        super().__init__()
        self.submodule = submodule

    def forward(self, hidden_states: torch.Tensor, **kwargs) -> torch.Tensor:
        forward, reverse = _halves(hidden_states)
        out = self.submodule(torch.cat([forward, rc_hidden(reverse)], dim=0), **kwargs)
        out_fwd, out_rc = out.chunk(2, dim=0)
        return torch.cat([out_fwd, rc_hidden(out_rc)], dim=-1)

    def allocate_inference_cache(self, *args, **kwargs):
        raise ValueError("an RCPS mixer reads the whole sequence; it has no decoding state")


def _mirrored_norm(norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """rc(norm(rc(x))) for a per-position norm: the norm with its weight (and bias) flipped along the channels."""
    if isinstance(norm, RMSNorm):
        return ops.rms_norm_fn(x, norm.weight.flip(0), None, eps=norm.eps)
    if isinstance(norm, nn.LayerNorm):
        bias = None if norm.bias is None else norm.bias.flip(0)
        return F.layer_norm(x, norm.normalized_shape, norm.weight.flip(0), bias, norm.eps)
    return rc_hidden(norm(rc_hidden(x)))


def rcps_norm(norm: nn.Module, summed: torch.Tensor) -> torch.Tensor:
    """[n(s1), rc(n(rc(s2)))] of summed (batch, L, 2·D), computed in the norm's dtype, for ``norm`` of width D."""
    summed = summed.to(norm.weight.dtype)
    first, second = _halves(summed)
    return torch.cat([norm(first), _mirrored_norm(norm, second)], dim=-1)


def rcps_add_norm(norm: nn.Module, hidden_states: torch.Tensor, residual: torch.Tensor | None, swap: bool,
                  residual_in_fp32: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The add + norm of an RCPS block: hidden_states, residual (batch, L, 2·D) (residual None in the first
    block). Returns (normed (batch, L, 2·D) in the norm's dtype, new residual, fp32 when ``residual_in_fp32``).
    ``swap`` exchanges the halves of the sum first (upstream's fused block)."""
    summed = hidden_states if residual is None else hidden_states + residual
    if residual_in_fp32:
        summed = summed.float()
    if swap:
        first, second = _halves(summed)
        summed = torch.cat([second, first], dim=-1)
    return rcps_norm(norm, summed), summed


class RCPSLMHead(nn.Module):
    """hidden (batch, L, 2·D) → logits (batch, L, vocab): W h1 + W[comp] flip_C(h2), no bias.

    Keys (upstream's): ``lm_head.weight`` (vocab, D) and the buffer ``complement_map`` (vocab,) int64.
    """

    def __init__(self, true_dim: int, vocab_size: int, complement_map: list[int], device=None, dtype=None):
        super().__init__()
        _register_complement(self, complement_map, vocab_size, device)
        self.true_dim = true_dim
        self.lm_head = nn.Linear(true_dim, vocab_size, bias=False, device=device, dtype=dtype)

    @property
    def weight(self) -> nn.Parameter:
        return self.lm_head.weight

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        forward, reverse = _halves(hidden)
        if forward.shape[-1] != self.true_dim:
            raise ValueError(f"hidden must have 2 * {self.true_dim} channels; got {hidden.shape[-1]}")
        return F.linear(forward, self.weight) + F.linear(reverse.flip(-1), self.weight[self.complement_map])


def rc_invariant_pool(hidden: torch.Tensor, mode: str, mask: torch.Tensor | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """hidden (batch, L, 2·D) of an RCPS model → (pooled forward half, pooled RC half) (batch, D) each, in
    hidden.dtype. The RC half is pooled in its own reading direction ("first" of the RC strand is the last
    position) and channel-flipped, so reverse-complementing the input (and flipping ``mask`` (batch, L) bool)
    swaps the two: a head applied to both and averaged is RC-invariant."""
    forward, reverse = _halves(hidden)
    return pool(forward, mode, mask), pool(reverse, _OPPOSITE[mode], mask).flip(-1)
