"""SaShiMi's down- and up-pooling between U-Net stages, in parallel (``forward``) and recurrent (``step``) form.

* ``DownPool``: groups of ``pool`` consecutive vectors (batch, L, H) → (batch, L // pool, pool·H) → Linear to
  ``H·expand``. A trailing incomplete group is not emitted (it waits in the state when there is one).
* ``UpPool``: Linear(H → (H / expand)·pool) per pooled step, reshaped to ``pool`` steps, **shifted right by one
  group**: the outputs at positions g·pool ... g·pool + pool − 1 come from pooled step g − 1 (zeros for g = 0),
  so output t never sees an input after t.

Both keep a :class:`PoolState` (batch, pool, H) plus the position within the current group, so a sequence can be
consumed in chunks of any length, one sample at a time included, with the results of one parallel pass.
Flattening order inside a group is (step, channel): ``x.view(batch, L // pool, pool·H)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["PoolState", "DownPool", "UpPool"]


@dataclass
class PoolState:
    """Recurrent state of one pool. DownPool: ``buffer[:, :index]`` are the inputs of the incomplete group.
    UpPool: ``buffer`` (batch, pool, H_out) are the outputs of the current group, ``index`` the next to emit.
    ``index`` counts samples of this stage modulo ``pool``; every row of the batch is at the same position."""

    buffer: torch.Tensor
    index: int = 0


class DownPool(nn.Module):
    """(batch, L, d_input) → (batch, L // pool, d_input · expand)."""

    def __init__(self, d_input: int, expand: int, pool: int, device=None, dtype=None):
        super().__init__()
        self.d_input, self.pool = d_input, pool
        self.d_output = d_input * expand
        self.linear = nn.Linear(d_input * pool, self.d_output, device=device, dtype=dtype)

    def allocate_state(self, batch_size: int, dtype=None) -> PoolState:
        weight = self.linear.weight
        return PoolState(torch.zeros(batch_size, self.pool, self.d_input, device=weight.device,
                                     dtype=dtype or weight.dtype))

    def forward(self, x: torch.Tensor, state: PoolState | None = None) -> torch.Tensor:
        """x (batch, L, d_input) → (batch, G, d_output), G the groups completed by x (after the ``state.index``
        inputs already buffered). The state, when given, keeps the inputs left over."""
        if state is not None:
            x = torch.cat([state.buffer[:, :state.index].to(x.dtype), x], dim=1)
        batch, length, _ = x.shape
        groups = length // self.pool
        out = self.linear(x[:, :groups * self.pool].reshape(batch, groups, self.pool * self.d_input))
        if state is not None:
            left = length - groups * self.pool
            state.buffer[:, :left] = x[:, groups * self.pool:]
            state.index = left
        return out

    def step(self, x: torch.Tensor, state: PoolState) -> torch.Tensor | None:
        """x (batch, d_input) → (batch, d_output) when x completes a group, else None (buffered)."""
        state.buffer[:, state.index] = x
        state.index += 1
        if state.index < self.pool:
            return None
        state.index = 0
        return self.linear(state.buffer.reshape(x.shape[0], self.pool * self.d_input))


class UpPool(nn.Module):
    """(batch, G, d_input) → (batch, L, d_input // expand), with the one-group causal shift."""

    def __init__(self, d_input: int, expand: int, pool: int, device=None, dtype=None):
        super().__init__()
        if d_input % expand:
            raise ValueError(f"UpPool d_input {d_input} must be a multiple of expand {expand}")
        self.pool = pool
        self.d_output = d_input // expand
        self.linear = nn.Linear(d_input, self.d_output * pool, device=device, dtype=dtype)

    def allocate_state(self, batch_size: int, dtype=None) -> PoolState:
        """Zeros: the first group's outputs (nothing before them to up-sample)."""
        weight = self.linear.weight
        return PoolState(torch.zeros(batch_size, self.pool, self.d_output, device=weight.device,
                                     dtype=dtype or weight.dtype))

    def _groups(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).view(x.shape[0], x.shape[1] * self.pool, self.d_output)

    def forward(self, x: torch.Tensor, length: int, state: PoolState | None = None) -> torch.Tensor:
        """x (batch, G, d_input), the pooled steps completed during these ``length`` samples → (batch, length,
        d_output). Without a state the sequence starts at a group boundary with the zero group."""
        upsampled = self._groups(x)
        if state is None:
            head = upsampled.new_zeros(x.shape[0], self.pool, self.d_output)
        else:
            head = state.buffer[:, state.index:].to(upsampled.dtype)
        out = torch.cat([head, upsampled], dim=1)[:, :length]
        if state is not None:
            if x.shape[1] > 0:
                state.buffer.copy_(upsampled[:, -self.pool:])
            state.index = (state.index + length) % self.pool
        return out

    def step(self, x: torch.Tensor | None, state: PoolState) -> torch.Tensor:
        """Emit the next output (batch, d_output). x (batch, d_input), the new pooled step, must be given exactly
        when the current group is used up (``state.index == pool - 1``) and is None otherwise."""
        y = state.buffer[:, state.index]
        state.index += 1
        if state.index < self.pool:
            if x is not None:
                raise ValueError("UpPool.step got a pooled input in the middle of a group")
            return y
        if x is None:
            raise ValueError("UpPool.step needs the next pooled input at the end of a group")
        state.index = 0
        y = y.clone()  # the buffer is overwritten in place (CUDA-graph friendly)
        state.buffer.copy_(self._groups(x[:, None]))
        return y
