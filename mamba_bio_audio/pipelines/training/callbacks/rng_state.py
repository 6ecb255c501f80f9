"""torch's global random state travels with the checkpoint, so a resumed run draws what an uninterrupted one
would (dropout, or anything else a net or callback draws from ``torch.rand*`` without a generator)."""
from __future__ import annotations

import lightning.pytorch as pl
import torch


class RngState(pl.Callback):
    """Every checkpoint holds torch's global CPU random state (a uint8 tensor) and, on a GPU run, every
    CUDA device's (a list of them): plain tensors, read back by ``torch.load(weights_only=True)``. A resumed
    run sets them just before its first training batch, the point at which they were taken (checkpoints are
    written at batch boundaries, after the batch's hooks): the sanity check, the loaders and the model setup
    of the resumed run draw nothing that an uninterrupted run would not. The data loaders draw from their own
    generators, and the datasets and masks from generators seeded by (seed, epoch, index): none of them
    depend on this state. Python's and numpy's global states are not kept: nothing in training draws from
    them."""

    def __init__(self):
        self._pending: dict | None = None

    def state_dict(self) -> dict:
        state = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        self._pending = dict(state_dict)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
        if self._pending is None:
            return
        state, self._pending = self._pending, None
        torch.set_rng_state(state["torch"])
        cuda = state.get("cuda")
        if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
