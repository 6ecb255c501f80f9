"""Fused Triton kernels behind the ``triton`` backend of :mod:`mamba_bio_audio.ops`.

Reach them through the op API (which validates arguments); the functions here take the same arguments as their
``*_ref`` twins in ``kernels/reference.py`` and run on CUDA tensors, or on CPU tensors under ``TRITON_INTERPRET=1``
(Triton's interpreter, for CI). Every call goes through a ``torch.library`` custom op (``custom_ops.py``), so
``torch.compile`` keeps them in its graph and autograd uses the fused backward kernels.

Deterministic mode: the scan backward reduces dB and dC across channel blocks with atomic adds by default (fastest,
not bitwise reproducible on a GPU). ``deterministic=True``, or ``MBA_DETERMINISTIC=1`` in the environment, or
``torch.use_deterministic_algorithms(True)``, writes per-channel-block partials and sums them in a fixed order
instead: two runs give identical bits. Every other reduction in these kernels is deterministic in both modes.
"""
from __future__ import annotations

import os

import torch

if os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes"):
    from mamba_bio_audio.kernels.triton._interpreter import patch_interpreter_index

    patch_interpreter_index()

from mamba_bio_audio.kernels.triton import custom_ops  # noqa: E402  (registers torch.ops.mamba_bio_audio.*)
from mamba_bio_audio.kernels.triton.selective_scan import scan_config  # noqa: E402

__all__ = ["selective_scan", "causal_conv1d", "causal_conv1d_update", "rms_norm", "selective_state_update",
           "deterministic_default"]


def deterministic_default() -> bool:
    """True when ``MBA_DETERMINISTIC=1`` or torch's deterministic algorithms are on."""
    return os.environ.get("MBA_DETERMINISTIC") == "1" or torch.are_deterministic_algorithms_enabled()


def _l_contiguous(t):
    """The kernels need stride 1 along the last (L or N) dim; other strides are passed to them."""
    return t if t is None or t.stride(-1) == 1 else t.contiguous()


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                   initial_state=None, return_last_state=False, *, chunk_size=None, block_d=None,
                   deterministic=None):
    """Fused selective scan; shapes and semantics of ``reference.selective_scan_ref``.

    u, delta, z (batch, d_inner, L) fp32/fp16/bf16; A (d_inner, N) fp32; B, C (batch, N, L) or (batch, G, N, L);
    D, delta_bias (d_inner,) fp32; initial_state (batch, d_inner, N) fp32. Returns out (batch, d_inner, L) in
    u.dtype [, last_state (batch, d_inner, N) fp32]; differentiable in every tensor, through last_state too.
    ``chunk_size`` (power of two) and ``block_d`` override the launch configuration (``scan_config``);
    ``deterministic`` overrides :func:`deterministic_default` for the backward.
    """
    B4 = B.unsqueeze(1) if B.dim() == 3 else B
    C4 = C.unsqueeze(1) if C.dim() == 3 else C
    d_inner, n_state = A.shape
    block_d, chunk = scan_config(d_inner, B4.shape[1], n_state, u.shape[-1], chunk_size, block_d)
    inputs = (u, delta, A, B4, C4, D, z, delta_bias, initial_state)
    save_states = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in inputs)
    out, last_state, _ = custom_ops.selective_scan_fwd(
        _l_contiguous(u), _l_contiguous(delta), A.contiguous(), _l_contiguous(B4), _l_contiguous(C4),
        None if D is None else D.contiguous(), _l_contiguous(z),
        None if delta_bias is None else delta_bias.contiguous(), initial_state,
        bool(delta_softplus), chunk, block_d, save_states,
        deterministic_default() if deterministic is None else bool(deterministic),
    )
    return (out, last_state) if return_last_state else out


def causal_conv1d(x, weight, bias=None, activation=None, initial_state=None, return_final_state=False):
    """Causal depthwise conv1d; semantics of ``reference.causal_conv1d_ref``. x (batch, dim, L) any strides;
    weight (dim, W), W in 2..4; bias (dim,); initial_state (batch, dim, W-1). Returns out (batch, dim, L) in
    x.dtype [, final_state (batch, dim, W-1), a new tensor, differentiable]."""
    out = custom_ops.causal_conv1d_fwd(x, weight, bias, initial_state, activation in ("silu", "swish"))
    if not return_final_state:
        return out
    keep = weight.shape[1] - 1
    length = x.shape[-1]
    tail = x[..., max(length - keep, 0):]
    if length < keep:
        before = initial_state if initial_state is not None else x.new_zeros(x.shape[0], x.shape[1], keep)
        tail = torch.cat([before[..., length:].to(x.dtype), tail], dim=-1)
    return out, tail.clone(memory_format=torch.contiguous_format)


def causal_conv1d_update(x, conv_state, weight, bias=None, activation=None):
    """Decode step(s) of the causal conv; semantics of ``reference.causal_conv1d_update_ref``. x (batch, dim) or
    (batch, dim, L_new); conv_state (batch, dim, S >= W-1) updated in place. Returns out shaped like x."""
    x3 = x.unsqueeze(-1) if x.dim() == 2 else x
    out = custom_ops.causal_conv1d_update(x3, conv_state, weight, bias, activation in ("silu", "swish"))
    return out.squeeze(-1) if x.dim() == 2 else out


def rms_norm(x, weight, residual=None, eps=1e-5, prenorm=False, residual_in_fp32=False):
    """(Residual add +) RMSNorm over the last dim; semantics of ``reference.rms_norm_ref``. x, residual
    (..., hidden); weight (hidden,). Returns normed in x.dtype, or (normed, residual_out) when ``prenorm``
    (residual_out fp32 with ``residual_in_fp32``, else x.dtype)."""
    shape = x.shape
    x2 = _l_contiguous(x.reshape(-1, shape[-1]))
    r2 = None if residual is None else _l_contiguous(residual.reshape(-1, shape[-1]))
    store_residual = residual is not None or (residual_in_fp32 and x.dtype != torch.float32)
    out, residual_out, _ = custom_ops.rms_norm_fwd(x2, weight.contiguous(), r2, float(eps), store_residual,
                                                   bool(residual_in_fp32))
    out = out.view(shape)
    if not prenorm:
        return out
    return out, residual_out.view(shape) if store_residual else x


def selective_state_update(state, x, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False):
    """One decode step in place on ``state`` (batch, dim, N); semantics of ``reference.selective_state_update_ref``.
    x, dt, z (batch, dim); A (dim, N); B, C (batch, N) or (batch, G, N); D, dt_bias (dim,). Returns out (batch, dim)
    in x.dtype."""
    B3 = B.unsqueeze(1) if B.dim() == 2 else B
    C3 = C.unsqueeze(1) if C.dim() == 2 else C
    return custom_ops.selective_state_update(state, x, dt, A, B3, C3, D, z, dt_bias, bool(dt_softplus))
