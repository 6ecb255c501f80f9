"""One decode step of the selective scan in pure PyTorch: the oracle of the ``triton`` backend beside this file,
whose function has the signature of :func:`selective_state_update_ref`.

state (batch, dim, N) fp32, updated in place; x, dt, z (batch, dim); A (dim, N) fp32; B, C (batch, N) or
(batch, G, N) with dim % G == 0; D, dt_bias (dim,) fp32. Arithmetic in fp32, out in x.dtype.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["selective_state_update_ref"]


def selective_state_update_ref(state, x, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False):
    """One recurrent step of the selective scan, updating ``state`` (batch, dim, N) fp32 in place.

    x, dt, z (batch, dim); A (dim, N); B, C (batch, N) or (batch, G, N); D, dt_bias (dim,).
    Returns out (batch, dim) in x.dtype.
    """
    dim = x.shape[1]
    dt_f = dt.float()
    if dt_bias is not None:
        dt_f = dt_f + dt_bias.float()
    if dt_softplus:
        dt_f = F.softplus(dt_f)
    if B.dim() == 3:
        B = B.repeat_interleave(dim // B.shape[1], dim=1)
        C = C.repeat_interleave(dim // C.shape[1], dim=1)
    else:
        B = B.unsqueeze(1)
        C = C.unsqueeze(1)
    d_a = torch.exp(dt_f.unsqueeze(-1) * A.float())
    d_b = dt_f.unsqueeze(-1) * B.float()
    new_state = state.float() * d_a + d_b * x.float().unsqueeze(-1)
    state.copy_(new_state)
    out = (new_state * C.float()).sum(-1)
    if D is not None:
        out = out + x.float() * D.float()
    if z is not None:
        out = out * F.silu(z.float())
    return out.to(x.dtype)
