"""Which targets a loss counts: one rule for the LM loss, chunked training, the training task and length
extrapolation.

A target (batch, L) int64 is counted unless it is :data:`IGNORE_INDEX` (-100, PyTorch's ``ignore_index``:
audio padding, positions outside ``num_last_tokens``) or the model's ``pad_token_id`` (DNA windows padded past
the end of a record, N bases turned into PAD by the window reader).
"""
from __future__ import annotations

import torch

__all__ = ["IGNORE_INDEX", "counted_mask", "counted_targets"]

IGNORE_INDEX = -100


def counted_mask(targets: torch.Tensor, pad_token_id: int | None = None) -> torch.Tensor:
    """(batch, L) bool: True where ``targets`` (batch, L) int64 is counted."""
    keep = targets != IGNORE_INDEX
    if pad_token_id is not None:
        keep &= targets != pad_token_id
    return keep


def counted_targets(targets: torch.Tensor, pad_token_id: int | None = None) -> torch.Tensor:
    """``targets`` (batch, L) int64 with every uncounted position set to :data:`IGNORE_INDEX` (a new tensor when
    a PAD id had to be replaced)."""
    if pad_token_id is None:
        return targets
    return targets.masked_fill(targets == pad_token_id, IGNORE_INDEX)
