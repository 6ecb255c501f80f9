"""The Triton kernels as ``torch.library`` custom ops (namespace ``mamba_bio_audio``).

Each op has a fake (meta) implementation, so ``torch.compile`` traces through calls to it as one opaque node
instead of breaking the graph at the kernel launch, and the differentiable ops have their backward registered with
``torch.library.register_autograd`` (its own custom op, so the compiled backward graph holds it as one node too).
The two decode ops mutate their state argument in place and say so in ``mutates_args``.

Ops (shapes as in the kernel modules; optional tensors may be None):

* ``selective_scan_fwd(u, delta, A, B4, C4, D, z, delta_bias, initial_state, delta_softplus, chunk, block_d,
  save_states, deterministic) -> (out, last_state, chunk_states)`` and ``selective_scan_bwd``;
* ``causal_conv1d_fwd(x, weight, bias, initial_state, silu) -> out`` and ``causal_conv1d_bwd``;
* ``causal_conv1d_update(x, conv_state, weight, bias, silu) -> out`` (mutates conv_state);
* ``rms_norm_fwd(x2d, weight, residual2d, eps, store_residual, residual_in_fp32) -> (out, residual_out, rstd)``
  and ``rms_norm_bwd``;
* ``selective_state_update(state, x, dt, A, B3, C3, D, z, dt_bias, dt_softplus) -> out`` (mutates state).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from mamba_bio_audio.kernels.triton import causal_conv1d as _conv
from mamba_bio_audio.kernels.triton import rms_norm as _rms
from mamba_bio_audio.kernels.triton import selective_scan as _scan
from mamba_bio_audio.kernels.triton import selective_state_update as _ssu

_F32 = torch.float32


def _empty(like: Tensor) -> Tensor:
    return like.new_empty(0)


# ------------------------------------------------------------------------------------------------ selective scan


@torch.library.custom_op("mamba_bio_audio::selective_scan_fwd", mutates_args=())
def selective_scan_fwd(
    u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Optional[Tensor], z: Optional[Tensor],
    delta_bias: Optional[Tensor], initial_state: Optional[Tensor], delta_softplus: bool, chunk: int,
    block_d: int, save_states: bool, deterministic: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    return _scan.scan_forward(u, delta, A, B, C, D, z, delta_bias, initial_state, delta_softplus,
                              chunk, block_d, save_states)


@selective_scan_fwd.register_fake
def _(u, delta, A, B, C, D, z, delta_bias, initial_state, delta_softplus, chunk, block_d, save_states,
      deterministic):
    batch, d_inner, length = u.shape
    n_state = A.shape[1]
    n_chunks = (length + chunk - 1) // chunk
    states = (u.new_empty((batch, d_inner, n_chunks, n_state), dtype=_F32) if save_states
              else u.new_empty(0, dtype=_F32))
    return u.new_empty((batch, d_inner, length)), u.new_empty((batch, d_inner, n_state), dtype=_F32), states


@torch.library.custom_op("mamba_bio_audio::selective_scan_bwd", mutates_args=())
def selective_scan_bwd(
    u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Optional[Tensor], z: Optional[Tensor],
    delta_bias: Optional[Tensor], states: Tensor, dout: Tensor, dlast: Optional[Tensor], delta_softplus: bool,
    chunk: int, block_d: int, deterministic: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    return _scan.scan_backward(u, delta, A, B, C, D, z, delta_bias, states, dout, dlast, delta_softplus,
                               chunk, block_d, deterministic)


@selective_scan_bwd.register_fake
def _(u, delta, A, B, C, D, z, delta_bias, states, dout, dlast, delta_softplus, chunk, block_d, deterministic):
    batch, d_inner, length = u.shape
    n_state = A.shape[1]
    return (
        u.new_empty(u.shape), delta.new_empty(delta.shape), z.new_empty(z.shape) if z is not None else _empty(u),
        A.new_empty((d_inner, n_state), dtype=_F32), B.new_empty(B.shape), C.new_empty(C.shape),
        u.new_empty((d_inner,), dtype=_F32), u.new_empty((d_inner,), dtype=_F32),
        u.new_empty((batch, d_inner, n_state), dtype=_F32),
    )


def _scan_setup_context(ctx, inputs, output):
    (u, delta, A, B, C, D, z, delta_bias, initial_state, delta_softplus, chunk, block_d, save_states,
     deterministic) = inputs
    ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, output[2])
    ctx.config = (delta_softplus, chunk, block_d, deterministic, initial_state is not None)
    ctx.set_materialize_grads(False)


def _scan_backward(ctx, dout, dlast, _dstates):
    u, delta, A, B, C, D, z, delta_bias, states = ctx.saved_tensors
    delta_softplus, chunk, block_d, deterministic, has_initial_state = ctx.config
    if dout is None:
        dout = torch.zeros_like(u)
    du, ddelta, dz, dA, dB, dC, dD, dbias, dh0 = selective_scan_bwd(
        u, delta, A, B, C, D, z, delta_bias, states, dout, dlast, delta_softplus, chunk, block_d, deterministic)
    return (du, ddelta, dA, dB, dC, dD if D is not None else None, dz if z is not None else None,
            dbias if delta_bias is not None else None, dh0 if has_initial_state else None,
            None, None, None, None, None)


selective_scan_fwd.register_autograd(_scan_backward, setup_context=_scan_setup_context)


# ------------------------------------------------------------------------------------------------ causal conv1d


@torch.library.custom_op("mamba_bio_audio::causal_conv1d_fwd", mutates_args=())
def causal_conv1d_fwd(x: Tensor, weight: Tensor, bias: Optional[Tensor], initial_state: Optional[Tensor],
                      silu: bool) -> Tensor:
    return _conv.conv_forward(x, weight, bias, initial_state, silu)


@causal_conv1d_fwd.register_fake
def _(x, weight, bias, initial_state, silu):
    return x.new_empty(x.shape)


@torch.library.custom_op("mamba_bio_audio::causal_conv1d_bwd", mutates_args=())
def causal_conv1d_bwd(x: Tensor, weight: Tensor, bias: Optional[Tensor], initial_state: Optional[Tensor],
                      dout: Tensor, silu: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    return _conv.conv_backward(x, weight, bias, initial_state, dout, silu)


@causal_conv1d_bwd.register_fake
def _(x, weight, bias, initial_state, dout, silu):
    return (x.new_empty(x.shape), weight.new_empty(weight.shape),
            bias.new_empty(bias.shape) if bias is not None else _empty(x),
            initial_state.new_empty(initial_state.shape) if initial_state is not None else _empty(x))


def _conv_setup_context(ctx, inputs, output):
    x, weight, bias, initial_state, silu = inputs
    ctx.save_for_backward(x, weight, bias, initial_state)
    ctx.silu = silu


def _conv_backward(ctx, dout):
    x, weight, bias, initial_state = ctx.saved_tensors
    dx, dw, dbias, dinit = causal_conv1d_bwd(x, weight, bias, initial_state, dout, ctx.silu)
    return dx, dw, dbias if bias is not None else None, dinit if initial_state is not None else None, None


causal_conv1d_fwd.register_autograd(_conv_backward, setup_context=_conv_setup_context)


@torch.library.custom_op("mamba_bio_audio::causal_conv1d_update", mutates_args=("conv_state",))
def causal_conv1d_update(x: Tensor, conv_state: Tensor, weight: Tensor, bias: Optional[Tensor],
                         silu: bool) -> Tensor:
    return _conv.conv_update(x, conv_state, weight, bias, silu)


@causal_conv1d_update.register_fake
def _(x, conv_state, weight, bias, silu):
    return x.new_empty(x.shape)


# ------------------------------------------------------------------------------------------------ add + RMSNorm


@torch.library.custom_op("mamba_bio_audio::rms_norm_fwd", mutates_args=())
def rms_norm_fwd(x: Tensor, weight: Tensor, residual: Optional[Tensor], eps: float, store_residual: bool,
                 residual_in_fp32: bool) -> tuple[Tensor, Tensor, Tensor]:
    residual_dtype = (_F32 if residual_in_fp32 else x.dtype) if store_residual else None
    return _rms.rms_forward(x, weight, residual, eps, residual_dtype)


@rms_norm_fwd.register_fake
def _(x, weight, residual, eps, store_residual, residual_in_fp32):
    res_out = (x.new_empty(x.shape, dtype=_F32 if residual_in_fp32 else x.dtype) if store_residual
               else _empty(x))
    return x.new_empty(x.shape), res_out, x.new_empty(x.shape[:1], dtype=_F32)


@torch.library.custom_op("mamba_bio_audio::rms_norm_bwd", mutates_args=())
def rms_norm_bwd(s: Tensor, weight: Tensor, rstd: Tensor, dy: Tensor, dres_out: Optional[Tensor],
                 has_residual: bool, x_dtype: torch.dtype, residual_dtype: torch.dtype,
                 ) -> tuple[Tensor, Tensor, Tensor]:
    return _rms.rms_backward(s, weight, rstd, dy, dres_out, has_residual, x_dtype, residual_dtype)


@rms_norm_bwd.register_fake
def _(s, weight, rstd, dy, dres_out, has_residual, x_dtype, residual_dtype):
    dres = s.new_empty(s.shape, dtype=residual_dtype) if has_residual else _empty(s)
    return s.new_empty(s.shape, dtype=x_dtype), weight.new_empty(weight.shape), dres


def _rms_setup_context(ctx, inputs, output):
    x, weight, residual, eps, store_residual, residual_in_fp32 = inputs
    _, res_out, rstd = output
    ctx.save_for_backward(res_out if store_residual else x, weight, rstd)
    ctx.store_residual = store_residual
    ctx.dtypes = (x.dtype, residual.dtype if residual is not None else None)
    ctx.set_materialize_grads(False)


def _rms_backward(ctx, dy, dres_out, _drstd):
    s, weight, rstd = ctx.saved_tensors
    x_dtype, residual_dtype = ctx.dtypes
    if dy is None:
        dy = torch.zeros(s.shape, dtype=x_dtype, device=s.device)
    has_residual = residual_dtype is not None
    dx, dw, dres = rms_norm_bwd(s, weight, rstd, dy, dres_out if ctx.store_residual else None, has_residual,
                                x_dtype, residual_dtype if has_residual else x_dtype)
    return dx, dw, dres if has_residual else None, None, None, None


rms_norm_fwd.register_autograd(_rms_backward, setup_context=_rms_setup_context)


# ------------------------------------------------------------------------------------------------ decode step


@torch.library.custom_op("mamba_bio_audio::selective_state_update", mutates_args=("state",))
def selective_state_update(state: Tensor, x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor,
                           D: Optional[Tensor], z: Optional[Tensor], dt_bias: Optional[Tensor],
                           dt_softplus: bool) -> Tensor:
    return _ssu.state_update(state, x, dt, A, B, C, D, z, dt_bias, dt_softplus)


@selective_state_update.register_fake
def _(state, x, dt, A, B, C, D, z, dt_bias, dt_softplus):
    return x.new_empty(x.shape)
