"""CPU backend of the causal conv.

* :func:`causal_conv1d_cpu`, the full conv: on x stored as (batch, L, dim) (the Mamba mixer's CPU layout, a linear
  layer's output) a sum of W shifted multiply-adds along L, each vectorised over the contiguous channels, with a
  hand-written backward, so neither direction copies a (B, L, D) ↔ (B, D, L) transpose; x laid out otherwise
  goes to the reference's ``F.conv1d``.
* :func:`causal_conv1d_update_cpu`, the decode step: one multiply-and-sum over unfolded frames. For the few-tap
  windows of a decode step this avoids ``F.conv1d``'s fixed cost (about 50 us a call on CPU, against 5 to 15 us
  here), which is most of the conv's share of CPU sampling time.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from mamba_bio_audio.kernels.causal_conv1d.reference import (apply_activation, causal_conv1d_ref, decode_step,
                                                             refuse_final_states_out)

__all__ = ["causal_conv1d_cpu", "causal_conv1d_update_cpu"]


def _channels_last(x) -> bool:
    """x (batch, dim, L) stored with the channels innermost (dim stride 1)."""
    return x.shape[1] > 1 and x.shape[2] > 1 and x.stride(1) == 1


class _CausalConvTaps(torch.autograd.Function):
    """out[:, t] = act(bias + Σ_k taps[k] · padded[:, t + k]) over padded (batch, W - 1 + L, dim) fp32 contiguous,
    taps (W, dim), bias (dim,) or None; act SiLU or none. A hand-written backward: one gradient buffer written
    in place per tap (autograd's slices would each allocate and zero a padded-size tensor)."""

    @staticmethod
    def forward(ctx, padded, taps, bias, silu: bool):
        width = taps.shape[0]
        length = padded.shape[1] - width + 1
        pre = padded[:, :length] * taps[0] if bias is None else torch.addcmul(bias, padded[:, :length], taps[0])
        for k in range(1, width):
            pre.addcmul_(padded[:, k:k + length], taps[k])
        ctx.save_for_backward(padded, taps, pre if silu else None)
        ctx.has_bias, ctx.silu = bias is not None, silu
        return F.silu(pre) if silu else pre

    @staticmethod
    def backward(ctx, grad):
        padded, taps, pre = ctx.saved_tensors
        width = taps.shape[0]
        length = padded.shape[1] - width + 1
        if ctx.silu:
            grad = torch.ops.aten.silu_backward(grad, pre)  # one fused pass
        dpadded = torch.zeros_like(padded)
        for k in range(width):
            dpadded[:, k:k + length].addcmul_(grad, taps[k])
        dtaps = torch.stack([(grad * padded[:, k:k + length]).sum((0, 1)) for k in range(width)])
        return dpadded, dtaps, grad.sum((0, 1)) if ctx.has_bias else None, None


def causal_conv1d_cpu(x, weight, bias=None, initial_states=None, return_final_states=False, final_states_out=None,
                      activation=None):
    """Same signature and results as ``reference.causal_conv1d_ref``: x (batch, dim, L), weight (dim, W), bias
    (dim,), initial_states (batch, dim, W-1); sums in fp32. Returns out (batch, dim, L) in x.dtype, stored as
    (batch, L, dim) when x is, and the final states (batch, dim, W-1) (contiguous) when asked."""
    refuse_final_states_out(final_states_out)
    if not _channels_last(x):
        return causal_conv1d_ref(x, weight, bias, initial_states, return_final_states, activation=activation)
    if activation not in (None, "silu", "swish"):
        apply_activation(x, activation)  # raises the reference's error
    batch, dim, _ = x.shape
    width = weight.shape[-1]
    rows = x.transpose(1, 2).float()  # (batch, L, dim), channels contiguous
    head = (rows.new_zeros(batch, width - 1, dim) if initial_states is None
            else initial_states.transpose(1, 2).float())
    padded = torch.cat([head, rows], dim=1)  # (batch, W - 1 + L, dim)
    out = _CausalConvTaps.apply(padded, weight.float().t().contiguous(), None if bias is None else bias.float(),
                             activation is not None)
    out = out.to(x.dtype).transpose(1, 2)
    if return_final_states:
        final = padded[:, padded.shape[1] - (width - 1):].transpose(1, 2)
        return out, final.to(x.dtype).clone(memory_format=torch.contiguous_format)
    return out


def _unfolded(window, weight, bias):
    """window (batch, dim, T + W - 1) fp32 -> bias + Σ_k w[:, k] window[..., t + k], (batch, dim, T) fp32."""
    out = (window.unfold(-1, weight.shape[-1], 1) * weight.float().unsqueeze(1)).sum(-1)
    return out if bias is None else out + bias.float().unsqueeze(-1)


def causal_conv1d_update_cpu(x, conv_state, weight, bias=None, activation=None):
    """Same signature and results as ``reference.causal_conv1d_update_ref``.

    x (batch, dim) or (batch, dim, L_new); conv_state (batch, dim, S >= W-1), the last S inputs (newest last),
    updated in place; weight (dim, W); bias (dim,). Sums in fp32. Returns out shaped like x, in x.dtype.
    """
    return decode_step(x, conv_state, weight, bias, activation, _unfolded)
