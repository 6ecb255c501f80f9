"""Ctrl-C leaves a resumable checkpoint."""
from __future__ import annotations

import os

import lightning.pytorch as pl


class InterruptCheckpoint(pl.Callback):
    """A KeyboardInterrupt during fit saves the full training state as ``dirpath/<filename>.ckpt``
    (``last.ckpt``, the file ``ModelCheckpoint`` keeps current) and prints ``resume with ckpt_path=<that file>``.
    Other exceptions (a NaN loss) save nothing, so the last checkpoint written before them stays the last good
    one; the file is left in place when a run ends normally. Not Lightning's ``OnExceptionCheckpoint``: with one
    of those, ``fit(ckpt_path=None)`` quietly resumes from a ``last.ckpt`` left in the folder by an earlier run."""

    def __init__(self, dirpath: str, filename: str = "last"):
        if not filename:
            raise ValueError("filename must not be empty")
        self.dirpath, self.filename = dirpath, filename

    @property
    def ckpt_path(self) -> str:
        return os.path.join(self.dirpath, self.filename + ".ckpt")

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, KeyboardInterrupt) or trainer.state.fn != "fit":
            return
        trainer.save_checkpoint(self.ckpt_path)
        if trainer.is_global_zero:
            print(f"interrupted at step {trainer.global_step}: resume with ckpt_path={self.ckpt_path}", flush=True)
