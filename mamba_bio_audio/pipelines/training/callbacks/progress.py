"""Progress a reader can follow: the rich bar counts steps when a run is bounded by steps (no "Epoch 0/-2"),
a line every ``every_s`` seconds (step, loss, speed, ETA) when stdout is a file or a pipe, where the bar would
stay silent, and the model summary as one line (no layer table, no "Total FLOPs: 0")."""
from __future__ import annotations

import sys
import time

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelSummary, RichProgressBar
from lightning.pytorch.utilities.model_summary import get_human_readable_count

WHEN = ("no_tty", "always", "never")


def stdout_is_terminal() -> bool:
    return bool(getattr(sys.stdout, "isatty", lambda: False)())


def _clock(seconds: float) -> str:
    seconds = int(max(0.0, seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


def step_budget(trainer: "pl.Trainer") -> int | None:
    """The run's optimizer steps: ``max_steps``, else what the epochs come to (None when unknown)."""
    if trainer.max_steps and trainer.max_steps > 0:
        return int(trainer.max_steps)
    try:
        total = trainer.estimated_stepping_batches
    except Exception:  # no sized dataloader yet
        return None
    return int(total) if total != float("inf") else None


class StepProgressBar(RichProgressBar):
    """Lightning's rich progress bar, labelled with the step budget when the run is bounded by steps
    (``max_epochs: -1``), and switched off when stdout is not a terminal (:class:`ProgressLines` speaks there)."""

    def __init__(self, terminal_only: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.terminal_only = terminal_only

    def setup(self, trainer, pl_module, stage: str) -> None:
        if self.terminal_only and not stdout_is_terminal():
            self.disable()
        super().setup(trainer, pl_module, stage)

    def _get_train_description(self, current_epoch: int) -> str:
        # RichProgressBar's own (private) label method: Lightning 2.6.6 has no public setting for the train label
        trainer = self.trainer
        if trainer.max_epochs is not None and trainer.max_epochs >= 0:
            return super()._get_train_description(current_epoch)
        budget = step_budget(trainer)
        text = f"Train (≤ {budget} steps)" if budget else "Train"
        return f"{text:{len(self.validation_description)}}" if len(self.validation_description) > len(text) else text


class ProgressLines(pl.Callback):
    """One line at least every ``every_s`` seconds while training or evaluating: the step, the budget, the
    last training loss, seconds per step and the ETA; a line after every validation with its metrics.

    ``when``: ``no_tty`` (default: only when stdout is not a terminal, where the rich bar is off), ``always``
    or ``never``.
    """

    def __init__(self, every_s: float = 30.0, when: str = "no_tty"):
        if when not in WHEN:
            raise ValueError(f"when must be one of {WHEN}; got {when!r}")
        if not every_s > 0:
            raise ValueError(f"every_s must be > 0; got {every_s}")
        self.every_s, self.when = float(every_s), when
        self._started = self._last = 0.0
        self._first_step = 0
        self._loss: float | None = None

    def _on(self, trainer) -> bool:
        if not trainer.is_global_zero or self.when == "never":
            return False
        return self.when == "always" or not stdout_is_terminal()

    def _print(self, text: str) -> None:
        print(text, flush=True)
        self._last = time.perf_counter()

    def on_train_start(self, trainer, pl_module) -> None:
        self._started = self._last = time.perf_counter()
        self._first_step = trainer.global_step
        if self._on(trainer):
            budget = step_budget(trainer)
            self._print(f"training from step {trainer.global_step}" + (f" to {budget}" if budget else "") +
                        f" (a line every {self.every_s:.0f} s)")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is not None:  # kept as a tensor: reading it (a device sync) waits until a line is printed
            self._loss = loss.detach() if hasattr(loss, "detach") else loss
        if self._on(trainer) and time.perf_counter() - self._last >= self.every_s:
            self._print(self.status(trainer))

    def status(self, trainer) -> str:
        """``step 120/400 (30 %) · loss 1.2345 · 0.84 s/step · 1:41 elapsed · ETA 3:55``."""
        step, budget = trainer.global_step, step_budget(trainer)
        elapsed = time.perf_counter() - self._started
        done = step - self._first_step
        parts = [f"step {step}" + (f"/{budget} ({100 * step / budget:.0f} %)" if budget else "")]
        if self._loss is not None:
            parts.append(f"loss {float(self._loss):.4f}")
        if done > 0:
            per_step = elapsed / done
            parts.append(f"{per_step:.2f} s/step")
        parts.append(f"{_clock(elapsed)} elapsed")
        if done > 0 and budget:
            parts.append(f"ETA {_clock((budget - step) * per_step)}")
        return " · ".join(parts)

    def _eval_batch(self, trainer, what: str, batch_idx: int, total) -> None:
        if self._on(trainer) and time.perf_counter() - self._last >= self.every_s:
            count = total[0] if isinstance(total, list) and total else total
            self._print(f"{what}: batch {batch_idx + 1}" + (f"/{int(count)}" if count not in (None, float("inf"))
                                                               else ""))

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if not trainer.sanity_checking:
            self._eval_batch(trainer, "validation", batch_idx, trainer.num_val_batches)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._eval_batch(trainer, "test", batch_idx, trainer.num_test_batches)

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or not self._on(trainer):
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()
                   if k.startswith("val/") and getattr(v, "numel", lambda: 1)() == 1}
        shown = " · ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items()))
        self._print(f"validation at step {trainer.global_step}: {shown or 'no metrics'}")

    def on_train_end(self, trainer, pl_module) -> None:
        if self._on(trainer):
            self._print(f"training ended at step {trainer.global_step} after "
                        f"{_clock(time.perf_counter() - self._started)}")


class ModelSummaryLine(ModelSummary):
    """The model summary as one line: parameters (trainable), size in MB."""

    @staticmethod
    def summarize(summary_data, total_parameters: int, trainable_parameters: int, model_size: float,
                  total_training_modes: dict, total_flops: int = 0, **summarize_kwargs) -> None:
        print(f"model: {get_human_readable_count(int(total_parameters))} parameters "
              f"({get_human_readable_count(int(trainable_parameters))} trainable, {model_size:.2f} MB)", flush=True)
