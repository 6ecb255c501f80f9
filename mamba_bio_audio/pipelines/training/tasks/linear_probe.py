"""Linear probe, then fine-tune: fit a classifier's linear head on frozen pooled embeddings before training the
whole model (Kumar et al. 2022, "Fine-tuning can distort pretrained features": LP-FT).

A head that starts from N(0, 0.02) sends near-random gradients into a pretrained backbone for the first hundreds
of steps; a head fitted first on the backbone's own features starts fine-tuning from a classifier that already
works. The fit is multinomial logistic regression without intercept (the heads have no bias) on the exact
vectors the head reads (:func:`mamba_bio_audio.embedding.head_features`), with an L2 penalty, by L-BFGS: a
second or two for a few thousand windows.
"""
from __future__ import annotations

import time
from collections.abc import Iterable
from typing import NamedTuple

import torch
import torch.nn.functional as F

from mamba_bio_audio.embedding import head_features

__all__ = ["ProbeResult", "fit_linear_head", "probe_head"]


class ProbeResult(NamedTuple):
    """items: windows the head was fitted on; train_acc: the fitted head's accuracy on them; seconds: wall time
    (embedding and fit)."""

    items: int
    train_acc: float
    seconds: float


def fit_linear_head(features: torch.Tensor, labels: torch.Tensor, num_classes: int, l2: float = 1e-3,
                    max_iter: int = 200) -> torch.Tensor:
    """Weight (num_classes, D) fp32 of the logistic regression ``logits = features @ W.T`` minimising
    ``mean cross entropy + l2 / 2 * ||W||^2`` over features (n, D) and labels (n,) int64 in [0, num_classes).
    ``l2 > 0`` makes the objective strictly convex, so its minimiser is unique (found by L-BFGS with a strong
    Wolfe line search, from zero)."""
    if features.ndim != 2 or labels.shape != features.shape[:1]:
        raise ValueError(f"features must be (n, D) and labels (n,); got {tuple(features.shape)} and "
                         f"{tuple(labels.shape)}")
    if not l2 > 0:
        raise ValueError(f"l2 must be > 0; got {l2}")
    x, y = features.detach().double(), labels.detach().long()
    weight = torch.zeros(num_classes, x.shape[1], dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight], lr=1.0, max_iter=max_iter, tolerance_grad=1e-7,
                                  tolerance_change=1e-12, history_size=20, line_search_fn="strong_wolfe")

    def objective():
        optimizer.zero_grad()
        loss = F.cross_entropy(x @ weight.T, y) + 0.5 * l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(objective)
    return weight.detach().float()


def probe_head(net: torch.nn.Module, batches: Iterable, items: int, l2: float = 1e-3) -> ProbeResult:
    """Fit ``net.score`` (a linear head without bias) on the pooled features of the first ``items`` windows of
    ``batches`` (``(input_ids (batch, L), label (batch,))`` pairs), the rest of ``net`` frozen (eval mode, no
    gradients; the mode is restored). Replaces ``net.score.weight`` in place."""
    started = time.perf_counter()
    device = net.score.weight.device
    features, labels, seen = [], [], 0
    was_training = net.training
    net.eval()
    try:
        for inputs, targets in batches:
            features.append(head_features(net, inputs.to(device)).cpu())
            labels.append(targets.cpu())
            seen += len(targets)
            if seen >= items:
                break
    finally:
        net.train(was_training)
    if not features:
        raise ValueError("the linear probe got no training windows")
    x, y = torch.cat(features)[:items], torch.cat(labels)[:items]
    weight = fit_linear_head(x, y, net.score.out_features, l2=l2)
    with torch.no_grad():
        net.score.weight.copy_(weight.to(net.score.weight.dtype))
    accuracy = float(((x @ weight.T).argmax(-1) == y).float().mean())
    return ProbeResult(items=len(y), train_acc=accuracy, seconds=time.perf_counter() - started)
