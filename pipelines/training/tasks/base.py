"""Shared LightningModule pieces: AdamW with weight-decay groups, warmup + cosine schedule, loss guard."""
from __future__ import annotations

import math

import lightning.pytorch as pl
import torch
from torch import nn

from mamba_bio_audio.models.mixer_model import param_groups
from mamba_bio_audio.pipelines.training.nets import net_spec


class NonFiniteLossError(FloatingPointError):
    """A training loss was NaN or infinite; the run stops before the step that would spread it to the weights."""


def warmup_cosine(step: int, total: int, warmup: int, floor: float) -> float:
    """LR multiplier: linear warmup over ``warmup`` steps, then cosine from 1 to ``floor`` at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + 0.5 * (1.0 - floor) * (1.0 + math.cos(math.pi * progress))


class Task(pl.LightningModule):
    """A ``net`` trained with AdamW (decay only on weight matrices; ``_no_weight_decay`` parameters, biases,
    norms and embeddings excluded) and linear warmup + cosine decay per optimizer step.

    Args:
        net: the model (built by the Hydra ``net`` group).
        optimizer: ``lr``, ``betas``, ``weight_decay``, ``eps``.
        scheduler: ``warmup_fraction`` (or ``warmup_steps``) and ``min_lr``; total steps come from the trainer.
    """

    def __init__(self, net: nn.Module, optimizer: dict, scheduler: dict):
        super().__init__()
        self.save_hyperparameters(ignore=["net"], logger=False)
        self.net = net

    def forward(self, *args, **kwargs):
        return self.net(*args, **kwargs)

    def check_loss(self, loss: torch.Tensor) -> torch.Tensor:
        if not torch.isfinite(loss):
            raise NonFiniteLossError(f"non-finite training loss ({loss.item()}) at step {self.global_step}")
        return loss

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["net_spec"] = net_spec(self.net)

    def configure_optimizers(self):
        opt = dict(self.hparams.optimizer)
        optimizer = torch.optim.AdamW(param_groups(self.net, float(opt.get("weight_decay", 0.0))),
                                      lr=float(opt["lr"]), betas=tuple(opt.get("betas", (0.9, 0.95))),
                                      eps=float(opt.get("eps", 1e-8)))
        sched = dict(self.hparams.scheduler)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = sched.get("warmup_steps")
        warmup = max(1, int(warmup if warmup is not None else sched.get("warmup_fraction", 0.1) * total))
        floor = float(sched.get("min_lr", 0.0)) / float(opt["lr"])
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_cosine(step, total, warmup, floor))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
