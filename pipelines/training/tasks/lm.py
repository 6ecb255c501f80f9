"""Causal LM pretraining: loss (nats per token), perplexity and bits per token on every split."""
from __future__ import annotations

import math
from typing import Callable

import torch
from torchmetrics import MeanMetric, MinMetric

from mamba_bio_audio.pipelines.training.tasks.base import TrainingTask
from mamba_bio_audio.targets import counted_mask

LN2 = math.log(2.0)


def scored_tokens(targets: torch.Tensor, pad_token_id: int | None) -> torch.Tensor:
    """Number of targets (batch, L) int64 the loss counts (:mod:`mamba_bio_audio.targets`)."""
    return counted_mask(targets, pad_token_id).sum()


class CausalLMTask(TrainingTask):
    """Batches ``(input_ids, targets, ...)`` int64 (batch, L); the net returns ``.loss`` given ``labels``.

    Logs ``{train,val,test}/loss`` (mean over scored tokens, nats), ``/ppl`` = exp(loss), ``/bpt`` = loss / ln 2
    (bits per base for DNA, bits per 8-bit sample for audio) and ``val/loss_best``.
    """

    def __init__(self, net, optimizer: Callable[..., torch.optim.Optimizer], scheduler: dict):
        super().__init__(net, optimizer, scheduler)
        self.eval_loss = torch.nn.ModuleDict({"val": MeanMetric(), "test": MeanMetric()})
        self.val_loss_best = MinMetric()

    @property
    def pad_token_id(self) -> int | None:
        return getattr(self.net.config, "pad_token_id", None)

    def training_step(self, batch, batch_idx):
        inputs, targets = batch[0], batch[1]
        loss = self.check_loss(self.net(inputs, targets=targets).loss)
        self.log_dict({"train/loss": loss, "train/ppl": torch.exp(loss.detach()), "train/bpt": loss.detach() / LN2},
                      on_step=True, on_epoch=False, batch_size=inputs.shape[0], sync_dist=True)
        self.log("loss", loss.detach(), prog_bar=True, logger=False, on_step=True, on_epoch=False)
        return loss

    def _eval_step(self, batch, stage: str) -> None:
        inputs, targets = batch[0], batch[1]
        loss = self.net(inputs, targets=targets).loss
        self.eval_loss[stage].update(loss.detach(), weight=scored_tokens(targets, self.pad_token_id))

    def _eval_epoch_end(self, stage: str) -> torch.Tensor:
        loss = self.eval_loss[stage].compute()
        self.eval_loss[stage].reset()
        self.log_dict({f"{stage}/loss": loss, f"{stage}/ppl": torch.exp(loss), f"{stage}/bpt": loss / LN2},
                      prog_bar=stage == "val", sync_dist=True)
        return loss

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, "val")

    def on_validation_epoch_end(self):
        loss = self._eval_epoch_end("val")
        if not self.trainer.sanity_checking:
            self.val_loss_best.update(loss)
            self.log("val/loss_best", self.val_loss_best.compute(), sync_dist=True)

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, "test")

    def on_test_epoch_end(self):
        self._eval_epoch_end("test")
