"""Sequence-length warmup (HyenaDNA, Mamba §E.3.3): train at growing lengths with constant tokens per step."""
from __future__ import annotations

import lightning.pytorch as pl


class SeqLenWarmup(pl.Callback):
    """Stages ``[{seq_len, epochs}, ...]`` run in order before the data's own ``seq_len``, which holds for the
    rest of training. The batch in sequences is ``tokens_per_batch // seq_len`` at every stage, where
    ``tokens_per_batch`` defaults to the data's ``batch_size * seq_len``: the batch halves when the length
    doubles and tokens per optimizer step (with ``accumulate_grad_batches``) stay constant.

    Needs ``trainer.reload_dataloaders_every_n_epochs=1`` so each epoch gets a loader of its stage.
    """

    def __init__(self, stages: list[dict], tokens_per_batch: int | None = None):
        self.stages = [(int(s["seq_len"]), int(s["epochs"])) for s in stages]
        if any(length <= 0 or epochs <= 0 for length, epochs in self.stages):
            raise ValueError(f"warmup stages need seq_len > 0 and epochs > 0; got {stages}")
        self.tokens_per_batch = tokens_per_batch

    def shape_at(self, epoch: int, seq_len: int, batch_size: int) -> tuple[int, int]:
        """(seq_len, batch_size) of training epoch ``epoch`` given the final shape."""
        tokens = self.tokens_per_batch or seq_len * batch_size
        first = 0
        for length, epochs in self.stages:
            if epoch < first + epochs:
                return length, max(1, tokens // length)
            first += epochs
        return seq_len, max(1, tokens // seq_len)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        if trainer.reload_dataloaders_every_n_epochs != 1:
            raise ValueError("sequence-length warmup needs trainer.reload_dataloaders_every_n_epochs=1")
        data = trainer.datamodule
        final = (data.seq_len, data.batch_size)
        data.schedule = lambda epoch: self.shape_at(epoch, *final)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        seq_len, _ = trainer.datamodule.train_shape()
        pl_module.log("train/seq_len", float(seq_len), on_step=False, on_epoch=True)
