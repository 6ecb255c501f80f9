"""``ModelCheckpoint`` whose ``last.ckpt`` always holds the newest training state."""
from __future__ import annotations

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint as LightningModelCheckpoint


class ModelCheckpoint(LightningModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` (same arguments); with ``save_last``, ``last.ckpt`` is written after every
    validation (or training epoch end, where Lightning checks then) and when training ends, not only with a
    new top-k checkpoint.

    It calls ``ModelCheckpoint``'s private hook choice (``_should_save_on_train_epoch_end``), skip test
    (``_should_skip_saving_checkpoint``), metrics (``_monitor_candidates``) and last-checkpoint writer
    (``_save_last_checkpoint``): Lightning 2.6.6 has no public way to write ``last.ckpt`` on demand (its
    ``save_last`` writes it only beside a new top-k checkpoint, and at the end of training only when no
    ``last.ckpt`` was written in the run), and the public ``trainer.save_checkpoint`` would bypass the
    callback's bookkeeping (``last_model_path`` in its state, ``save_last="link"``, version suffixes, no second
    save at the same step, the loggers' ``after_save_checkpoint``).
    """

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
