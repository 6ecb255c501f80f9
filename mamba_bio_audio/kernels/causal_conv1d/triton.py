"""Triton backend of the causal conv: the kernels of ``triton_kernels.py`` as torch custom ops.

:func:`causal_conv1d_triton` and :func:`causal_conv1d_update_triton` have the signatures and semantics of
``reference.causal_conv1d_ref`` and ``reference.causal_conv1d_update_ref``; they run on CUDA tensors, or on CPU
tensors under ``TRITON_INTERPRET=1``.

Custom ops (fake implementations for ``torch.compile``; optional tensors may be None):

* ``mamba_bio_audio::causal_conv1d_fwd(x, weight, bias, initial_state, silu) -> out``, differentiable through
  ``mamba_bio_audio::causal_conv1d_bwd(x, weight, bias, initial_state, dout, silu) -> (dx, dweight, dbias,
  dinitial_state)`` (empty (0,) for an absent bias or initial_state);
* ``mamba_bio_audio::causal_conv1d_update(x, conv_state, weight, bias, silu) -> out``, x (batch, dim, T), mutates
  conv_state.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from mamba_bio_audio.kernels import _triton_common  # noqa: F401  (the interpreter fix, before any launch)
from mamba_bio_audio.kernels.causal_conv1d import triton_kernels as _kernels
from mamba_bio_audio.kernels.causal_conv1d.reference import refuse_final_states_out

__all__ = ["causal_conv1d_triton", "causal_conv1d_update_triton", "causal_conv1d_fwd", "causal_conv1d_bwd",
           "causal_conv1d_update_op"]


@torch.library.custom_op("mamba_bio_audio::causal_conv1d_fwd", mutates_args=())
def causal_conv1d_fwd(x: Tensor, weight: Tensor, bias: Optional[Tensor], initial_state: Optional[Tensor],
                      silu: bool) -> Tensor:
    return _kernels.conv_forward(x, weight, bias, initial_state, silu)


@causal_conv1d_fwd.register_fake
def _(x, weight, bias, initial_state, silu):
    return x.new_empty(x.shape)


@torch.library.custom_op("mamba_bio_audio::causal_conv1d_bwd", mutates_args=())
def causal_conv1d_bwd(x: Tensor, weight: Tensor, bias: Optional[Tensor], initial_state: Optional[Tensor],
                      dout: Tensor, silu: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    return _kernels.conv_backward(x, weight, bias, initial_state, dout, silu)


@causal_conv1d_bwd.register_fake
def _(x, weight, bias, initial_state, dout, silu):
    return tuple(x.new_empty(0) if t is None else t.new_empty(t.shape) for t in (x, weight, bias, initial_state))


def _setup_context(ctx, inputs, output):
    x, weight, bias, initial_state, silu = inputs
    ctx.save_for_backward(x, weight, bias, initial_state)
    ctx.silu = silu


def _backward(ctx, dout):
    x, weight, bias, initial_state = ctx.saved_tensors
    dx, dw, dbias, dinit = causal_conv1d_bwd(x, weight, bias, initial_state, dout, ctx.silu)
    return dx, dw, dbias if bias is not None else None, dinit if initial_state is not None else None, None


causal_conv1d_fwd.register_autograd(_backward, setup_context=_setup_context)


@torch.library.custom_op("mamba_bio_audio::causal_conv1d_update", mutates_args=("conv_state",))
def causal_conv1d_update_op(x: Tensor, conv_state: Tensor, weight: Tensor, bias: Optional[Tensor],
                            silu: bool) -> Tensor:
    return _kernels.conv_update(x, conv_state, weight, bias, silu)


@causal_conv1d_update_op.register_fake
def _(x, conv_state, weight, bias, silu):
    return x.new_empty(x.shape)


def causal_conv1d_triton(x, weight, bias=None, initial_states=None, return_final_states=False, final_states_out=None,
                         activation=None):
    """Causal depthwise conv1d. x (batch, dim, L) any strides; weight (dim, W), W in 2..4; bias (dim,);
    initial_states (batch, dim, W-1). Returns out (batch, dim, L) in x.dtype [, final_states (batch, dim, W-1), a
    new tensor, differentiable]. ``final_states_out`` must be None."""
    refuse_final_states_out(final_states_out)
    initial_state = initial_states
    out = causal_conv1d_fwd(x, weight, bias, initial_state, activation in ("silu", "swish"))
    if not return_final_states:
        return out
    keep = weight.shape[1] - 1
    length = x.shape[-1]
    tail = x[..., max(length - keep, 0):]
    if length < keep:
        before = initial_state if initial_state is not None else x.new_zeros(x.shape[0], x.shape[1], keep)
        tail = torch.cat([before[..., length:].to(x.dtype), tail], dim=-1)
    return out, tail.clone(memory_format=torch.contiguous_format)


def causal_conv1d_update_triton(x, conv_state, weight, bias=None, activation=None):
    """Decode step(s) of the causal conv. x (batch, dim) or (batch, dim, L_new); conv_state (batch, dim, S >= W-1)
    updated in place. Returns out shaped like x."""
    x3 = x.unsqueeze(-1) if x.dim() == 2 else x
    out = causal_conv1d_update_op(x3, conv_state, weight, bias, activation in ("silu", "swish"))
    return out.squeeze(-1) if x.dim() == 2 else out
