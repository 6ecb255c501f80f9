"""Ctrl-C leaves a resumable checkpoint."""
from __future__ import annotations

import lightning.pytorch as pl
from lightning.pytorch.callbacks import OnExceptionCheckpoint


class InterruptCheckpoint(OnExceptionCheckpoint):
    """Lightning's ``OnExceptionCheckpoint`` for a KeyboardInterrupt during fit only: saves the full training
    state as ``dirpath/<filename>.ckpt`` (``last.ckpt``, the file ``ModelCheckpoint`` keeps current) and prints
    ``resume with ckpt_path=<that file>``. Other exceptions (a NaN loss) save nothing, so the last checkpoint
    written before them stays the last good one; the file is left in place when a run ends normally."""

    def __init__(self, dirpath: str, filename: str = "last"):
        super().__init__(dirpath, filename)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, KeyboardInterrupt) or trainer.state.fn != "fit":
            return
        super().on_exception(trainer, pl_module, exception)
        if trainer.is_global_zero:
            print(f"interrupted at step {trainer.global_step}: resume with ckpt_path={self.ckpt_path}", flush=True)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Nothing: ``OnExceptionCheckpoint`` would delete its file here, which is ``ModelCheckpoint``'s."""
