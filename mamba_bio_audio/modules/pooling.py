"""Pad-aware pooling of hidden states over the sequence: ``last``, ``mean`` or ``first``.

Pooling goes through a small running summary (sum, count, first and last valid vectors) so that the same code
pools a whole sequence at once or a stream of chunks (decoding with ``inference_params``): merging the
summaries of consecutive chunks gives the summary of their concatenation.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["PoolSummary", "summarize", "merge", "pooled", "pool"]


class PoolSummary(NamedTuple):
    """total (batch, D) fp32 sum of valid vectors; count (batch,) fp32 number of valid positions;
    first, last (batch, D) fp32 first and last valid vectors (zeros while count is 0)."""

    total: torch.Tensor
    count: torch.Tensor
    first: torch.Tensor
    last: torch.Tensor


def _gather(hidden: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), index]


def summarize(hidden: torch.Tensor, mask: torch.Tensor | None = None) -> PoolSummary:
    """hidden (batch, L, D) any float dtype; mask (batch, L) bool, True at real tokens (None: all real)."""
    hidden = hidden.float()
    batch, length, _ = hidden.shape
    if mask is None:
        mask = torch.ones(batch, length, dtype=torch.bool, device=hidden.device)
    weights = mask.to(hidden.dtype)
    count = weights.sum(dim=1)
    has_any = (count > 0)[:, None]
    first = _gather(hidden, weights.argmax(dim=1))
    last = _gather(hidden, length - 1 - weights.flip(1).argmax(dim=1))
    return PoolSummary(
        total=(hidden * weights[..., None]).sum(dim=1),
        count=count,
        first=torch.where(has_any, first, torch.zeros_like(first)),
        last=torch.where(has_any, last, torch.zeros_like(last)),
    )


def merge(before: PoolSummary, after: PoolSummary) -> PoolSummary:
    """Summary of a sequence made of the chunk summarised by ``before`` followed by ``after``'s."""
    before_has = (before.count > 0)[:, None]
    after_has = (after.count > 0)[:, None]
    return PoolSummary(
        total=before.total + after.total,
        count=before.count + after.count,
        first=torch.where(before_has, before.first, after.first),
        last=torch.where(after_has, after.last, before.last),
    )


def pooled(summary: PoolSummary, mode: str) -> torch.Tensor:
    """(batch, D) fp32: the mean of valid vectors, or the first or last valid one. Rows without a valid
    position pool to zeros."""
    if mode == "mean":
        return summary.total / summary.count.clamp(min=1)[:, None]
    if mode == "first":
        return summary.first
    if mode == "last":
        return summary.last
    raise ValueError(f"pooling must be one of last, mean, first; got {mode!r}")


def pool(hidden: torch.Tensor, mode: str, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Pool hidden (batch, L, D) over L → (batch, D) in hidden.dtype; mask (batch, L) bool marks real tokens
    (``last`` is then the last real token, e.g. before right padding; ``mean`` averages real tokens only)."""
    return pooled(summarize(hidden, mask), mode).to(hidden.dtype)
