"""What the causal and the masked LM tasks share: the loss (nats per scored token), perplexity and bits per token
on every split, and the best validation loss."""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torchmetrics import MeanMetric, MinMetric

from mamba_bio_audio.pipelines.training.tasks.base import TrainingTask
from mamba_bio_audio.targets import counted_mask

__all__ = ["LN2", "LanguageModelTask", "scored_tokens"]

LN2 = math.log(2.0)


def scored_tokens(targets: torch.Tensor, pad_token_id: int | None) -> torch.Tensor:
    """Number of targets (batch, L) int64 the loss counts (:mod:`mamba_bio_audio.targets`)."""
    return counted_mask(targets, pad_token_id).sum()


class LanguageModelTask(TrainingTask):
    """Base of :class:`~.lm.CausalLMTask` and :class:`~.masked_lm.MaskedLMTask`. A subclass gives
    ``training_step`` (logging through :meth:`log_train`) and ``_eval_step(batch, stage)``, which updates
    ``eval_loss[stage]`` weighted by the tokens it scored.

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

    def log_train(self, loss: torch.Tensor, batch_size: int, **extra: torch.Tensor) -> None:
        """Log a training step's ``loss`` (scalar, nats), its ppl and bpt, and ``extra`` as ``train/<name>``."""
        detached = loss.detach()
        self.log_dict({"train/loss": loss, "train/ppl": torch.exp(detached), "train/bpt": detached / LN2,
                       **{f"train/{name}": value for name, value in extra.items()}},
                      on_step=True, on_epoch=False, batch_size=batch_size, sync_dist=True)
        self.log("loss", detached, prog_bar=True, logger=False, on_step=True, on_epoch=False)

    def _eval_step(self, batch, stage: str) -> None:
        raise NotImplementedError

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
