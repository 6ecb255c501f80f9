"""Ctrl-C leaves a resumable checkpoint."""
from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl


class InterruptCheckpoint(pl.Callback):
    """On KeyboardInterrupt, save the full training state as ``dirpath/last.ckpt`` (resume with
    ``ckpt_path=<that file>``). Other exceptions (a NaN loss) save nothing, so the last checkpoint written
    before them stays the last good one."""

    def __init__(self, dirpath: str):
        self.dirpath = Path(dirpath)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, KeyboardInterrupt) or trainer.state.fn != "fit":
            return
        path = self.dirpath / "last.ckpt"
        trainer.save_checkpoint(path)
        if trainer.is_global_zero:
            print(f"interrupted at step {trainer.global_step}: resume with ckpt_path={path}", flush=True)
