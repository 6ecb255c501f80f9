"""Selective scan in pure PyTorch: slow, exact, differentiable, the oracle of the ``cpu`` and ``triton`` backends
(``cpu.py``, ``triton.py`` beside this file), whose functions have the signature of :func:`selective_scan_ref`.

Shapes follow ``mamba_ssm`` (channel-major, L last):

* ``u, delta, z``: (batch, d_inner, L), any float dtype.
* ``A``: (d_inner, N) fp32.
* ``B, C``: (batch, N, L) or grouped (batch, G, N, L) with ``d_inner % G == 0``.
* ``D, delta_bias``: (d_inner,) fp32.
* ``initial_state`` / ``last_state``: (batch, d_inner, N) fp32.

The positional arguments are ``mamba_ssm.ops.selective_scan_interface.selective_scan_ref``'s, in its order;
``initial_state`` (ours) is keyword-only.

All arithmetic runs in fp32; outputs are cast back to ``u.dtype``. Gradients flow to every tensor input,
``initial_state`` included, and through ``last_state``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

__all__ = ["selective_scan_ref", "selective_scan_chunked_ref", "chain_segments_ref"]


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
    return_last_state=False,
    *,
    initial_state=None,
):
    """Selective scan, one pass over L (materialises (batch, d_inner, L, N) fp32).

    h_t = exp(Δ_t A) ⊙ h_{t-1} + Δ_t B_t u_t;  y_t = <C_t, h_t> + D u_t;  out_t = y_t · SiLU(z_t).
    Returns out (batch, d_inner, L) in ``u.dtype``, plus last_state (batch, d_inner, N) fp32 when asked.
    """
    return selective_scan_chunked_ref(
        u, delta, A, B, C, D=D, z=z, delta_bias=delta_bias, delta_softplus=delta_softplus,
        initial_state=initial_state, return_last_state=return_last_state, checkpoint_every=None,
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
    return_last_state=False,
    *,
    initial_state=None,
    checkpoint_every=2048,
):
    """Same maths as :func:`selective_scan_ref`, walking L in chunks of ``checkpoint_every`` steps, state carried.

    Peak memory holds (batch, d_inner, checkpoint_every, N) instead of (batch, d_inner, L, N); under autograd each
    chunk is checkpointed (recomputed in backward from its boundary state), so long sequences fit too.
    ``checkpoint_every=None`` is a single chunk.
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
    step = length if not checkpoint_every else int(checkpoint_every)
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


def chain_segments_ref(A, start, parts, dt_sums, reverse: bool):
    """The carry pass that chains the segments of a split along L (``triton_kernels.chain_segments``' twin),
    (segments, batch, d_inner, N) fp32: entry[0] = start (forward; the last entry backward), then entry[s] =
    exp(A Σ Δ) · entry[s∓1] + part, with the Σ Δ and part of the segment passed."""
    entries = torch.empty_like(parts)
    order = range(parts.shape[0] - 1, -1, -1) if reverse else range(parts.shape[0])
    prev = None
    for s in order:
        if prev is None:
            entries[s] = 0.0 if start is None else start
        else:
            entries[s] = torch.exp(A * dt_sums[prev][..., None]) * entries[prev] + parts[prev]
        prev = s
    return entries
