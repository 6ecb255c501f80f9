"""Every loss the models compute, in one place (fp32, over the targets :mod:`mamba_bio_audio.targets` counts).

* :func:`shift_labels`: ``labels`` in transformers' sense (the sequence itself) → aligned targets: position t is
  trained to predict ``labels[t + 1]``, the last position predicts nothing (-100).
* :func:`token_loss`: mean cross entropy of per-position logits against aligned targets (the causal LM after
  :func:`shift_labels`, the masked LM as is).
* :func:`token_loss_sum`: its numerator, for losses accumulated over chunks.
* :func:`classification_loss`: cross entropy over classes, or MSE for a one-output regressor.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from mamba_bio_audio.targets import IGNORE_INDEX, counted_targets

__all__ = ["classification_loss", "shift_labels", "token_loss", "token_loss_sum"]


def shift_labels(labels: torch.Tensor) -> torch.Tensor:
    """labels (batch, L) int64 → targets (batch, L) int64: ``targets[:, t] = labels[:, t + 1]`` and
    ``targets[:, -1] = -100`` (transformers' causal-LM convention: the model shifts, the caller passes the inputs)."""
    return F.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX)


def token_loss_sum(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Summed cross entropy (fp32 scalar) of logits (batch, L, V) against targets (batch, L) int64 whose
    uncounted positions are already -100."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1),
                           ignore_index=IGNORE_INDEX, reduction="sum")


def token_loss(logits: torch.Tensor, targets: torch.Tensor, pad_token_id: int | None = None) -> torch.Tensor:
    """Mean cross entropy (fp32) of logits (batch, L, V) against targets (batch, L) int64 (the target of each
    position, aligned: no shift here) over the targets :func:`~mamba_bio_audio.targets.counted_targets` keeps;
    a batch whose targets are all ignored gives 0 (with a gradient path), not NaN."""
    targets = counted_targets(targets.to(logits.device), pad_token_id).reshape(-1)
    logits = logits.reshape(-1, logits.shape[-1]).float()
    if not bool((targets != IGNORE_INDEX).any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX)


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, num_labels: int) -> torch.Tensor:
    """Cross entropy (fp32) of logits (batch, num_labels) against class ids (batch,) int64, or MSE against float
    targets (batch,) when ``num_labels == 1`` (regression)."""
    labels = labels.to(logits.device)
    if num_labels == 1:
        return F.mse_loss(logits.float().squeeze(-1), labels.float())
    return F.cross_entropy(logits.float(), labels)
