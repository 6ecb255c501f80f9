"""Triton backend of one decode step of the selective scan, in place on the state.

:func:`selective_state_update_triton` has the signature and semantics of ``reference.selective_state_update_ref``
and runs on CUDA tensors, or on CPU tensors under ``TRITON_INTERPRET=1``.

state (batch, dim, N) (fp32 normally; any float dtype, any strides, updated in place); x, dt, z (batch, dim);
A (dim, N) fp32; B, C (batch, N) or (batch, G, N) with dim % G == 0; D, dt_bias (dim,).
Δ = softplus(dt + dt_bias) (threshold 20); state ← exp(Δ A) ⊙ state + Δ B x; out = <C, state> + D x, times
SiLU(z). All arithmetic is fp32. No autotuning, on purpose: a tuning sweep would re-run the kernel and advance the
state several times. Block sizes follow mamba_ssm's hand-tuned table.

Custom op (with a fake implementation for ``torch.compile``): ``mamba_bio_audio::selective_state_update(state, x,
dt, A, B3, C3, D, z, dt_bias, dt_softplus) -> out``, B3, C3 (batch, G, N); mutates state.
"""
from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl
from torch import Tensor

from mamba_bio_audio.kernels._triton_common import launch
from mamba_bio_audio.kernels._triton_common import or_placeholder as _or

__all__ = ["selective_state_update_triton", "selective_state_update_op"]


@triton.jit
def _state_update_kernel(
    state_ptr, x_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, dt_bias_ptr, out_ptr,
    dim, channels_per_group,
    s_st_b, s_st_d, s_st_n, s_x_b, s_x_d, s_dt_b, s_dt_d, s_A_d, s_A_n,
    s_B_b, s_B_g, s_B_n, s_C_b, s_C_g, s_C_n, s_z_b, s_z_d, s_o_b, s_o_d,
    N: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_b = tl.program_id(1).to(tl.int64)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    mask_m = offs_m < dim
    mask = mask_m[:, None] & (offs_n < N)[None, :]
    group = offs_m // channels_per_group

    st_ptrs = state_ptr + pid_b * s_st_b + offs_m[:, None] * s_st_d + offs_n[None, :] * s_st_n
    state = tl.load(st_ptrs, mask=mask, other=0.0).to(tl.float32)
    x = tl.load(x_ptr + pid_b * s_x_b + offs_m * s_x_d, mask=mask_m, other=0.0).to(tl.float32)
    dt = tl.load(dt_ptr + pid_b * s_dt_b + offs_m * s_dt_d, mask=mask_m, other=0.0).to(tl.float32)
    if HAS_BIAS:
        dt += tl.load(dt_bias_ptr + offs_m, mask=mask_m, other=0.0).to(tl.float32)
    if SOFTPLUS:
        dt = tl.where(dt <= 20.0, tl.log(1.0 + tl.exp(dt)), dt)
    A = tl.load(A_ptr + offs_m[:, None] * s_A_d + offs_n[None, :] * s_A_n, mask=mask, other=0.0).to(tl.float32)
    Bv = tl.load(B_ptr + pid_b * s_B_b + group[:, None] * s_B_g + offs_n[None, :] * s_B_n, mask=mask, other=0.0)
    Cv = tl.load(C_ptr + pid_b * s_C_b + group[:, None] * s_C_g + offs_n[None, :] * s_C_n, mask=mask, other=0.0)

    state = state * tl.exp(dt[:, None] * A) + (dt * x)[:, None] * Bv.to(tl.float32)
    tl.store(st_ptrs, state, mask=mask)
    out = tl.sum(state * Cv.to(tl.float32), axis=1)
    if HAS_D:
        out += x * tl.load(D_ptr + offs_m, mask=mask_m, other=0.0).to(tl.float32)
    if HAS_Z:
        z = tl.load(z_ptr + pid_b * s_z_b + offs_m * s_z_d, mask=mask_m, other=0.0).to(tl.float32)
        out *= z * tl.sigmoid(z)
    tl.store(out_ptr + pid_b * s_o_b + offs_m * s_o_d, out, mask=mask_m)


def _block_config(n_state: int) -> tuple[int, int]:
    """(BLOCK_SIZE_M, num_warps) by N, as mamba_ssm's ``selective_state_update``."""
    if n_state <= 16:
        return 32, 4
    if n_state <= 32:
        return 16, 4
    if n_state <= 64:
        return 8, 4
    if n_state <= 128:
        return 4, 4
    return 4, 8


def state_update(state, x, dt, A, B, C, D, z, dt_bias, dt_softplus: bool):
    """Launch one in-place step (shapes in the module docstring; B, C 3-D). Returns out (batch, dim) in x.dtype.
    Grid: (cdiv(dim, BLOCK_M), batch)."""
    batch, dim = x.shape
    n_state = A.shape[1]
    out = torch.empty((batch, dim), dtype=x.dtype, device=x.device)
    if out.numel() == 0:
        return out
    block_m, num_warps = _block_config(n_state)
    z_strides = z.stride() if z is not None else (0, 0)
    launch(
        _state_update_kernel, (triton.cdiv(dim, block_m), batch), state, x, dt, A, B, C, _or(D, x), _or(z, x), _or(dt_bias, x), out,
        dim, dim // B.shape[1],
        *state.stride(), *x.stride(), *dt.stride(), *A.stride(),
        *B.stride(), *C.stride(), *z_strides, *out.stride(),
        N=n_state, BLOCK_M=block_m, BLOCK_N=triton.next_power_of_2(n_state),
        HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=dt_bias is not None, SOFTPLUS=dt_softplus,
        num_warps=num_warps,
    )
    return out


@torch.library.custom_op("mamba_bio_audio::selective_state_update", mutates_args=("state",))
def selective_state_update_op(state: Tensor, x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor,
                              D: Optional[Tensor], z: Optional[Tensor], dt_bias: Optional[Tensor],
                              dt_softplus: bool) -> Tensor:
    return state_update(state, x, dt, A, B, C, D, z, dt_bias, dt_softplus)


@selective_state_update_op.register_fake
def _(state, x, dt, A, B, C, D, z, dt_bias, dt_softplus):
    return x.new_empty(x.shape)


def selective_state_update_triton(state, x, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False):
    """One decode step in place on ``state``. Returns out (batch, dim) in x.dtype."""
    B3 = B.unsqueeze(1) if B.dim() == 2 else B
    C3 = C.unsqueeze(1) if C.dim() == 2 else C
    return selective_state_update_op(state, x, dt, A, B3, C3, D, z, dt_bias, bool(dt_softplus))
