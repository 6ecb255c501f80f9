"""Shared LightningModule pieces: an optimizer over weight-decay groups, warmup + cosine schedule, loss guard."""
from __future__ import annotations

import sys
from collections.abc import Callable

import lightning.pytorch as pl
import torch
from torch import nn
from torch.optim.lr_scheduler import ConstantLR, CosineAnnealingLR, LinearLR, SequentialLR

from mamba_bio_audio.models.mixer_model import param_groups
from mamba_bio_audio.pipelines.training.nets import net_spec
from mamba_bio_audio.pipelines.training.plain_data import plain_data


class NonFiniteLossError(FloatingPointError):
    """A training loss was NaN or infinite; the run stops before the step that would spread it to the weights."""


def warmup_cosine(optimizer: torch.optim.Optimizer, total: int, warmup: int, min_lr: float) -> SequentialLR:
    """Per-step schedule of ``optimizer``'s learning rate ``lr``: ``lr * (s + 1) / warmup`` at step
    ``s < warmup``, then a cosine from ``lr`` at step ``warmup`` down to ``min_lr`` at step
    ``warmup + max(1, total - warmup)``, and ``min_lr`` after that. Needs ``warmup >= 1``."""
    cosine_steps = max(1, total - warmup)
    floor = min_lr / optimizer.defaults["lr"]
    return SequentialLR(optimizer, [
        LinearLR(optimizer, start_factor=1.0 / warmup, end_factor=1.0, total_iters=max(1, warmup - 1)),
        CosineAnnealingLR(optimizer, T_max=cosine_steps, eta_min=min_lr),
        ConstantLR(optimizer, factor=floor, total_iters=sys.maxsize),
    ], milestones=[warmup, warmup + cosine_steps])


_CONFIGURED = object()  # a parameter group's weight decay left to the optimizer's setting


class TrainingTask(pl.LightningModule):
    """A ``net`` trained with ``optimizer`` (weight decay only on weight matrices; ``_no_weight_decay``
    parameters, biases, norms and embeddings excluded) and linear warmup + cosine decay per optimizer step.

    Args:
        net: the model (built by the Hydra ``net`` group).
        optimizer: the optimizer class with its settings bound (Hydra ``_partial_: true``; the task configs
            give ``torch.optim.AdamW`` with ``lr``, ``betas``, ``weight_decay``, ``eps``), called with the
            parameter groups; its ``weight_decay`` setting is the decay of the weight matrices (the
            optimizer's default if unset), the other groups get 0.
        scheduler: ``warmup_fraction`` (or ``warmup_steps``) and ``min_lr``; total steps come from the trainer.
    """

    def __init__(self, net: nn.Module, optimizer: Callable[..., torch.optim.Optimizer], scheduler: dict):
        super().__init__()
        self.save_hyperparameters(ignore=["net", "optimizer"], logger=False)
        self.net = net
        self.make_optimizer = optimizer

    def forward(self, *args, **kwargs):
        return self.net(*args, **kwargs)

    def check_loss(self, loss: torch.Tensor) -> torch.Tensor:
        if not torch.isfinite(loss):
            raise NonFiniteLossError(f"non-finite training loss ({loss.item()}) at step {self.global_step}")
        return loss

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Add ``net_spec``; keep the hyper-parameters plain data (the optimizer, a ``functools.partial``, is
        not saved), so that ``weights_only=True`` reads the checkpoint back."""
        checkpoint["net_spec"] = net_spec(self.net)
        if "hyper_parameters" in checkpoint:
            checkpoint["hyper_parameters"] = plain_data(checkpoint["hyper_parameters"], "hyper_parameters")

    def configure_optimizers(self):
        groups = param_groups(self.net, weight_decay=_CONFIGURED)
        for group in groups:  # weight matrices: the optimizer's own weight_decay (task.optimizer.weight_decay)
            if group["weight_decay"] is _CONFIGURED:
                del group["weight_decay"]
        optimizer = self.make_optimizer(groups)
        sched = dict(self.hparams.scheduler)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = sched.get("warmup_steps")
        warmup = max(1, int(warmup if warmup is not None else sched.get("warmup_fraction", 0.1) * total))
        scheduler = warmup_cosine(optimizer, total, warmup, float(sched.get("min_lr", 0.0)))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
