"""Triton backend of (residual add +) RMSNorm: fused forward and backward kernels as torch custom ops.

:func:`rms_norm_triton` has the signature and semantics of ``reference.rms_norm_ref`` and runs on CUDA tensors, or
on CPU tensors under ``TRITON_INTERPRET=1``. x, residual (..., hidden) fp32/fp16/bf16; weight (hidden,).

Rows are the flattened leading dims of x (M, H), last dim contiguous. s = x + residual (fp32); out = s · rstd · w
with rstd = 1 / sqrt(mean(s²) + eps) in fp32. The post-add sum is the new residual (kept in fp32 with
``residual_in_fp32``, else in x's dtype); the backward recomputes ŝ = s · rstd from that stored residual (or from x
when there was nothing to add) and the saved rstd.

Custom ops (fake implementations for ``torch.compile``):
``mamba_bio_audio::rms_norm_fwd(x2d, weight, residual2d, eps, store_residual, residual_in_fp32) -> (out,
residual_out, rstd)``, differentiable through ``mamba_bio_audio::rms_norm_bwd``.
"""
from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl
from torch import Tensor

from mamba_bio_audio.kernels._triton_common import l_contiguous, launch, multiprocessor_count

__all__ = ["rms_norm_triton", "rms_norm_fwd", "rms_norm_bwd", "MAX_ROW_BYTES", "forward_op_args", "residual_out_dtype"]

MAX_ROW_BYTES = 65536
_F32 = torch.float32


@triton.jit
def _rms_fwd_kernel(
    x_ptr, res_ptr, w_ptr, out_ptr, res_out_ptr, rstd_ptr,
    H, eps, s_x, s_r, s_o, s_ro,
    BLOCK_H: tl.constexpr, HAS_RES: tl.constexpr, STORE_RES: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK_H)
    mask = cols < H
    s = tl.load(x_ptr + row * s_x + cols, mask=mask, other=0.0).to(tl.float32)
    if HAS_RES:
        s += tl.load(res_ptr + row * s_r + cols, mask=mask, other=0.0).to(tl.float32)
    if STORE_RES:
        tl.store(res_out_ptr + row * s_ro + cols, s, mask=mask)
    rstd = 1.0 / tl.sqrt(tl.sum(s * s, axis=0) / H + eps)
    tl.store(rstd_ptr + row, rstd)
    w = tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    tl.store(out_ptr + row * s_o + cols, s * rstd * w, mask=mask)


@triton.jit
def _rms_bwd_kernel(
    s_ptr, w_ptr, rstd_ptr, dy_ptr, dres_out_ptr, dx_ptr, dres_ptr, dw_ptr,
    M, H, s_s, s_dy, s_dro,
    BLOCK_H: tl.constexpr, HAS_DRES_OUT: tl.constexpr, HAS_RES: tl.constexpr,
):
    pid = tl.program_id(0)
    n_prog = tl.num_programs(0)
    cols = tl.arange(0, BLOCK_H)
    mask = cols < H
    w = tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    dw = tl.zeros([BLOCK_H], dtype=tl.float32)
    H64 = tl.cast(H, tl.int64)
    for row in range(pid, M, n_prog):
        s = tl.load(s_ptr + row * tl.cast(s_s, tl.int64) + cols, mask=mask, other=0.0).to(tl.float32)
        rstd = tl.load(rstd_ptr + row)
        dy = tl.load(dy_ptr + row * tl.cast(s_dy, tl.int64) + cols, mask=mask, other=0.0).to(tl.float32)
        s_hat = s * rstd
        wdy = w * dy
        dw += dy * s_hat
        ds = rstd * (wdy - s_hat * (tl.sum(s_hat * wdy, axis=0) / H))
        if HAS_DRES_OUT:
            ds += tl.load(dres_out_ptr + row * tl.cast(s_dro, tl.int64) + cols, mask=mask, other=0.0).to(tl.float32)
        tl.store(dx_ptr + row * H64 + cols, ds, mask=mask)
        if HAS_RES:
            tl.store(dres_ptr + row * H64 + cols, ds, mask=mask)
    tl.store(dw_ptr + pid * H + cols, dw, mask=mask)


def _block_h(hidden: int, dtype: torch.dtype) -> int:
    block = triton.next_power_of_2(hidden)
    if hidden * torch.finfo(dtype).bits // 8 > MAX_ROW_BYTES:
        raise ValueError(f"rms_norm keeps a row on chip: hidden={hidden} exceeds {MAX_ROW_BYTES} bytes per row")
    return block


def rms_forward(x, weight, residual, eps: float, residual_dtype: torch.dtype | None):
    """x, residual (M, H) with unit column stride; weight (H,). ``residual_dtype`` None: no residual output (x is
    the residual); otherwise the post-add sum is written in that dtype. Returns out (M, H) in x.dtype,
    residual_out (M, H) or empty (0,), rstd (M,) fp32. Grid: (M,), one row per program."""
    rows, hidden = x.shape
    block = _block_h(hidden, x.dtype)
    out = torch.empty((rows, hidden), dtype=x.dtype, device=x.device)
    rstd = torch.empty((rows,), dtype=torch.float32, device=x.device)
    store = residual_dtype is not None
    res_out = (torch.empty((rows, hidden), dtype=residual_dtype, device=x.device) if store
               else x.new_empty(0))
    if rows:
        launch(
            _rms_fwd_kernel, (rows,), x, x if residual is None else residual, weight, out, res_out, rstd,
            hidden, eps, x.stride(0), residual.stride(0) if residual is not None else 0, out.stride(0),
            res_out.stride(0) if store else 0,
            BLOCK_H=block, HAS_RES=residual is not None, STORE_RES=store,
            num_warps=min(max(block // 256, 1), 16),
        )
    return out, res_out, rstd


def _n_programs(rows: int, device: torch.device) -> int:
    return min(rows, multiprocessor_count(device))


def rms_backward(s, weight, rstd, dy, dres_out, has_residual: bool, x_dtype: torch.dtype,
                 residual_dtype: torch.dtype):
    """s: the stored post-add residual (or x), (M, H); dy, dres_out (M, H) or None. Returns dx (x_dtype), dweight
    (weight's dtype) and dresidual (residual_dtype; empty (0,) without residual). Grid: (min(M, #SM),), each program
    walks rows pid, pid + #programs, ... and writes one fp32 dweight partial row, summed in PyTorch."""
    rows, hidden = s.shape
    block = _block_h(hidden, s.dtype)
    dy = dy.contiguous()
    dres_out = dres_out.contiguous() if dres_out is not None else None
    n_prog = max(_n_programs(rows, s.device), 1)
    dx = torch.empty((rows, hidden), dtype=x_dtype, device=s.device)
    dres = (torch.empty((rows, hidden), dtype=residual_dtype, device=s.device) if has_residual
            else s.new_empty(0))
    dw = torch.zeros((n_prog, hidden), dtype=torch.float32, device=s.device)
    if rows:
        launch(
            _rms_bwd_kernel, (n_prog,), s, weight, rstd, dy, dy if dres_out is None else dres_out, dx, dres, dw,
            rows, hidden, s.stride(0), dy.stride(0), dres_out.stride(0) if dres_out is not None else 0,
            BLOCK_H=block, HAS_DRES_OUT=dres_out is not None, HAS_RES=has_residual,
            num_warps=min(max(block // 256, 1), 16),
        )
    return dx, dw.sum(0).to(weight.dtype), dres


@torch.library.custom_op("mamba_bio_audio::rms_norm_fwd", mutates_args=())
def rms_norm_fwd(x: Tensor, weight: Tensor, residual: Optional[Tensor], eps: float, store_residual: bool,
                 residual_in_fp32: bool) -> tuple[Tensor, Tensor, Tensor]:
    return rms_forward(x, weight, residual, eps, residual_out_dtype(x.dtype, store_residual, residual_in_fp32))


@rms_norm_fwd.register_fake
def _(x, weight, residual, eps, store_residual, residual_in_fp32):
    res_out = (x.new_empty(x.shape, dtype=_F32 if residual_in_fp32 else x.dtype) if store_residual
               else x.new_empty(0))
    return x.new_empty(x.shape), res_out, x.new_empty(x.shape[:1], dtype=_F32)


@torch.library.custom_op("mamba_bio_audio::rms_norm_bwd", mutates_args=())
def rms_norm_bwd(s: Tensor, weight: Tensor, rstd: Tensor, dy: Tensor, dres_out: Optional[Tensor],
                 has_residual: bool, x_dtype: torch.dtype, residual_dtype: torch.dtype,
                 ) -> tuple[Tensor, Tensor, Tensor]:
    return rms_backward(s, weight, rstd, dy, dres_out, has_residual, x_dtype, residual_dtype)


@rms_norm_bwd.register_fake
def _(s, weight, rstd, dy, dres_out, has_residual, x_dtype, residual_dtype):
    dres = s.new_empty(s.shape, dtype=residual_dtype) if has_residual else s.new_empty(0)
    return s.new_empty(s.shape, dtype=x_dtype), weight.new_empty(weight.shape), dres


def _setup_context(ctx, inputs, output):
    x, weight, residual, eps, store_residual, residual_in_fp32 = inputs
    _, res_out, rstd = output
    ctx.save_for_backward(res_out if store_residual else x, weight, rstd)
    ctx.store_residual = store_residual
    ctx.dtypes = (x.dtype, residual.dtype if residual is not None else None)
    ctx.set_materialize_grads(False)


def _backward(ctx, dy, dres_out, _drstd):
    s, weight, rstd = ctx.saved_tensors
    x_dtype, residual_dtype = ctx.dtypes
    if dy is None:
        dy = torch.zeros(s.shape, dtype=x_dtype, device=s.device)
    has_residual = residual_dtype is not None
    dx, dw, dres = rms_norm_bwd(s, weight, rstd, dy, dres_out if ctx.store_residual else None, has_residual,
                                x_dtype, residual_dtype if has_residual else x_dtype)
    return dx, dw, dres if has_residual else None, None, None, None


rms_norm_fwd.register_autograd(_backward, setup_context=_setup_context)


def rms_norm_triton(x, weight, bias, residual=None, *, eps=1e-6, prenorm=False, residual_in_fp32=False):
    """(Residual add +) RMSNorm over the last dim. Returns normed in x.dtype, or (normed, residual_out) when
    ``prenorm`` (residual_out fp32 with ``residual_in_fp32``, else x.dtype). ``bias`` must be None (the kernel
    has no bias term; the reference backend has)."""
    if bias is not None:
        raise ValueError("bias is not supported by the triton rms_norm kernel; pass None (or backend='reference')")
    shape = x.shape
    args = forward_op_args(x, weight, residual, eps, residual_in_fp32)
    store_residual = args[4]
    out, residual_out, _ = rms_norm_fwd(*args)
    out = out.view(shape)
    if not prenorm:
        return out
    return out, residual_out.view(shape) if store_residual else x


def forward_op_args(x, weight, residual, eps, residual_in_fp32) -> tuple:
    """The arguments :func:`rms_norm_triton` gives the ``rms_norm_fwd`` op: (x2d, weight, residual2d, eps,
    store_residual, residual_in_fp32). ``launch_plan.py`` calls it too."""
    x2 = l_contiguous(x.reshape(-1, x.shape[-1]))
    r2 = None if residual is None else l_contiguous(residual.reshape(-1, x.shape[-1]))
    store_residual = residual is not None or (residual_in_fp32 and x.dtype != torch.float32)
    return x2, weight.contiguous(), r2, float(eps), store_residual, bool(residual_in_fp32)


def residual_out_dtype(x_dtype: torch.dtype, store_residual: bool, residual_in_fp32: bool) -> torch.dtype | None:
    """The dtype of the op's residual output (None: not stored, x is the residual)."""
    return (_F32 if residual_in_fp32 else x_dtype) if store_residual else None
