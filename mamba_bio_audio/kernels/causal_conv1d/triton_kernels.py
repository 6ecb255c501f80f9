"""Triton kernels of the causal depthwise conv1d (widths 2-4, optional SiLU): forward, backward and decode update,
and their launchers; ``triton.py`` makes them custom ops. PyTorch twins: ``reference.causal_conv1d_ref`` and
``reference.causal_conv1d_update_ref``.

out[b, d, t] = act(bias[d] + Σ_k w[d, k] · x[b, d, t - (W-1) + k]), where the W-1 inputs before t = 0 come from
``initial_state`` (batch, dim, W-1) or are zero. x (batch, dim, L) fp32/fp16/bf16 may have any strides
(L-contiguous or channel-last); weight (dim, W); bias (dim,). All arithmetic is fp32 and outputs are stored in
x's dtype. The kernels are memory-bound: each program handles a (BLOCK_D, BLOCK_L) tile and reloads the W shifted
views of x from cache.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from mamba_bio_audio.kernels._triton_common import launch
from mamba_bio_audio.kernels._triton_common import or_placeholder as _or


@triton.jit
def _pre_activation(x_row, init_row, s_x_l, s_i_l, w_row, s_w_k, bias, pos, mask_d, L,
                    W: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_P: tl.constexpr,
                    HAS_INIT: tl.constexpr, HAS_BIAS: tl.constexpr):
    """bias + Σ_k w[:, k] x[:, pos - (W-1) + k] for a (BLOCK_D, BLOCK_P) tile of output positions ``pos``."""
    acc = tl.zeros([BLOCK_D, BLOCK_P], dtype=tl.float32)
    if HAS_BIAS:
        acc += bias[:, None]
    for k in tl.static_range(W):
        p = pos - (W - 1) + k
        xv = tl.load(x_row + p[None, :] * s_x_l, mask=mask_d[:, None] & ((p >= 0) & (p < L))[None, :], other=0.0)
        xv = xv.to(tl.float32)
        if HAS_INIT:
            iv = tl.load(init_row + (p + (W - 1))[None, :] * s_i_l,
                         mask=mask_d[:, None] & ((p < 0) & (p >= -(W - 1)))[None, :], other=0.0)
            xv += iv.to(tl.float32)
        wk = tl.load(w_row + k * s_w_k, mask=mask_d, other=0.0).to(tl.float32)
        acc += wk[:, None] * xv
    return acc


@triton.jit
def _input_grad(x_row, init_row, dout_row, s_x_l, s_i_l, s_o_l, w_row, s_w_k, bias, pos, mask_d, L,
                W: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_P: tl.constexpr,
                HAS_INIT: tl.constexpr, HAS_BIAS: tl.constexpr, SILU: tl.constexpr):
    """d loss / d input at positions ``pos`` (negative positions are the initial state), and the gradient of the
    pre-activation at ``pos`` itself (for dweight and dbias)."""
    dx = tl.zeros([BLOCK_D, BLOCK_P], dtype=tl.float32)
    dpre_here = tl.zeros([BLOCK_D, BLOCK_P], dtype=tl.float32)
    for s in tl.static_range(W):
        o = pos + s  # output position that reads this input with weight index W-1-s
        valid = mask_d[:, None] & ((o >= 0) & (o < L))[None, :]
        g = tl.load(dout_row + o[None, :] * s_o_l, mask=valid, other=0.0).to(tl.float32)
        if SILU:
            pre = _pre_activation(x_row, init_row, s_x_l, s_i_l, w_row, s_w_k, bias, o, mask_d, L,
                                  W, BLOCK_D, BLOCK_P, HAS_INIT, HAS_BIAS)
            sig = tl.sigmoid(pre)
            g = g * sig * (1.0 + pre * (1.0 - sig))
        g = tl.where(valid, g, 0.0)
        wk = tl.load(w_row + (W - 1 - s) * s_w_k, mask=mask_d, other=0.0).to(tl.float32)
        dx += wk[:, None] * g
        if s == 0:
            dpre_here = g
    return dx, dpre_here


@triton.jit
def _conv_fwd_kernel(
    x_ptr, w_ptr, bias_ptr, init_ptr, out_ptr,
    dim, L,
    s_x_b, s_x_d, s_x_l, s_w_d, s_w_k, s_i_b, s_i_d, s_i_l,
    W: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr,
    HAS_BIAS: tl.constexpr, HAS_INIT: tl.constexpr, SILU: tl.constexpr,
):
    pid_l = tl.program_id(0)
    pid_d = tl.program_id(1)
    pid_b = tl.program_id(2).to(tl.int64)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    pos = pid_l * BLOCK_L + tl.arange(0, BLOCK_L)
    mask_d = offs_d < dim
    x_row = x_ptr + pid_b * s_x_b + offs_d[:, None] * s_x_d
    init_row = init_ptr + pid_b * s_i_b + offs_d[:, None] * s_i_d
    bias = 0.0
    if HAS_BIAS:
        bias = tl.load(bias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    pre = _pre_activation(x_row, init_row, s_x_l, s_i_l, w_ptr + offs_d * s_w_d, s_w_k, bias, pos, mask_d, L,
                          W, BLOCK_D, BLOCK_L, HAS_INIT, HAS_BIAS)
    if SILU:
        pre = pre * tl.sigmoid(pre)
    out_off = (pid_b * dim + offs_d[:, None]) * L + pos[None, :]
    tl.store(out_ptr + out_off, pre, mask=mask_d[:, None] & (pos < L)[None, :])


@triton.jit
def _conv_bwd_kernel(
    x_ptr, w_ptr, bias_ptr, init_ptr, dout_ptr, dx_ptr, dw_ptr, dbias_ptr, dinit_ptr,
    dim, L, n_lblocks,
    s_x_b, s_x_d, s_x_l, s_w_d, s_w_k, s_i_b, s_i_d, s_i_l,
    W: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr, BLOCK_W: tl.constexpr,
    HAS_BIAS: tl.constexpr, HAS_INIT: tl.constexpr, SILU: tl.constexpr,
):
    pid_l = tl.program_id(0)
    pid_d = tl.program_id(1)
    pid_b = tl.program_id(2).to(tl.int64)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    pos = pid_l * BLOCK_L + tl.arange(0, BLOCK_L)
    mask_d = offs_d < dim
    x_row = x_ptr + pid_b * s_x_b + offs_d[:, None] * s_x_d
    init_row = init_ptr + pid_b * s_i_b + offs_d[:, None] * s_i_d
    io_row = (pid_b * dim + offs_d[:, None]) * L  # dout and dx are contiguous (batch, dim, L)
    w_row = w_ptr + offs_d * s_w_d
    bias = 0.0
    if HAS_BIAS:
        bias = tl.load(bias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)

    dx, dpre = _input_grad(x_row, init_row, dout_ptr + io_row, s_x_l, s_i_l, 1, w_row, s_w_k, bias, pos, mask_d, L,
                           W, BLOCK_D, BLOCK_L, HAS_INIT, HAS_BIAS, SILU)
    tl.store(dx_ptr + io_row + pos[None, :], dx, mask=mask_d[:, None] & (pos < L)[None, :])

    # per-(batch, L-block) partials of dweight and dbias, summed in PyTorch
    part = (pid_b * n_lblocks + pid_l) * dim + offs_d
    for k in tl.static_range(W):
        p = pos - (W - 1) + k
        xv = tl.load(x_row + p[None, :] * s_x_l, mask=mask_d[:, None] & ((p >= 0) & (p < L))[None, :], other=0.0)
        xv = xv.to(tl.float32)
        if HAS_INIT:
            iv = tl.load(init_row + (p + (W - 1))[None, :] * s_i_l,
                         mask=mask_d[:, None] & ((p < 0) & (p >= -(W - 1)))[None, :], other=0.0)
            xv += iv.to(tl.float32)
        tl.store(dw_ptr + part * W + k, tl.sum(dpre * xv, axis=1), mask=mask_d)
    tl.store(dbias_ptr + part, tl.sum(dpre, axis=1), mask=mask_d)

    if HAS_INIT:
        if pid_l == 0:
            j = tl.arange(0, BLOCK_W)
            dinit, _ = _input_grad(x_row, init_row, dout_ptr + io_row, s_x_l, s_i_l, 1, w_row, s_w_k, bias,
                                   j - (W - 1), mask_d, L, W, BLOCK_D, BLOCK_W, HAS_INIT, HAS_BIAS, SILU)
            dinit_off = (pid_b * dim + offs_d[:, None]) * (W - 1) + j[None, :]
            tl.store(dinit_ptr + dinit_off, dinit, mask=mask_d[:, None] & (j < W - 1)[None, :])


@triton.jit
def _conv_update_kernel(
    x_ptr, state_ptr, w_ptr, bias_ptr, out_ptr,
    dim, T, S,
    s_x_b, s_x_d, s_x_l, s_s_b, s_s_d, s_s_l, s_w_d, s_w_k, s_o_b, s_o_d, s_o_l,
    W: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_S: tl.constexpr,
    HAS_BIAS: tl.constexpr, SILU: tl.constexpr,
):
    pid_d = tl.program_id(0)
    pid_b = tl.program_id(1).to(tl.int64)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    mask_d = offs_d < dim
    x_row = x_ptr + pid_b * s_x_b + offs_d[:, None] * s_x_d
    s_row = state_ptr + pid_b * s_s_b + offs_d[:, None] * s_s_d

    # out[t] reads positions S + t - (W-1) + k of cat(state, x)
    t = tl.arange(0, BLOCK_T)
    acc = tl.zeros([BLOCK_D, BLOCK_T], dtype=tl.float32)
    if HAS_BIAS:
        acc += tl.load(bias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)[:, None]
    for k in tl.static_range(W):
        q = S + t - (W - 1) + k
        from_state = tl.load(s_row + q[None, :] * s_s_l, mask=mask_d[:, None] & ((q < S) & (t < T))[None, :], other=0.0)
        from_x = tl.load(x_row + (q - S)[None, :] * s_x_l, mask=mask_d[:, None] & ((q >= S) & (t < T))[None, :],
                         other=0.0)
        wk = tl.load(w_ptr + offs_d * s_w_d + k * s_w_k, mask=mask_d, other=0.0).to(tl.float32)
        acc += wk[:, None] * (from_state.to(tl.float32) + from_x.to(tl.float32))
    if SILU:
        acc = acc * tl.sigmoid(acc)
    tl.store(out_ptr + pid_b * s_o_b + offs_d[:, None] * s_o_d + t[None, :] * s_o_l, acc,
             mask=mask_d[:, None] & (t < T)[None, :])

    # new state[j] = cat(state, x)[j + T]: read everything, then write in place
    j = tl.arange(0, BLOCK_S)
    q = j + T
    keep = tl.load(s_row + q[None, :] * s_s_l, mask=mask_d[:, None] & ((q < S) & (j < S))[None, :], other=0.0)
    new = tl.load(x_row + (q - S)[None, :] * s_x_l, mask=mask_d[:, None] & ((q >= S) & (j < S))[None, :], other=0.0)
    tl.debug_barrier()
    tl.store(s_row + j[None, :] * s_s_l, tl.where((q < S)[None, :], keep, new.to(keep.dtype)),
             mask=mask_d[:, None] & (j < S)[None, :])


FWD_TILE, BWD_TILE = 2048, 1024  # elements of a (BLOCK_D, BLOCK_L) tile


def _blocks(dim: int, length: int, tile: int = FWD_TILE) -> tuple[int, int]:
    """(BLOCK_D, BLOCK_L): BLOCK_L = next_pow2(L) clamped to 16..256, BLOCK_D = tile / BLOCK_L (at most next_pow2(dim)).
    The backward takes half the forward's tile: it recomputes W pre-activations per input, and at 2048 it needs 186
    registers on sm_80 (triton 3.9) and spills with triton 3.6's ptxas (``bench kernels``)."""
    block_l = min(256, max(16, triton.next_power_of_2(length)))
    block_d = min(max(1, tile // block_l), triton.next_power_of_2(dim))
    return block_d, block_l


def _init_strides(initial_state):
    return tuple(initial_state.stride()) if initial_state is not None else (0, 0, 0)


def conv_forward(x, weight, bias, initial_state, silu: bool):
    """x (batch, dim, L) any strides; weight (dim, W); bias (dim,) or None; initial_state (batch, dim, W-1) or None.
    Returns out (batch, dim, L) contiguous in x.dtype. Grid: (cdiv(L, BLOCK_L), cdiv(dim, BLOCK_D), batch)."""
    batch, dim, length = x.shape
    width = weight.shape[1]
    out = torch.empty((batch, dim, length), dtype=x.dtype, device=x.device)
    if out.numel() == 0:
        return out
    block_d, block_l = _blocks(dim, length)
    grid = (triton.cdiv(length, block_l), triton.cdiv(dim, block_d), batch)
    launch(
        _conv_fwd_kernel, grid, x, weight, _or(bias, weight), _or(initial_state, x), out, dim, length,
        *x.stride(), *weight.stride(), *_init_strides(initial_state),
        W=width, BLOCK_D=block_d, BLOCK_L=block_l,
        HAS_BIAS=bias is not None, HAS_INIT=initial_state is not None, SILU=silu,
    )
    return out


def conv_backward(x, weight, bias, initial_state, dout, silu: bool):
    """Gradients of :func:`conv_forward` (the activation is recomputed). Returns dx (x.dtype), dweight, dbias
    (weight's dtype; dbias empty (0,) without bias) and dinitial_state (empty (0,) without it).
    dweight/dbias are written as per-(batch, L-block) fp32 partials and summed in PyTorch (deterministic)."""
    batch, dim, length = x.shape
    width = weight.shape[1]
    dout = dout.contiguous()
    block_d, block_l = _blocks(dim, length, BWD_TILE)
    n_lblocks = triton.cdiv(length, block_l)
    dx = torch.empty((batch, dim, length), dtype=x.dtype, device=x.device)
    dw = torch.zeros((batch * n_lblocks, dim, width), dtype=torch.float32, device=x.device)
    dbias = torch.zeros((batch * n_lblocks, dim), dtype=torch.float32, device=x.device)
    dinit = (torch.zeros((batch, dim, width - 1), dtype=initial_state.dtype, device=x.device)
             if initial_state is not None else x.new_empty(0))
    if dx.numel():
        grid = (n_lblocks, triton.cdiv(dim, block_d), batch)
        launch(
            _conv_bwd_kernel, grid,
            x, weight, _or(bias, weight), _or(initial_state, x), dout, dx, dw, dbias, dinit, dim, length, n_lblocks,
            *x.stride(), *weight.stride(), *_init_strides(initial_state),
            W=width, BLOCK_D=block_d, BLOCK_L=block_l, BLOCK_W=triton.next_power_of_2(width - 1),
            HAS_BIAS=bias is not None, HAS_INIT=initial_state is not None, SILU=silu,
        )
    dbias = dbias.sum(0).to(bias.dtype) if bias is not None else x.new_empty(0)
    return dx, dw.sum(0).to(weight.dtype), dbias, dinit


def conv_update(x, conv_state, weight, bias, silu: bool):
    """Decode step(s): x (batch, dim, T), conv_state (batch, dim, S >= W-1) updated in place (any strides).
    Returns out (batch, dim, T) in x.dtype. Grid: (cdiv(dim, BLOCK_D), batch); no autotuning (in-place)."""
    batch, dim, steps = x.shape
    width = weight.shape[1]
    state_len = conv_state.shape[2]
    out = torch.empty((batch, dim, steps), dtype=x.dtype, device=x.device)
    if out.numel() == 0:
        return out
    block_d = min(64, triton.next_power_of_2(dim))
    grid = (triton.cdiv(dim, block_d), batch)
    launch(
        _conv_update_kernel, grid, x, conv_state, weight, _or(bias, weight), out, dim, steps, state_len,
        *x.stride(), *conv_state.stride(), *weight.stride(), *out.stride(),
        W=width, BLOCK_D=block_d, BLOCK_T=triton.next_power_of_2(steps),
        BLOCK_S=triton.next_power_of_2(state_len), HAS_BIAS=bias is not None, SILU=silu,
    )
    return out
