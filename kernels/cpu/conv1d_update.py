"""CPU decode step of the causal depthwise conv: the reference's maths as one multiply-and-sum over unfolded
frames. For the few-tap windows of a decode step this avoids ``F.conv1d``'s fixed cost (about 50 us a call on
CPU, against 5 to 15 us here), which is most of the conv's share of CPU sampling time."""
from __future__ import annotations

import torch

from mamba_bio_audio.kernels.reference import _apply_activation


def causal_conv1d_update_cpu(x, conv_state, weight, bias=None, activation=None):
    """Same signature and results as ``reference.causal_conv1d_update_ref``.

    x (batch, dim) or (batch, dim, L_new); conv_state (batch, dim, S >= W-1), the last S inputs (newest last),
    updated in place; weight (dim, W); bias (dim,). Sums in fp32. Returns out shaped like x, in x.dtype.
    """
    squeeze = x.dim() == 2
    x3 = x.unsqueeze(-1) if squeeze else x
    width, state_len, steps = weight.shape[-1], conv_state.shape[-1], x3.shape[-1]
    x_cat = torch.cat([conv_state.to(x3.dtype), x3], dim=-1)
    frames = x_cat[..., x_cat.shape[-1] - (steps + width - 1):].float().unfold(-1, width, 1)  # (B, D, L_new, W)
    out = (frames * weight.float().unsqueeze(1)).sum(-1)
    if bias is not None:
        out = out + bias.float().unsqueeze(-1)
    out = _apply_activation(out, activation).to(x.dtype)
    conv_state.copy_(x_cat[..., x_cat.shape[-1] - state_len:])
    return out.squeeze(-1) if squeeze else out
