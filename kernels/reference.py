"""Pure-PyTorch twins of every kernel: slow, exact, differentiable, and the oracle for every other backend.

Shapes follow ``mamba_ssm`` (channel-major, L last):

* ``u, delta, z``: (batch, d_inner, L), any float dtype.
* ``A``: (d_inner, N) fp32.
* ``B, C``: (batch, N, L) or grouped (batch, G, N, L) with ``d_inner % G == 0``.
* ``D, delta_bias``: (d_inner,) fp32.
* ``initial_state`` / ``last_state``: (batch, d_inner, N) fp32.

All arithmetic runs in fp32; outputs are cast back to ``u.dtype``. Gradients flow to every tensor input,
``initial_state`` included, and through ``last_state``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

__all__ = [
    "selective_scan_ref",
    "selective_scan_chunked_ref",
    "causal_conv1d_ref",
    "causal_conv1d_update_ref",
    "rms_norm_ref",
    "selective_state_update_ref",
]


def _expand_groups(bc: torch.Tensor, d_inner: int) -> torch.Tensor:
    """(batch, N, L) -> (batch, 1, N, L); (batch, G, N, L) -> (batch, d_inner, N, L) by repeating groups."""
    if bc.dim() == 3:
        return bc.unsqueeze(1)
    groups = bc.shape[1]
    return bc.repeat_interleave(d_inner // groups, dim=1)


def _discretised_delta(delta: torch.Tensor, delta_bias, delta_softplus: bool) -> torch.Tensor:
    delta = delta.float()
    if delta_bias is not None:
        delta = delta + delta_bias.float()[..., None]
    if delta_softplus:
        delta = F.softplus(delta)  # identity above 20, as upstream
    return delta


def _scan_segment(u, delta, A, B, C, h):
    """Recurrence on one segment, all fp32 and already discretised.

    u, delta: (batch, d_inner, T); A: (d_inner, N); B, C: (batch, 1 | d_inner, N, T); h: (batch, d_inner, N).
    Returns y (batch, d_inner, T) without the D skip and the gate, and the state after the segment.
    Materialises (batch, d_inner, T, N): keep T bounded for long inputs.
    """
    delta_a = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))
    delta_b_u = torch.einsum("bdl,bdnl->bdln", delta * u, B.expand(-1, u.shape[1], -1, -1))
    c = C.expand(-1, u.shape[1], -1, -1)
    ys = []
    # unbind, not per-step indexing: each indexing op's backward writes a full-size zero tensor (O(L^2) backward)
    for a_t, b_u_t, c_t in zip(delta_a.unbind(2), delta_b_u.unbind(2), c.unbind(-1)):
        h = a_t * h + b_u_t
        ys.append(torch.einsum("bdn,bdn->bd", h, c_t))
    return torch.stack(ys, dim=-1), h


def _finish(out_dtype, y, u, D, z):
    if D is not None:
        y = y + u.float() * D.float()[:, None]
    if z is not None:
        y = y * F.silu(z.float())
    return y.to(out_dtype)


def selective_scan_ref(
    u,
    delta,
    A,
    B,
    C,
    D=None,
    z=None,
    delta_bias=None,
    delta_softplus=False,
    initial_state=None,
    return_last_state=False,
):
    """Selective scan, one pass over L (materialises (batch, d_inner, L, N) fp32).

    h_t = exp(Δ_t A) ⊙ h_{t-1} + Δ_t B_t u_t;  y_t = <C_t, h_t> + D u_t;  out_t = y_t · SiLU(z_t).
    Returns out (batch, d_inner, L) in ``u.dtype``, plus last_state (batch, d_inner, N) fp32 when asked.
    """
    return selective_scan_chunked_ref(
        u, delta, A, B, C, D=D, z=z, delta_bias=delta_bias, delta_softplus=delta_softplus,
        initial_state=initial_state, return_last_state=return_last_state, chunk_size=None,
    )


def selective_scan_chunked_ref(
    u,
    delta,
    A,
    B,
    C,
    D=None,
    z=None,
    delta_bias=None,
    delta_softplus=False,
    initial_state=None,
    return_last_state=False,
    chunk_size=2048,
):
    """Same maths as :func:`selective_scan_ref`, walking L in chunks of ``chunk_size`` with the state carried.

    Peak memory holds (batch, d_inner, chunk_size, N) instead of (batch, d_inner, L, N); under autograd each
    chunk is checkpointed (recomputed in backward from its boundary state), so long sequences fit too.
    ``chunk_size=None`` is a single chunk.
    """
    batch, d_inner, length = u.shape
    delta_f = _discretised_delta(delta, delta_bias, delta_softplus)
    u_f = u.float()
    A_f = A.float()
    B_f = _expand_groups(B.float(), d_inner)
    C_f = _expand_groups(C.float(), d_inner)
    if initial_state is None:
        h = u_f.new_zeros(batch, d_inner, A.shape[-1])
    else:
        h = initial_state.float()
    step = length if not chunk_size else int(chunk_size)
    use_checkpoint = step < length and torch.is_grad_enabled()
    ys = []
    for start in range(0, length, max(step, 1)):
        sl = slice(start, min(start + step, length))
        args = (u_f[..., sl], delta_f[..., sl], A_f, B_f[..., sl], C_f[..., sl], h)
        if use_checkpoint:
            y, h = checkpoint(_scan_segment, *args, use_reentrant=False)
        else:
            y, h = _scan_segment(*args)
        ys.append(y)
    y = torch.cat(ys, dim=-1) if ys else u_f.new_zeros(batch, d_inner, 0)
    out = _finish(u.dtype, y, u, D, z)
    return (out, h) if return_last_state else out


def _apply_activation(x, activation):
    if activation in ("silu", "swish"):
        return F.silu(x)
    if activation is None:
        return x
    raise ValueError(f"activation must be None, 'silu' or 'swish', got {activation!r}")


def causal_conv1d_ref(x, weight, bias=None, activation=None, initial_state=None, return_final_state=False):
    """Causal depthwise conv: out[b, d, t] = act(bias[d] + Σ_k w[d, k] x[b, d, t - (W-1) + k]).

    x (batch, dim, L); weight (dim, W); bias (dim,); initial_state (batch, dim, W-1) are the inputs before t=0
    (zeros when None). Returns out (batch, dim, L) in x.dtype, and the final state (batch, dim, W-1) (the last
    W-1 inputs) when ``return_final_state``.
    """
    dtype = x.dtype
    width = weight.shape[-1]
    xf = x.float()
    if initial_state is None:
        x_cat = F.pad(xf, (width - 1, 0))
    else:
        x_cat = torch.cat([initial_state.float(), xf], dim=-1)
    out = F.conv1d(x_cat, weight.float().unsqueeze(1), None if bias is None else bias.float(), groups=x.shape[1])
    out = _apply_activation(out, activation).to(dtype)
    if return_final_state:
        # a copy, not a view: a view would keep the whole padded input alive across chunks
        return out, x_cat[..., x_cat.shape[-1] - (width - 1):].to(dtype, copy=True)
    return out


def causal_conv1d_update_ref(x, conv_state, weight, bias=None, activation=None):
    """Decode step(s) of the causal conv, updating ``conv_state`` (batch, dim, S >= W-1) in place.

    x (batch, dim) or (batch, dim, L_new). The state holds the last S inputs, newest last. Returns out shaped like x.
    """
    squeeze = x.dim() == 2
    x3 = x.unsqueeze(-1) if squeeze else x
    width = weight.shape[-1]
    state_len = conv_state.shape[-1]
    x_cat = torch.cat([conv_state.to(x3.dtype), x3], dim=-1)
    window = x_cat[..., x_cat.shape[-1] - (x3.shape[-1] + width - 1):].float()
    out = F.conv1d(window, weight.float().unsqueeze(1), None if bias is None else bias.float(), groups=x3.shape[1])
    out = _apply_activation(out, activation).to(x.dtype)
    conv_state.copy_(x_cat[..., x_cat.shape[-1] - state_len:])
    return out.squeeze(-1) if squeeze else out


def rms_norm_ref(x, weight, residual=None, eps=1e-5, prenorm=False, residual_in_fp32=False):
    """(Residual add +) RMSNorm over the last dim, statistics in fp32.

    x, residual (..., hidden); weight (hidden,). The post-add sum is the new residual, kept in fp32 when
    ``residual_in_fp32`` (else in x.dtype). Returns normed (x.dtype), and (normed, residual_out) when ``prenorm``.
    """
    dtype = x.dtype
    summed = x.float() if residual is None else x.float() + residual.float()
    rstd = torch.rsqrt(summed.pow(2).mean(dim=-1, keepdim=True) + eps)
    out = (summed * rstd * weight.float()).to(dtype)
    if not prenorm:
        return out
    residual_out = summed if residual_in_fp32 else summed.to(dtype)
    return out, residual_out


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
