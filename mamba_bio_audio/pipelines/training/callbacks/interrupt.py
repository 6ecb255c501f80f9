"""A preempted or interrupted run leaves a resumable checkpoint, says how to resume, and exits non-zero.

SIGTERM (a cluster's preemption, ``kill``, a spot instance going away), SIGINT (Ctrl-C) and SIGUSR1 (what
SLURM's ``--signal`` sends ahead of the end of a job) during ``fit`` only set a flag: the handler may run in
the middle of a step, where no state is safe to save. At the next batch boundary the ranks agree on the flag
(one all-reduce of the signal number per optimizer step), so every rank stops at the same step and none is left
waiting in a collective; the full training state is written to ``last.ckpt`` (rank 0 writes, under a
temporary name renamed into place) and every rank raises :class:`Preempted`, whose exit status is 128 + the
signal number, as a shell reports a process killed by it: 143 for SIGTERM, 130 for SIGINT, 138 for SIGUSR1.

This replaces Lightning's own SIGTERM handler for the fit (whose broadcast inside the handler can meet
another rank in a different collective, and whose ``SIGTERMException`` exits 0 without a checkpoint): a
SIGTERM Lightning recorded before ours was installed (``trainer.received_sigterm``) counts too, and
:class:`Preempted` is a ``SIGTERMException``, so Lightning's ``OnExceptionCheckpoint`` and the like see it
as theirs. Lightning puts its own handlers back when the fit ends. Where Lightning handles SIGUSR1 itself
(SLURM auto-requeue: it saves an HPC checkpoint and requeues the job), SIGUSR1 is left to it.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Checkpoint, ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from mamba_bio_audio.atomic import atomic_path

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)


class Preempted(SIGTERMException):
    """Training stopped on ``signum`` after step ``step``, with the training state in ``ckpt_path``;
    ``code`` (the process exit status, as for ``SystemExit``) is 128 + ``signum``."""

    def __init__(self, signum: int, step: int, ckpt_path: str):
        super().__init__(128 + int(signum))
        self.signum, self.step, self.ckpt_path = int(signum), int(step), ckpt_path


class InterruptCheckpoint(Checkpoint):
    """Stops a fit on SIGTERM, SIGINT or SIGUSR1 at the next batch boundary (see the module docstring), saving
    the full training state as ``dirpath/<filename>.ckpt`` (``last.ckpt``, the file ``ModelCheckpoint`` keeps
    current) and printing ``resume with ckpt_path=<that file>``.

    A boundary is the end of an optimizer step (never inside gradient accumulation). When validation follows
    that step, the run validates first and stops at the end of validation, as ``ModelCheckpoint`` saves, so the
    resumed run does not repeat or skip it. A ``ModelCheckpoint`` whose last checkpoint is the same file is
    told so (its resumed run keeps that file current). A second Ctrl-C stops at once (KeyboardInterrupt;
    Lightning exits 1) without saving: the state mid-step is not a state to resume from. A KeyboardInterrupt
    raised by code (not by a second Ctrl-C) saves the state as it is, as before. Other exceptions (a NaN loss)
    save nothing, so the last checkpoint written before them stays the last good one; the file is left in place
    when a run ends normally. Not Lightning's ``OnExceptionCheckpoint``: with one of those,
    ``fit(ckpt_path=None)`` quietly resumes from a ``last.ckpt`` left in the folder by an earlier run.

    It reads two private parts of Lightning's training loop (whether the loop is accumulating gradients and
    whether it validates after this batch): no public hook says either.
    """

    def __init__(self, dirpath: str, filename: str = "last"):
        if not filename:
            raise ValueError("filename must not be empty")
        self.dirpath, self.filename = dirpath, filename
        self._signum: int | None = None  # the first stop signal received
        self._forced = False  # a second Ctrl-C
        self._after_validation: int | None = None  # signal to stop on at the end of this validation
        self._step_before = -1  # trainer.global_step when the current batch started
        self._stopped = False

    @property
    def ckpt_path(self) -> str:
        return os.path.join(self.dirpath, self.filename + ".ckpt")

    # signals ------------------------------------------------------------------------------------------------

    def _handler(self, signum: int, frame) -> None:
        if self._signum is not None:
            if signum == signal.SIGINT:
                self._forced = True
                raise KeyboardInterrupt
            return
        self._signum = signum
        again = " (Ctrl-C again stops at once, without saving)" if signum == signal.SIGINT else ""
        os.write(2, f"received {signal.Signals(signum).name}: saving a checkpoint and stopping after this "
                    f"step{again}\n".encode())

    def _install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread
        for signum in STOP_SIGNALS:
            current = signal.getsignal(signum)
            if getattr(current, "__self__", None) is self:
                continue
            if signum == signal.SIGUSR1 and current not in (signal.SIG_DFL, None):
                continue  # someone else's (Lightning's SLURM auto-requeue, a user's): left alone
            signal.signal(signum, self._handler)

    def on_sanity_check_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._install()  # after Lightning registered its handlers, which it restores when the fit ends

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._install()

    # stopping -----------------------------------------------------------------------------------------------

    def _received(self, trainer: pl.Trainer) -> int:
        if self._signum is None and trainer.received_sigterm:
            self._signum = signal.SIGTERM
        return self._signum or 0

    def _agreed(self, trainer: pl.Trainer) -> int:
        """The stop signal, agreed by all ranks (the largest received, 0 for none); a collective."""
        received = self._received(trainer)
        if trainer.world_size == 1:
            return received
        # one all-reduce (max: 0 when no rank received one), not a boolean decision followed by a second one
        signum = torch.tensor(received, device=trainer.strategy.root_device)
        return int(trainer.strategy.reduce(signum, reduce_op="max").item())

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch,
                             batch_idx: int) -> None:
        self._step_before = trainer.global_step

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        # only after an optimizer step (global_step moved): a batch that accumulates gradients is no boundary
        if self._stopped or trainer.global_step == self._step_before:
            return
        signum = self._agreed(trainer)
        if not signum:
            return
        # Lightning 2.6 has no public way to ask whether a validation follows this batch: its loop's own test
        loop = trainer.fit_loop.epoch_loop
        if loop._should_check_val_fx(trainer.fit_loop._data_fetcher):
            self._after_validation = signum
        else:
            self._stop(trainer, signum)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._after_validation and not trainer.sanity_checking and not self._stopped:
            self._stop(trainer, self._after_validation)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # a signal during the last step's validation: training is over, but the run still stops here
        if not self._stopped:
            signum = self._agreed(trainer)
            if signum:
                self._stop(trainer, signum)

    def _save(self, trainer: pl.Trainer) -> None:
        for callback in trainer.checkpoint_callbacks:
            if isinstance(callback, ModelCheckpoint) and callback.save_last and callback.dirpath and \
                    os.path.abspath(os.path.join(callback.dirpath, "last.ckpt")) == os.path.abspath(self.ckpt_path):
                # the file is that callback's last checkpoint: said so in the state saved, its resumed run
                # keeps writing last.ckpt (not a new last-v1.ckpt beside a last.ckpt it does not know)
                callback.last_model_path = self.ckpt_path
        if trainer.is_global_zero:  # the only rank that writes; the others join the save's collectives
            with atomic_path(Path(self.ckpt_path)) as tmp:
                trainer.save_checkpoint(tmp)
        else:
            trainer.save_checkpoint(self.ckpt_path)

    def _stop(self, trainer: pl.Trainer, signum: int) -> None:
        self._stopped = True
        self._save(trainer)
        name, step = signal.Signals(signum).name, trainer.global_step
        if trainer.is_global_zero:
            print(f"stopped by {name} at step {step}: resume with ckpt_path={self.ckpt_path}", flush=True)
        else:
            print(f"rank {trainer.global_rank}: stopped by {name} at step {step}", flush=True)
        raise Preempted(signum, step, self.ckpt_path)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, KeyboardInterrupt) or trainer.state.fn != "fit":
            return
        if self._forced:
            if trainer.is_global_zero:
                print("interrupted again: stopped at once, without saving this step", file=sys.stderr, flush=True)
            return
        self._save(trainer)  # as on a signal: written under a temporary name, so a kill mid-write keeps the old file
        if trainer.is_global_zero:
            print(f"interrupted at step {trainer.global_step}: resume with ckpt_path={self.ckpt_path}", flush=True)
