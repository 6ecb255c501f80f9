"""Triton backend of the selective scan: the kernels of ``triton_kernels.py`` as differentiable torch custom ops.

:func:`selective_scan_triton` has the signature and semantics of ``reference.selective_scan_ref`` and runs on CUDA
tensors, or on CPU tensors under ``TRITON_INTERPRET=1``. u, delta, z (batch, d_inner, L) fp32/fp16/bf16; A
(d_inner, N) fp32; B, C (batch, N, L) or (batch, G, N, L); D, delta_bias (d_inner,) fp32; initial_state
(batch, d_inner, N) fp32. :func:`selective_scan_tuned` adds the backend's knobs: ``block_l``
(steps per tile along L), ``block_d`` (channels per program; ``triton_kernels.scan_config``), ``segments`` (pieces
of L run in parallel; 0 or None: ``triton_kernels.scan_segments`` picks per launch), ``forward_lanes`` /
``backward_lanes`` (each direction's lanes on the states, NL; 0 or None: the layout's own choice) and
``deterministic``.

Deterministic mode: the backward reduces dB and dC across channel blocks with atomic adds by default (fastest, not
bitwise reproducible on a GPU). ``deterministic=True``, or ``MBA_DETERMINISTIC=1`` in the environment, or
``torch.use_deterministic_algorithms(True)`` (:func:`deterministic_default`), writes per-channel-block partials and
sums them in a fixed order instead: two runs give identical bits.

Custom ops (fake implementations for ``torch.compile``; backward wired by ``common.register_scan_autograd``, its
gradients in the forward's input order):

* ``mamba_bio_audio::selective_scan_fwd(u, delta, A, B4, C4, D, z, delta_bias, initial_state, delta_softplus,
  block_l, block_d, save_states, deterministic, segments=0, fwd_lanes=0, bwd_lanes=0) -> (out, last_state,
  chunk_states)``, B4, C4 (batch, G, N, L); ``segments``, ``*_lanes`` 0: chosen per launch;
* ``mamba_bio_audio::selective_scan_bwd(u, delta, A, B4, C4, D, z, delta_bias, chunk_states, dout, dlast,
  delta_softplus, block_l, block_d, deterministic, segments=0, lanes=0)``.
"""
from __future__ import annotations

from typing import Optional

import torch
import triton
from torch import Tensor

from mamba_bio_audio.kernels._triton_common import deterministic_default, l_contiguous
from mamba_bio_audio.kernels.selective_scan import triton_kernels as _kernels
from mamba_bio_audio.kernels.selective_scan.common import (as_gradients, fake_forward, fake_gradients,
                                                           register_scan_autograd)
from mamba_bio_audio.kernels.selective_scan.triton_kernels import scan_config

__all__ = ["selective_scan_triton", "selective_scan_tuned", "selective_scan_fwd", "selective_scan_bwd",
           "deterministic_default", "forward_op_args", "scan_config"]


@torch.library.custom_op("mamba_bio_audio::selective_scan_fwd", mutates_args=())
def selective_scan_fwd(
    u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Optional[Tensor], z: Optional[Tensor],
    delta_bias: Optional[Tensor], initial_state: Optional[Tensor], delta_softplus: bool, block_l: int,
    block_d: int, save_states: bool, deterministic: bool, segments: int = 0, fwd_lanes: int = 0, bwd_lanes: int = 0,
) -> tuple[Tensor, Tensor, Tensor]:
    return _kernels.scan_forward(u, delta, A, B, C, D, z, delta_bias, initial_state, delta_softplus,
                                 block_l, block_d, save_states, segments, fwd_lanes)


@selective_scan_fwd.register_fake
def _(u, delta, A, B, C, D, z, delta_bias, initial_state, delta_softplus, block_l, block_d, save_states,
      deterministic, segments=0, fwd_lanes=0, bwd_lanes=0):
    return fake_forward(u, A, (u.shape[-1] + block_l - 1) // block_l if save_states else None)


@torch.library.custom_op("mamba_bio_audio::selective_scan_bwd", mutates_args=())
def selective_scan_bwd(
    u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Optional[Tensor], z: Optional[Tensor],
    delta_bias: Optional[Tensor], states: Tensor, dout: Tensor, dlast: Optional[Tensor], delta_softplus: bool,
    block_l: int, block_d: int, deterministic: bool, segments: int = 0, lanes: int = 0,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    *grads, dh0 = _kernels.scan_backward(u, delta, A, B, C, D, z, delta_bias, states, dout, dlast, delta_softplus,
                                         block_l, block_d, deterministic, segments, lanes)
    return (*as_gradients(grads, (u, delta, A, B, C, D, z, delta_bias)), dh0)


@selective_scan_bwd.register_fake
def _(u, delta, A, B, C, D, z, delta_bias, states, dout, dlast, delta_softplus, block_l, block_d, deterministic,
      segments=0, lanes=0):
    return fake_gradients(u, delta, A, B, C, D, z, delta_bias)


def _bwd_config(config):
    delta_softplus, block_l, block_d, _save_states, deterministic, segments, _fwd_lanes, bwd_lanes = config
    return delta_softplus, block_l, block_d, deterministic, segments, bwd_lanes


register_scan_autograd(selective_scan_fwd, selective_scan_bwd, _bwd_config)


def selective_scan_triton(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                          return_last_state=False, *, initial_state=None):
    """Fused selective scan. Returns out (batch, d_inner, L) in u.dtype [, last_state (batch, d_inner, N) fp32];
    differentiable in every tensor, through last_state too. Launch configuration from ``scan_config``."""
    return selective_scan_tuned(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state,
                                initial_state=initial_state)


def selective_scan_tuned(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                         return_last_state=False, *, initial_state=None, block_l=None, block_d=None,
                         deterministic=None, segments=None, forward_lanes=None, backward_lanes=None):
    """:func:`selective_scan_triton` with its knobs: ``block_l`` (steps per tile along L, a power of
    two) and ``block_d`` (channels per program) override the
    launch configuration (``scan_config``); ``segments`` (a positive int) fixes how many pieces of L the forward and
    the backward run in parallel (``scan_segments`` picks per launch otherwise); ``forward_lanes`` /
    ``backward_lanes`` (a power of two up to min(32, next_pow2(N))) fix each direction's lanes on the states
    (``forward_layout``, ``backward_layout``); ``deterministic`` overrides :func:`deterministic_default` for the
    backward."""
    inputs = (u, delta, A, B, C, D, z, delta_bias, initial_state)
    save_states = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in inputs)
    out, last_state, _ = selective_scan_fwd(*forward_op_args(
        u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state, block_l=block_l, block_d=block_d,
        save_states=save_states, deterministic=deterministic, segments=segments, forward_lanes=forward_lanes,
        backward_lanes=backward_lanes))
    return (out, last_state) if return_last_state else out


def forward_op_args(u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state, *, block_l, block_d,
                    save_states, deterministic, segments=None, forward_lanes=None, backward_lanes=None) -> tuple:
    """The arguments :func:`selective_scan_tuned` gives the ``selective_scan_fwd`` op: B, C made 4-D, strides made
    kernel-ready, the launch configuration from ``scan_config``, the deterministic default resolved.
    ``launch_plan.py`` calls it too, so a compile-only report launches what a run would."""
    B4 = B.unsqueeze(1) if B.dim() == 3 else B
    C4 = C.unsqueeze(1) if C.dim() == 3 else C
    d_inner, n_state = A.shape
    block_d, block_l = scan_config(d_inner, B4.shape[1], n_state, u.shape[-1], block_l, block_d)
    return (l_contiguous(u), l_contiguous(delta), A.contiguous(), l_contiguous(B4), l_contiguous(C4),
            None if D is None else D.contiguous(), l_contiguous(z),
            None if delta_bias is None else delta_bias.contiguous(), initial_state,
            bool(delta_softplus), block_l, block_d, bool(save_states),
            deterministic_default() if deterministic is None else bool(deterministic), _segments(segments),
            _lanes(forward_lanes, n_state, "forward_lanes"), _lanes(backward_lanes, n_state, "backward_lanes"))


def _segments(segments) -> int:
    """The op's ``segments`` argument: 0 (automatic) for None, else a positive int."""
    if segments is None:
        return 0
    if isinstance(segments, bool) or not isinstance(segments, int) or segments < 1:
        raise ValueError(f"segments must be a positive int or None; got {segments!r}")
    return segments


def _lanes(lanes, n_state: int, name: str) -> int:
    """An op's lanes argument: 0 (the layout's own choice) for None, else a power of two the layout can take:
    at most 32 (a warp) and at most next_pow2(N)."""
    if lanes is None:
        return 0
    cap = min(32, triton.next_power_of_2(n_state))
    if isinstance(lanes, bool) or not isinstance(lanes, int) or lanes < 1 or lanes & (lanes - 1) or lanes > cap:
        raise ValueError(f"{name} must be a power of two from 1 to {cap} (N {n_state}) or None; got {lanes!r}")
    return lanes
