"""What the two native backends of the selective scan (``cpu.py``, ``triton.py``) share: the form of their
backward ops' gradients, fake implementations, and the autograd wiring of a forward/backward custom op pair.

Each backend registers two ``torch.library`` custom ops:

* forward ``(u, delta, A, B, C, D, z, delta_bias, initial_state, *config) -> (out, last_state, states)``:
  out (batch, d_inner, L) in u.dtype, last_state (batch, d_inner, N) fp32, states the fp32 state entering each
  chunk, (batch, d_inner, n_chunks, N) (or empty (0,) when the backend was told nothing needs gradients);
* backward ``(u, delta, A, B, C, D, z, delta_bias, states, dout, dlast, *bwd_config) -> gradients``, with
  dout (batch, d_inner, L) and dlast (batch, d_inner, N) or None.

The gradients come in the forward's input order, du, ddelta, dA, dB, dC, dD, dz, ddelta_bias, dinitial_state
(:data:`SCAN_INPUTS`), each with the shape and dtype of the tensor the backward op received and an empty (0,) tensor
for an input that was None, except dinitial_state: always (batch, d_inner, N) fp32.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

__all__ = ["SCAN_INPUTS", "absent", "as_gradients", "fake_forward", "fake_gradients", "register_scan_autograd"]

SCAN_INPUTS = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias", "initial_state")
_F32 = torch.float32


def absent(like: Tensor) -> Tensor:
    """Custom ops return tensors only: an empty one stands for the gradient of an input that was None."""
    return like.new_empty(0)


def as_gradients(grads, inputs) -> tuple[Tensor, ...]:
    """Each gradient reshaped and cast to its input among (u, delta, A, B, C, D, z, delta_bias); :func:`absent`
    where the input is None."""
    return tuple(absent(inputs[0]) if t is None else g.reshape(t.shape).to(t.dtype) for g, t in zip(grads, inputs))


def fake_forward(u: Tensor, A: Tensor, n_chunks: int | None) -> tuple[Tensor, Tensor, Tensor]:
    """Fake outputs of a forward op; the states are empty (0,) when ``n_chunks`` is None."""
    batch, d_inner, _ = u.shape
    n_state = A.shape[1]
    states = (u.new_empty(0, dtype=_F32) if n_chunks is None
              else u.new_empty((batch, d_inner, n_chunks, n_state), dtype=_F32))
    return u.new_empty(u.shape), u.new_empty((batch, d_inner, n_state), dtype=_F32), states


def fake_gradients(u, delta, A, B, C, D, z, delta_bias) -> tuple[Tensor, ...]:
    """Fake outputs of a backward op."""
    grads = tuple(absent(u) if t is None else t.new_empty(t.shape) for t in (u, delta, A, B, C, D, z, delta_bias))
    return (*grads, u.new_empty((u.shape[0], u.shape[1], A.shape[1]), dtype=_F32))


def register_scan_autograd(fwd_op, bwd_op, bwd_config: Callable[[tuple], tuple] = tuple) -> None:
    """Make ``fwd_op`` differentiable through ``bwd_op`` (both as in the module docstring).

    ``bwd_config`` maps the forward's trailing non-tensor arguments to the backward's. Gradients flow to every
    tensor input, through out and through last_state; a None input gets None.
    """

    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs[:8], output[2])
        ctx.initial_state_dtype = None if inputs[8] is None else inputs[8].dtype
        ctx.n_config = len(inputs) - len(SCAN_INPUTS)
        ctx.bwd_config = bwd_config(inputs[len(SCAN_INPUTS):])
        ctx.set_materialize_grads(False)

    def backward(ctx, dout, dlast, _dstates):
        *inputs, states = ctx.saved_tensors
        if dout is None:  # only last_state was used
            dout = torch.zeros_like(inputs[0])
        *grads, dh0 = bwd_op(*inputs, states, dout, dlast, *ctx.bwd_config)
        grads = [None if t is None else g for g, t in zip(grads, inputs)]
        dh0 = None if ctx.initial_state_dtype is None else dh0.to(ctx.initial_state_dtype)
        return (*grads, dh0, *(None,) * ctx.n_config)

    fwd_op.register_autograd(backward, setup_context=setup_context)
