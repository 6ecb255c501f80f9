"""Causal depthwise conv1d and its decode step in pure PyTorch: the oracle of the ``cpu`` (decode step) and
``triton`` backends beside this file, whose functions have the signatures of :func:`causal_conv1d_ref` and
:func:`causal_conv1d_update_ref`.

x (batch, dim, L) (or (batch, dim) for a single decode step), any float dtype; weight (dim, W), W in 2..4;
bias (dim,); initial_states (batch, dim, W-1); conv_state (batch, dim, S >= W-1). Sums in fp32, outputs in x.dtype.

The signatures are upstream causal-conv1d's ``causal_conv1d_ref`` and ``causal_conv1d_update_ref``
(``causal_conv1d/causal_conv1d_interface.py``), in its order, less what we do not support: ``final_states_out`` is
accepted by name and refused when given (:func:`refuse_final_states_out`), ``cache_seqlens`` is not taken (the
public ``ops.causal_conv1d_update`` refuses it).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["causal_conv1d_ref", "causal_conv1d_update_ref", "apply_activation", "decode_step",
           "refuse_final_states_out"]


def refuse_final_states_out(final_states_out) -> None:
    """ValueError unless ``final_states_out`` is None: the final states come back as a new tensor instead."""
    if final_states_out is not None:
        raise ValueError("final_states_out is not supported: pass return_final_states=True and use the returned "
                         "final states (a new tensor)")


def apply_activation(x, activation):
    """SiLU of x for ``activation`` 'silu' or 'swish', x itself for None."""
    if activation in ("silu", "swish"):
        return F.silu(x)
    if activation is None:
        return x
    raise ValueError(f"activation must be None, 'silu' or 'swish', got {activation!r}")


def _depthwise(window, weight, bias):
    """window (batch, dim, T + W - 1) fp32 -> bias + valid depthwise conv, (batch, dim, T) fp32."""
    return F.conv1d(window, weight.float().unsqueeze(1), None if bias is None else bias.float(), groups=window.shape[1])


def causal_conv1d_ref(x, weight, bias=None, initial_states=None, return_final_states=False, final_states_out=None,
                      activation=None):
    """Causal depthwise conv: out[b, d, t] = act(bias[d] + Σ_k w[d, k] x[b, d, t - (W-1) + k]).

    x (batch, dim, L); weight (dim, W); bias (dim,); initial_states (batch, dim, W-1) are the inputs before t=0
    (zeros when None). Returns out (batch, dim, L) in x.dtype, and the final states (batch, dim, W-1) (the last
    W-1 inputs) when ``return_final_states``. ``final_states_out`` must be None.
    """
    refuse_final_states_out(final_states_out)
    initial_state = initial_states
    dtype = x.dtype
    width = weight.shape[-1]
    xf = x.float()
    if initial_state is None:
        x_cat = F.pad(xf, (width - 1, 0))
    else:
        x_cat = torch.cat([initial_state.float(), xf], dim=-1)
    out = apply_activation(_depthwise(x_cat, weight, bias), activation).to(dtype)
    if return_final_states:
        # a copy, not a view: a view would keep the whole padded input alive across chunks
        return out, x_cat[..., x_cat.shape[-1] - (width - 1):].to(dtype, copy=True)
    return out


def decode_step(x, conv_state, weight, bias, activation, conv):
    """A decode step around ``conv(window, weight, bias)``, which maps the fp32 window (batch, dim, L_new + W - 1)
    to the pre-activation (batch, dim, L_new) fp32. Shifts x into ``conv_state`` in place; returns out shaped like
    x, in x.dtype."""
    squeeze = x.dim() == 2
    x3 = x.unsqueeze(-1) if squeeze else x
    width = weight.shape[-1]
    state_len = conv_state.shape[-1]
    x_cat = torch.cat([conv_state.to(x3.dtype), x3], dim=-1)
    window = x_cat[..., x_cat.shape[-1] - (x3.shape[-1] + width - 1):].float()
    out = apply_activation(conv(window, weight, bias), activation).to(x.dtype)
    conv_state.copy_(x_cat[..., x_cat.shape[-1] - state_len:])
    return out.squeeze(-1) if squeeze else out


def causal_conv1d_update_ref(x, conv_state, weight, bias=None, activation=None):
    """Decode step(s) of the causal conv, updating ``conv_state`` (batch, dim, S >= W-1) in place.

    x (batch, dim) or (batch, dim, L_new). The state holds the last S inputs, newest last. Returns out shaped like x.
    """
    return decode_step(x, conv_state, weight, bias, activation, _depthwise)
