"""The residual block of ``mamba_ssm.modules.block``: Add → Norm → Mixer (→ Add → Norm → MLP).

The pre-norm block is rearranged so that the residual add and the norm fuse into one op: a block receives the
mixer output of the previous block and the running residual, returns its own mixer output and the new residual.
The first block gets ``residual=None``. With ``residual_in_fp32`` the residual stream stays fp32 under AMP.
:func:`run_block` applies a block with optional activation checkpointing (its activations are recomputed in
backward instead of kept); :func:`final_norm` is the add + norm after the last block.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from mamba_bio_audio.modules.rms_norm import RMSNorm

__all__ = ["Block", "GatedMLP", "final_norm", "run_block"]


class GatedMLP(nn.Module):
    """``mamba_ssm.modules.mlp.GatedMLP``: fc2(a · act(g)) with (a, g) = fc1(x); used when d_intermediate > 0.

    hidden_features defaults to 8/3 · in_features and is rounded up to a multiple of ``multiple_of``.
    """

    def __init__(self, in_features: int, hidden_features: int | None = None, out_features: int | None = None,
                 activation=F.silu, bias: bool = False, multiple_of: int = 128, device=None, dtype=None):
        super().__init__()
        factory_kwargs = {"device": device, "dtype": dtype}
        out_features = out_features if out_features is not None else in_features
        hidden_features = hidden_features if hidden_features is not None else int(8 * in_features / 3)
        hidden_features = (hidden_features + multiple_of - 1) // multiple_of * multiple_of
        self.fc1 = nn.Linear(in_features, 2 * hidden_features, bias=bias, **factory_kwargs)
        self.activation = activation
        self.fc2 = nn.Linear(hidden_features, out_features, bias=bias, **factory_kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., in_features) → (..., out_features)."""
        y, gate = self.fc1(x).chunk(2, dim=-1)
        return self.fc2(y * self.activation(gate))


class Block(nn.Module):
    """One residual block. ``mixer_cls(dim)``, ``mlp_cls(dim)`` and ``norm_cls(dim)`` build the sub-modules;
    ``mlp_cls=nn.Identity`` means no MLP (Mamba-1 models). ``fused_add_norm`` does the add inside the norm op
    (RMSNorm only; other norms add in PyTorch, which is numerically the same)."""

    def __init__(self, dim: int, mixer_cls, mlp_cls=nn.Identity, norm_cls=nn.LayerNorm,
                 fused_add_norm: bool = False, residual_in_fp32: bool = False):
        super().__init__()
        self.residual_in_fp32 = residual_in_fp32
        self.fused_add_norm = fused_add_norm
        self.norm = norm_cls(dim)
        self.mixer = mixer_cls(dim)
        if mlp_cls is nn.Identity:
            self.mlp = None
        else:
            self.norm2 = norm_cls(dim)
            self.mlp = mlp_cls(dim)

    def _add_norm(self, norm: nn.Module, hidden_states, residual):
        if self.fused_add_norm and isinstance(norm, RMSNorm):
            return norm(hidden_states, residual=residual, prenorm=True, residual_in_fp32=self.residual_in_fp32)
        residual = hidden_states if residual is None else hidden_states + residual
        hidden_states = norm(residual.to(dtype=norm.weight.dtype))
        if self.residual_in_fp32:
            residual = residual.to(torch.float32)
        return hidden_states, residual

    def forward(self, hidden_states: torch.Tensor, residual: torch.Tensor | None = None, inference_params=None,
                **mixer_kwargs):
        """hidden_states, residual (batch, L, dim). Returns (mixer/MLP output, new residual)."""
        hidden_states, residual = self._add_norm(self.norm, hidden_states, residual)
        hidden_states = self.mixer(hidden_states, inference_params=inference_params, **mixer_kwargs)
        if self.mlp is not None:
            hidden_states, residual = self._add_norm(self.norm2, hidden_states, residual)
            hidden_states = self.mlp(hidden_states)
        return hidden_states, residual

    def forward_with_state(self, hidden_states: torch.Tensor, residual: torch.Tensor | None = None, state=None):
        """:meth:`forward` through the mixer's differentiable ``forward_with_state``: ``state`` is the mixer's
        state after the preceding tokens (None: a fresh sequence). Returns (mixer/MLP output, new residual,
        the mixer's state after the last token)."""
        hidden_states, residual = self._add_norm(self.norm, hidden_states, residual)
        hidden_states, state = self.mixer.forward_with_state(hidden_states, state)
        if self.mlp is not None:
            hidden_states, residual = self._add_norm(self.norm2, hidden_states, residual)
            hidden_states = self.mlp(hidden_states)
        return hidden_states, residual, state

    def allocate_inference_cache(self, batch_size: int, max_seqlen: int, dtype=None):
        return self.mixer.allocate_inference_cache(batch_size, max_seqlen, dtype=dtype)


def run_block(function, *args, checkpointed: bool = False, **kwargs):
    """``function(*args, **kwargs)`` (a Block's ``forward`` or ``forward_with_state``); with ``checkpointed``,
    and while autograd records, through non-reentrant activation checkpointing: only the inputs are kept and
    the block is run again in backward. Gradients are the same either way."""
    if checkpointed and torch.is_grad_enabled():
        return checkpoint(function, *args, use_reentrant=False, **kwargs)
    return function(*args, **kwargs)


def final_norm(norm: nn.Module, hidden_states: torch.Tensor, residual: torch.Tensor | None,
               fused_add_norm: bool, residual_in_fp32: bool) -> torch.Tensor:
    """norm(hidden_states + residual) after the last block: (batch, L, dim) in the norm's dtype."""
    if fused_add_norm and isinstance(norm, RMSNorm):
        return norm(hidden_states, residual=residual, prenorm=False, residual_in_fp32=residual_in_fp32)
    residual = hidden_states if residual is None else hidden_states + residual
    return norm(residual.to(dtype=norm.weight.dtype))
