"""``ModelCheckpoint`` whose ``last.ckpt`` always holds the newest training state.

Since Lightning 2.6, ``save_last=True`` refreshes ``last.ckpt`` only when a top-k checkpoint is written in the
same step, so once the monitored metric stops improving ``last.ckpt`` falls behind (a quickstart apes4 run
trained 223 steps and left ``last.ckpt`` at step 111); a run killed after that resumed from the old state,
and the final steps were in no checkpoint at all. This subclass writes ``last.ckpt`` after every validation
(or training epoch end, where Lightning checks then) and once more when training ends.
"""
from __future__ import annotations

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint as LightningModelCheckpoint


class ModelCheckpoint(LightningModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` (same arguments) with ``last.ckpt`` kept current when ``save_last``."""

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._refresh_last(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._refresh_last(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        self._refresh_last(trainer)

    def _refresh_last(self, trainer: pl.Trainer) -> None:
        if not self.save_last or self._should_skip_saving_checkpoint(trainer):
            return
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
