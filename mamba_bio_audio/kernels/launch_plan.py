"""The Triton launches of a step, recorded on ``meta`` tensors without running them: what a compile-only report
(``mamba-bio-audio bench kernels``) and the compile tests compile for a GPU target with no GPU present.

Each function builds the tensors a run would hand the Triton backend (same shapes, dtypes and strides as the Mamba
block's, on the ``meta`` device), calls the same argument preparation and launchers as the backend, inside
``_triton_common.recording_launches``, and returns the recorded :class:`~._triton_common.Launch` list in launch
order. Launch configurations therefore come from the launchers' own heuristics and cannot drift from them.

Sizes: batch, d_inner (channels), length L, n_state N, groups G of B/C, width W of the conv, hidden H of RMSNorm.
"""
from __future__ import annotations

import torch

from mamba_bio_audio.kernels._triton_common import Launch, recording_launches
from mamba_bio_audio.kernels.causal_conv1d import triton_kernels as conv_kernels
from mamba_bio_audio.kernels.rms_norm import triton as rms
from mamba_bio_audio.kernels.selective_scan import triton as scan_op
from mamba_bio_audio.kernels.selective_scan import triton_kernels as scan_kernels
from mamba_bio_audio.kernels.selective_state_update import triton as state_update_op

__all__ = ["PLANS", "scan", "conv", "conv_update", "rms_norm", "state_update", "training_step", "decode_step"]

_F32 = torch.float32


def _empty(*shape, dtype=_F32) -> torch.Tensor:
    return torch.empty(shape, dtype=dtype, device="meta")


def scan(sm_count: int, batch: int, d_inner: int, n_state: int, length: int, dtype: torch.dtype = _F32, *,
         groups: int = 1, has_D: bool = True, has_z: bool = True, has_bias: bool = True, softplus: bool = True,
         initial_state: bool = False, dlast: bool = False, backward: bool = True, deterministic: bool = False,
         z_from_in_proj: bool = True, block_l: int | None = None, block_d: int | None = None,
         segments: int | None = None, forward_lanes: int | None = None,
         backward_lanes: int | None = None) -> list[Launch]:
    """Scan forward (saving chunk states when ``backward``) and backward. u, z are slices of one in_proj output
    (batch, 2·d_inner, L) when ``z_from_in_proj``, as in the Mamba block; B, C (batch, N, L), or (batch, G, N, L)
    when ``groups`` > 1."""
    xz = _empty(batch, 2 * d_inner, length, dtype=dtype)
    u = xz[:, :d_inner] if z_from_in_proj else _empty(batch, d_inner, length, dtype=dtype)
    z = (xz[:, d_inner:] if z_from_in_proj else _empty(batch, d_inner, length, dtype=dtype)) if has_z else None
    delta = _empty(batch, d_inner, length, dtype=dtype)
    bc_shape = (batch, n_state, length) if groups == 1 else (batch, groups, n_state, length)
    B, C = _empty(*bc_shape, dtype=dtype), _empty(*bc_shape, dtype=dtype)
    A = _empty(d_inner, n_state)
    D = _empty(d_inner) if has_D else None
    bias = _empty(d_inner) if has_bias else None
    h0 = _empty(batch, d_inner, n_state) if initial_state else None
    args = scan_op.forward_op_args(u, delta, A, B, C, D, z, bias, softplus, h0, block_l=block_l,
                                   block_d=block_d, save_states=backward, deterministic=deterministic,
                                   segments=segments, forward_lanes=forward_lanes, backward_lanes=backward_lanes)
    with recording_launches(sm_count) as launches:
        *inputs, softplus_, block_l, block, save, determ, segs, fwd_lanes, bwd_lanes = args
        _, last, states = scan_kernels.scan_forward(*inputs, softplus_, block_l, block, save, segs, fwd_lanes)
        if backward:
            dout = _empty(batch, d_inner, length, dtype=dtype)
            scan_kernels.scan_backward(*inputs[:8], states, dout, torch.empty_like(last) if dlast else None,
                                       softplus_, block_l, block, determ, segs, bwd_lanes)
    return launches


def conv(sm_count: int, batch: int, dim: int, length: int, width: int = 4, dtype: torch.dtype = _F32, *,
         has_bias: bool = True, silu: bool = True, initial_state: bool = False, backward: bool = True,
         x_from_in_proj: bool = True) -> list[Launch]:
    """Causal conv forward and backward; x a slice of one in_proj output when ``x_from_in_proj``."""
    x = (_empty(batch, 2 * dim, length, dtype=dtype)[:, :dim] if x_from_in_proj
         else _empty(batch, dim, length, dtype=dtype))
    weight = _empty(dim, width, dtype=dtype)
    bias = _empty(dim, dtype=dtype) if has_bias else None
    init = _empty(batch, dim, width - 1, dtype=dtype) if initial_state else None
    with recording_launches(sm_count) as launches:
        out = conv_kernels.conv_forward(x, weight, bias, init, silu)
        if backward:
            conv_kernels.conv_backward(x, weight, bias, init, torch.empty_like(out), silu)
    return launches


def conv_update(sm_count: int, batch: int, dim: int, width: int = 4, dtype: torch.dtype = _F32, *,
                steps: int = 1, has_bias: bool = True, silu: bool = True) -> list[Launch]:
    """Decode step of the conv: x (batch, dim) sliced from the in_proj output, conv_state (batch, dim, W)."""
    x = _empty(batch, 2 * dim, steps, dtype=dtype)[:, :dim]
    state = _empty(batch, dim, width, dtype=dtype)
    weight = _empty(dim, width, dtype=dtype)
    bias = _empty(dim, dtype=dtype) if has_bias else None
    with recording_launches(sm_count) as launches:
        conv_kernels.conv_update(x, state, weight, bias, silu)
    return launches


def rms_norm(sm_count: int, rows: int, hidden: int, dtype: torch.dtype = _F32, *, residual: bool = True,
             residual_in_fp32: bool = True, prenorm: bool = True, backward: bool = True) -> list[Launch]:
    """(Residual add +) RMSNorm forward and backward over (rows, hidden)."""
    x = _empty(rows, hidden, dtype=dtype)
    weight = _empty(hidden)
    res = _empty(rows, hidden, dtype=_F32 if residual_in_fp32 else dtype) if residual else None
    x2, w, r2, eps, store, in_fp32 = rms.forward_op_args(x, weight, res, 1e-5, residual_in_fp32)
    res_dtype = rms.residual_out_dtype(x2.dtype, store, in_fp32)
    with recording_launches(sm_count) as launches:
        out, res_out, rstd = rms.rms_forward(x2, w, r2, eps, res_dtype)
        if backward:
            dres_out = torch.empty_like(res_out) if prenorm and store else None
            rms.rms_backward(res_out if store else x2, w, rstd, torch.empty_like(out), dres_out, residual,
                             x2.dtype, res.dtype if residual else x2.dtype)
    return launches


def state_update(sm_count: int, batch: int, dim: int, n_state: int, dtype: torch.dtype = _F32, *,
                 groups: int = 1, has_D: bool = True, has_z: bool = True, has_bias: bool = True,
                 softplus: bool = True) -> list[Launch]:
    """One decode step of the scan: x, z slices of the in_proj output (batch, 2·dim); state (batch, dim, N) fp32."""
    xz = _empty(batch, 2 * dim, dtype=dtype)
    x, z = xz[:, :dim], (xz[:, dim:] if has_z else None)
    bc = _empty(batch, groups, n_state, dtype=dtype)
    with recording_launches(sm_count) as launches:
        state_update_op.state_update(
            _empty(batch, dim, n_state), x, _empty(batch, dim, dtype=dtype), _empty(dim, n_state), bc,
            torch.empty_like(bc), _empty(dim) if has_D else None, z, _empty(dim) if has_bias else None, softplus)
    return launches


def training_step(sm_count: int, batch: int, d_model: int, length: int, dtype: torch.dtype = _F32, *,
                  n_state: int = 16, d_conv: int = 4, expand: int = 2, deterministic: bool = False) -> list[Launch]:
    """The Triton launches of one Mamba block in a training step (forward then backward): add + RMSNorm, conv,
    scan, with the block's layouts (x, z slices of in_proj's output; residual in fp32)."""
    d_inner = expand * d_model
    return (rms_norm(sm_count, batch * length, d_model, dtype, backward=False)
            + conv(sm_count, batch, d_inner, length, d_conv, dtype, backward=False)
            + scan(sm_count, batch, d_inner, n_state, length, dtype, deterministic=deterministic)
            + conv(sm_count, batch, d_inner, length, d_conv, dtype)[1:]
            + rms_norm(sm_count, batch * length, d_model, dtype)[1:])


def decode_step(sm_count: int, batch: int, d_model: int, dtype: torch.dtype = _F32, *, n_state: int = 16,
                d_conv: int = 4, expand: int = 2) -> list[Launch]:
    """The Triton launches of one Mamba block in a decode step: add + RMSNorm, conv update, state update."""
    d_inner = expand * d_model
    return (rms_norm(sm_count, batch, d_model, dtype, backward=False)
            + conv_update(sm_count, batch, d_inner, d_conv, dtype)
            + state_update(sm_count, batch, d_inner, n_state, dtype))


PLANS = {f.__name__: f for f in (scan, conv, conv_update, rms_norm, state_update, training_step, decode_step)}
