"""CPU backend of the selective scan: the numba kernels of ``cpu_numba.py`` as differentiable torch custom ops.

:func:`selective_scan_cpu` has the signature and semantics of ``reference.selective_scan_ref``; u, delta, z
(batch, d_inner, L) any float dtype; A (d_inner, N) fp32; B, C (batch, N, L) or (batch, G, N, L); D, delta_bias
(d_inner,) fp32; initial_state (batch, d_inner, N) fp32. When u is stored as (batch, L, d_inner)
(:func:`channels_last`: a transposed linear layer's output), every L-axis tensor is read in that layout and out and
the gradients of u, delta and z come back in it (still shaped (batch, d_inner, L)): no transposes either way.
:func:`selective_scan_tuned` adds the backend's knob,
``checkpoint_every``. The forward keeps only the state entering every ``checkpoint_every`` steps, (batch,
d_inner, ceil(L / checkpoint_every), N) fp32; the backward recomputes the states between two checkpoints from them.
Every gradient comes out of the kernels, bitwise reproducible whatever the thread count (:func:`set_num_threads`).

Threading. numba picks its threading layer when it first starts its threads, for the whole process. Importing
this module changes nothing; the first launch, :func:`num_threads` or :func:`set_num_threads` (hence
``ops.set_cpu_threads``) calls :func:`choose_threading_layer` first, which asks for numba's own pthread pool
(``workqueue``) unless the user chose a layer (``NUMBA_THREADING_LAYER`` or ``numba.config.THREADING_LAYER``) or
numba already runs one: torch's and numba's OpenMP runtimes each keep spinning worker threads, and on few cores they
starve each other (erratic milliseconds per call); the pthread pool does not spin. ``workqueue`` cannot run two
parallel regions at once (numba aborts the process), so launches are serialised, under that layer only. Public numba
API throughout (``numba.threading_layer``, ``numba.config``), stable over the supported numba (>= 0.59).

The ops ``mamba_bio_audio::selective_scan_cpu_fwd`` / ``_bwd`` have fake implementations, so ``torch.compile``
traces a call as one opaque node instead of breaking the graph; ``common.register_scan_autograd`` wires the
backward, whose gradients come in the forward's input order.
"""
from __future__ import annotations

import contextlib
import math
import threading
from typing import Optional

import numba
import torch
from torch import Tensor

from mamba_bio_audio.kernels.selective_scan import cpu_numba as nb
from mamba_bio_audio.kernels.selective_scan.common import (as_gradients, fake_forward, fake_gradients,
                                                           register_scan_autograd)

__all__ = ["selective_scan_cpu", "selective_scan_tuned", "DEFAULT_CHECKPOINT_EVERY", "channels_last",
           "choose_threading_layer", "max_threads", "num_threads", "set_num_threads"]

# single-thread fwd+bwd kernel time at (1, 512, 16, 16384): 330 ms with checkpoint_every 64, 302 with 128, 295
# with 256, 280 with 512; the backward's scratch grows as 2 * checkpoint_every * N * 16 floats per work queue
# (1 MB each at 512)
DEFAULT_CHECKPOINT_EVERY = 256
SLOTS_PER_THREAD = 4  # work-item queues per numba thread: load balance against scratch memory

_F32 = torch.float32
_LAUNCH = threading.Lock()  # one kernel at a time under the workqueue layer (see the module docstring)
PREFERRED_LAYER = "workqueue"


def choose_threading_layer() -> None:
    """Ask numba for :data:`PREFERRED_LAYER` unless a layer was chosen already or numba's threads run."""
    try:
        numba.threading_layer()  # ValueError until numba has started its threads
        return  # started (by this backend earlier, or by other numba code): its layer stays
    except ValueError:
        pass
    if numba.config.THREADING_LAYER == "default":  # neither NUMBA_THREADING_LAYER nor code chose one
        numba.config.THREADING_LAYER = PREFERRED_LAYER


def _launching():
    """The context a kernel launch runs in: the threading layer chosen, and the launch lock held when the layer is
    (or, not yet started, may become) ``workqueue``."""
    choose_threading_layer()
    try:
        layer = numba.threading_layer()
    except ValueError:  # this launch starts the threads
        layer = None
    return _LAUNCH if layer in (None, "workqueue") else contextlib.nullcontext()


def _f32(t: Tensor) -> Tensor:
    """fp32, contiguous, detached: what the kernels read (no copy when it already is)."""
    return t.detach().to(_F32).contiguous()


def channels_last(u: Tensor) -> bool:
    """Whether u (batch, d_inner, L) is laid out as (batch, L, d_inner) (channel stride 1, as a transposed linear
    layer output): the kernels then read and write every L-axis tensor in that layout, with no transposes."""
    return u.shape[1] > 1 and u.shape[2] > 1 and u.stride(1) == 1


def _lanes(t: Tensor, cl: bool):
    """An L-axis tensor (batch, d_inner, L) as the kernels read it: fp32 (batch, d_inner, L) contiguous, or
    (batch, L, d_inner) contiguous when ``cl``; no copy when it already is."""
    return (_f32(t.transpose(1, 2)) if cl else _f32(t)).numpy()


def _empty_lanes(batch: int, d_inner: int, length: int, cl: bool) -> Tensor:
    """A new (batch, d_inner, L) fp32 tensor, stored as (batch, L, d_inner) when ``cl``."""
    return torch.empty(batch, length, d_inner, dtype=_F32).transpose(1, 2) if cl else _empty(batch, d_inner, length)


def _fake_lanes(like: Tensor, cl: bool, dtype=None) -> Tensor:
    """Fake twin of :func:`_empty_lanes`: the strides the real op returns, so compiled graphs agree."""
    b, d, length = like.shape
    dtype = like.dtype if dtype is None else dtype
    return like.new_empty((b, length, d), dtype=dtype).transpose(1, 2) if cl else like.new_empty(like.shape,
                                                                                                  dtype=dtype)


def _f32_or_zeros(t: Optional[Tensor], *shape) -> Tensor:
    return torch.zeros(*shape, dtype=_F32) if t is None else _f32(t)


def _empty(*shape) -> Tensor:
    return torch.empty(*shape, dtype=_F32)


def _grouped(bc: Tensor) -> Tensor:
    """(batch, N, L) or (batch, G, N, L) -> (batch, G, N, L) fp32 contiguous (a view when it already is)."""
    return _f32(bc.unsqueeze(1) if bc.dim() == 3 else bc)


def _kernel_inputs(u, delta, A, B, C, D, z, delta_bias, delta_softplus, cl):
    """The numpy arrays and flags both kernels take first (the L-axis ones in the layout ``cl`` says)."""
    d_inner = u.shape[1]
    z32 = _empty(0, 0, 0).numpy() if z is None else _lanes(z, cl)
    return (
        _lanes(u, cl), _lanes(delta, cl), z32, z is not None, _f32(A).numpy(), _grouped(B).numpy(),
        _grouped(C).numpy(), _f32_or_zeros(D, d_inner).numpy(), _f32_or_zeros(delta_bias, d_inner).numpy(),
        bool(delta_softplus),
    )


def _max_slots() -> int:
    return SLOTS_PER_THREAD * numba.get_num_threads()


@torch.library.custom_op("mamba_bio_audio::selective_scan_cpu_fwd", mutates_args=())
def selective_scan_cpu_fwd(
    u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Optional[Tensor], z: Optional[Tensor],
    delta_bias: Optional[Tensor], initial_state: Optional[Tensor], delta_softplus: bool, checkpoint_every: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """-> out (batch, d_inner, L) in u.dtype, last_state (batch, d_inner, N) fp32, checkpointed states
    (batch, d_inner, ceil(L / checkpoint_every), N) fp32."""
    batch, d_inner, length = u.shape
    n_state = A.shape[1]
    cl = channels_last(u)
    out = _empty_lanes(batch, d_inner, length, cl)
    ckpt = _empty(batch, d_inner, math.ceil(length / checkpoint_every), n_state)
    last = _empty(batch, d_inner, n_state)
    with _launching():
        nb.scan_fwd(
            *_kernel_inputs(u, delta, A, B, C, D, z, delta_bias, delta_softplus, cl),
            _f32_or_zeros(initial_state, batch, d_inner, n_state).numpy(), checkpoint_every, _max_slots(),
            _lanes(out, cl), ckpt.numpy(), last.numpy(), cl,
        )
    return out.to(u.dtype), last, ckpt


@selective_scan_cpu_fwd.register_fake
def _(u, delta, A, B, C, D, z, delta_bias, initial_state, delta_softplus, checkpoint_every):
    _, last, ckpt = fake_forward(u, A, math.ceil(u.shape[-1] / checkpoint_every))
    return _fake_lanes(u, channels_last(u)), last, ckpt


@torch.library.custom_op("mamba_bio_audio::selective_scan_cpu_bwd", mutates_args=())
def selective_scan_cpu_bwd(
    u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Optional[Tensor], z: Optional[Tensor],
    delta_bias: Optional[Tensor], ckpt: Tensor, dout: Tensor, dlast: Optional[Tensor], delta_softplus: bool,
    checkpoint_every: int,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """-> du, ddelta, dA, dB, dC, dD, dz, ddelta_bias, dinitial_state, as ``common.py`` describes."""
    batch, d_inner, length = u.shape
    n_state = A.shape[1]
    n_groups = 1 if B.dim() == 3 else B.shape[1]
    cl = channels_last(u)
    du = _empty_lanes(batch, d_inner, length, cl)
    ddelta = _empty_lanes(batch, d_inner, length, cl)
    dz = _empty(0, 0, 0) if z is None else _empty_lanes(batch, d_inner, length, cl)
    dA = _empty(d_inner, n_state)
    dD = _empty(d_inner)
    dbias = _empty(d_inner)
    dB = _empty(batch, n_groups, n_state, length)
    dC = _empty(batch, n_groups, n_state, length)
    dh0 = _empty(batch, d_inner, n_state)
    with _launching():
        nb.scan_bwd(
            *_kernel_inputs(u, delta, A, B, C, D, z, delta_bias, delta_softplus, cl), ckpt.numpy(), _lanes(dout, cl),
            _f32_or_zeros(dlast, batch, d_inner, n_state).numpy(), checkpoint_every, _max_slots(),
            _lanes(du, cl), _lanes(ddelta, cl), dz.numpy() if z is None else _lanes(dz, cl), dA.numpy(), dD.numpy(),
            dbias.numpy(), dB.numpy(), dC.numpy(), dh0.numpy(), cl,
        )
    return (*as_gradients((du, ddelta, dA, dB, dC, dD, dz, dbias), (u, delta, A, B, C, D, z, delta_bias)), dh0)


@selective_scan_cpu_bwd.register_fake
def _(u, delta, A, B, C, D, z, delta_bias, ckpt, dout, dlast, delta_softplus, checkpoint_every):
    grads = list(fake_gradients(u, delta, A, B, C, D, z, delta_bias))
    cl = channels_last(u)
    for i, t in ((0, u), (1, delta), (6, z)):  # du, ddelta, dz come in the kernels' layout
        if t is not None:
            grads[i] = _fake_lanes(t, cl)
    return tuple(grads)


register_scan_autograd(selective_scan_cpu_fwd, selective_scan_cpu_bwd)


def selective_scan_cpu(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                       return_last_state=False, *, initial_state=None):
    """Selective scan on CPU tensors (numba), differentiable in every tensor input and through last_state.

    Returns out (batch, d_inner, L) in u.dtype, and last_state (batch, d_inner, N) fp32 when asked. All
    arithmetic is fp32; gradients come back in each input's dtype. A checkpoint every
    :data:`DEFAULT_CHECKPOINT_EVERY` steps.
    """
    return selective_scan_tuned(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state,
                                initial_state=initial_state)


def selective_scan_tuned(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                         return_last_state=False, *, initial_state=None, checkpoint_every=None):
    """:func:`selective_scan_cpu` with ``checkpoint_every``, the steps between two states the forward saves
    for the backward to recompute from (>= 1; None:
    :data:`DEFAULT_CHECKPOINT_EVERY`)."""
    checkpoint_every = DEFAULT_CHECKPOINT_EVERY if checkpoint_every is None else int(checkpoint_every)
    if checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be >= 1; got {checkpoint_every}")
    out, last, _ = selective_scan_cpu_fwd(u, delta, A, B, C, D, z, delta_bias, initial_state, bool(delta_softplus),
                                          checkpoint_every)
    return (out, last) if return_last_state else out


def max_threads() -> int:
    """The most threads :func:`set_num_threads` accepts (numba's ``NUMBA_NUM_THREADS``)."""
    return numba.config.NUMBA_NUM_THREADS


def num_threads() -> int:
    """Threads the kernels run on (starts numba's threads, in the layer :func:`choose_threading_layer` asks for)."""
    choose_threading_layer()
    return numba.get_num_threads()


def set_num_threads(threads: int) -> None:
    """Run the kernels on ``threads`` threads, 1 to :func:`max_threads`; results do not depend on it. Starts
    numba's threads, in the layer :func:`choose_threading_layer` asks for."""
    choose_threading_layer()
    numba.set_num_threads(threads)
