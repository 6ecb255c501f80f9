"""Callbacks the tests add to command-line runs with a Hydra override, e.g.
``+callbacks.signal_at._target_=signal_at.SignalAt +callbacks.signal_at.step=5``: ``signal_at`` imports in
pytest's process (its test folder is on the path) and in a subprocess started in this folder."""
from __future__ import annotations

import os
import signal

import lightning.pytorch as pl
import torch


class SignalAt(pl.Callback):
    """Sends this process (with ``group``, its whole process group) the signal ``name`` (a real ``kill``) at
    the end of the batch that makes the global step ``step`` (with ``in_validation``, after the first batch of
    that step's validation), ``times`` times, on rank ``rank`` only: a deterministic stand-in for a
    scheduler's signal."""

    def __init__(self, step: int, name: str = "SIGTERM", rank: int = 0, group: bool = False,
                 in_validation: bool = False, times: int = 1):
        self.step, self.signum, self.rank, self.group = step, signal.Signals[name], rank, group
        self.in_validation, self.times = in_validation, times

    def _send(self, trainer) -> None:
        if trainer.global_step == self.step and trainer.global_rank == self.rank:
            for _ in range(self.times):
                if self.group:  # the whole process group, DataLoader workers included, as a terminal or SLURM does
                    os.killpg(os.getpgrp(), self.signum)
                else:
                    os.kill(os.getpid(), self.signum)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if not self.in_validation:
            self._send(trainer)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if self.in_validation and batch_idx == 0 and not trainer.sanity_checking:
            self._send(trainer)  # after the first of the step's validation batches


class Jitter(pl.Callback):
    """Adds ``scale`` × ``torch.randn`` (torch's global RNG) to every weight after each batch: stands in for
    dropout, so a resumed run matches an uninterrupted one only if that RNG's state is resumed too."""

    def __init__(self, scale: float = 1e-4):
        self.scale = scale

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        with torch.no_grad():
            for p in pl_module.parameters():
                p.add_(torch.randn(p.shape) * self.scale)
