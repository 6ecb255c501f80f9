"""Training throughput (tokens per second) and peak memory, logged every ``log_every_n_steps``."""
from __future__ import annotations

import resource
import sys
import time

import lightning.pytorch as pl
import torch


def peak_memory_mb(device: torch.device) -> float:
    """Peak allocated CUDA memory on ``device``, else this process's peak resident set size, in MiB."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / (2**20 if sys.platform == "darwin" else 2**10)


class Throughput(pl.Callback):
    """Logs ``perf/tokens_per_s`` (input tokens of the training batches over wall time since the last log,
    all devices) and ``perf/peak_mem_mb``."""

    def __init__(self):
        self._tokens = 0
        self._since: float | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._since is None:
            self._since = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._tokens += batch[0].numel() * trainer.world_size
        if (batch_idx + 1) % max(1, trainer.log_every_n_steps) == 0:
            elapsed = time.perf_counter() - self._since
            pl_module.log_dict({"perf/tokens_per_s": self._tokens / max(elapsed, 1e-9),
                                "perf/peak_mem_mb": peak_memory_mb(pl_module.device)}, on_step=True, on_epoch=False)
            self._tokens, self._since = 0, time.perf_counter()
