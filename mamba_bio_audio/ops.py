"""The public functional API: the only door to the kernels.

Signatures follow ``mamba_ssm`` plus state passing. Every function validates its arguments (ValueError naming the
argument and the expected shape) and then dispatches through :data:`DISPATCH` to a backend:

* ``triton``: fused GPU kernels (CUDA tensors; CPU tensors too under ``TRITON_INTERPRET=1``),
* ``cpu``: numba kernels for the scan, a PyTorch conv decode step, the reference for the other cheap ops (CPU
  tensors),
* ``reference``: the pure-PyTorch twins, ``kernels/<op>/reference.py`` (anything; slow, exact).

The default is chosen by device; ``MBA_BACKEND=reference|cpu|triton`` or ``backend=`` overrides it. The
backend actually used is logged once per (op, backend). Backend modules are imported on first use, so importing
this module imports neither triton nor numba. :func:`set_cpu_threads` sets the threads of CPU work.
"""
from __future__ import annotations

import importlib
import logging
import os

import torch

__all__ = [
    "BACKENDS",
    "DISPATCH",
    "resolve_backend",
    "kernel",
    "selective_scan_fn",
    "causal_conv1d_fn",
    "causal_conv1d_update",
    "rms_norm_fn",
    "selective_state_update",
    "max_cpu_threads",
    "cpu_threads",
    "set_cpu_threads",
]

BACKENDS = ("triton", "cpu", "reference")
_log = logging.getLogger(__name__)
_announced: set[tuple[str, str]] = set()


def resolve_backend(device: torch.device, backend: str | None = None) -> str:
    """Pick the backend for tensors on ``device``: ``backend`` argument, else ``MBA_BACKEND``, else by device."""
    choice = backend if backend is not None else os.environ.get("MBA_BACKEND") or None
    if choice is None:
        return "triton" if device.type == "cuda" else ("cpu" if device.type == "cpu" else "reference")
    if choice not in BACKENDS:
        source = "backend" if backend is not None else "MBA_BACKEND"
        raise ValueError(f"{source} must be one of {', '.join(BACKENDS)}; got {choice!r}")
    if choice == "cpu" and device.type != "cpu":
        raise ValueError(f"backend 'cpu' needs CPU tensors; got tensors on {device}")
    if choice == "triton" and device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
        raise ValueError(f"backend 'triton' needs CUDA tensors (or TRITON_INTERPRET=1); got tensors on {device}")
    return choice


def _announce(op: str, backend: str) -> None:
    if (op, backend) not in _announced:
        _announced.add((op, backend))
        _log.info("mamba_bio_audio.ops.%s: using the %s backend", op, backend)


# op -> backend -> "module:function" under mamba_bio_audio.kernels; every function has its reference twin's signature
DISPATCH: dict[str, dict[str, str]] = {
    "selective_scan_fn": {
        "reference": "selective_scan.reference:selective_scan_ref",
        "cpu": "selective_scan.cpu:selective_scan_cpu",
        "triton": "selective_scan.triton:selective_scan_triton",
    },
    "causal_conv1d_fn": {
        "reference": "causal_conv1d.reference:causal_conv1d_ref",
        "cpu": "causal_conv1d.reference:causal_conv1d_ref",  # torch's conv1d is already fast
        "triton": "causal_conv1d.triton:causal_conv1d_triton",
    },
    "causal_conv1d_update": {
        "reference": "causal_conv1d.reference:causal_conv1d_update_ref",
        "cpu": "causal_conv1d.cpu:causal_conv1d_update_cpu",
        "triton": "causal_conv1d.triton:causal_conv1d_update_triton",
    },
    "rms_norm_fn": {
        "reference": "rms_norm.reference:rms_norm_ref",
        "cpu": "rms_norm.reference:rms_norm_ref",
        "triton": "rms_norm.triton:rms_norm_triton",
    },
    "selective_state_update": {
        "reference": "selective_state_update.reference:selective_state_update_ref",
        "cpu": "selective_state_update.reference:selective_state_update_ref",
        "triton": "selective_state_update.triton:selective_state_update_triton",
    },
}


_resolved: dict[str, tuple[object, str]] = {}  # DISPATCH entry -> (its imported module, the function's name)


def kernel(op: str, backend: str):
    """The function :data:`DISPATCH` names for ``op`` on ``backend``, its module imported on first use."""
    entry = DISPATCH[op][backend]
    if entry not in _resolved:
        module, _, name = entry.partition(":")
        try:
            _resolved[entry] = importlib.import_module(f"mamba_bio_audio.kernels.{module}"), name
        except ImportError as err:  # triton missing, or the kernels not built for this install
            if backend != "triton":
                raise
            raise RuntimeError(
                "the 'triton' backend is not available in this installation "
                f"({err}); install the 'triton' extra, or choose backend='reference'"
            ) from err
    module, name = _resolved[entry]
    return getattr(module, name)


def _dispatch(op: str, device: torch.device, backend: str | None):
    chosen = resolve_backend(device, backend)
    _announce(op, chosen)
    return kernel(op, chosen)


def _cpu_scan():
    # importing it picks numba's threading layer, which must come before numba starts its threads
    return importlib.import_module("mamba_bio_audio.kernels.selective_scan.cpu")


def max_cpu_threads() -> int:
    """The most threads :func:`set_cpu_threads` accepts."""
    return _cpu_scan().max_threads()


def cpu_threads() -> int:
    """Threads of the numba CPU kernels (torch's own count is ``torch.get_num_threads()``)."""
    return _cpu_scan().num_threads()


def set_cpu_threads(threads: int) -> None:
    """Run CPU work on ``threads`` threads, 1 to :func:`max_cpu_threads`: torch's intra-op pool and the numba CPU
    kernels (whose results do not depend on it)."""
    scan = _cpu_scan()
    if not 1 <= threads <= scan.max_threads():
        raise ValueError(f"threads must be between 1 and {scan.max_threads()}; got {threads}")
    torch.set_num_threads(threads)
    scan.set_num_threads(threads)


# --------------------------------------------------------------------------------------------------------------
# argument checks


def _check_tensor(name, t, ndim, shape=None, floating=True, expected=""):
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor {expected}; got {type(t).__name__}")
    if t.dim() not in (ndim if isinstance(ndim, tuple) else (ndim,)):
        raise ValueError(f"{name} must have shape {expected}; got {tuple(t.shape)}")
    if shape is not None:
        for axis, (got, want) in enumerate(zip(t.shape, shape)):
            if want is not None and got != want:
                raise ValueError(f"{name} must have shape {expected}; got {tuple(t.shape)} (dim {axis} is {got}, expected {want})")
    if floating and not t.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor {expected}; got dtype {t.dtype}")


def _check_device(device, **tensors):
    for name, t in tensors.items():
        if t is not None and t.device != device:
            raise ValueError(f"{name} is on {t.device} but u/x is on {device}: all tensors must share one device")


def _check_scan_args(u, delta, A, B, C, D, z, delta_bias, initial_state):
    _check_tensor("u", u, 3, expected="(batch, d_inner, L)")
    batch, d_inner, length = u.shape
    _check_tensor("delta", delta, 3, (batch, d_inner, length), expected=f"(batch, d_inner, L) = {(batch, d_inner, length)}")
    _check_tensor("A", A, 2, (d_inner, None), expected="(d_inner, N)")
    if A.dtype != torch.float32:
        raise ValueError(f"A must be float32 (d_inner, N); got {A.dtype}")
    n_state = A.shape[1]
    for name, bc in (("B", B), ("C", C)):
        _check_tensor(name, bc, (3, 4), expected="(batch, N, L) or (batch, groups, N, L)")
        if bc.dim() == 3:
            _check_tensor(name, bc, 3, (batch, n_state, length), expected=f"(batch, N, L) = {(batch, n_state, length)}")
        else:
            _check_tensor(name, bc, 4, (batch, None, n_state, length), expected=f"(batch, groups, N, L) with N={n_state}, L={length}")
            if d_inner % bc.shape[1] != 0:
                raise ValueError(f"{name} has {bc.shape[1]} groups, which must divide d_inner={d_inner}")
    if B.dim() != C.dim() or (B.dim() == 4 and B.shape[1] != C.shape[1]):
        raise ValueError(f"B and C must have the same layout; got B {tuple(B.shape)} and C {tuple(C.shape)}")
    for name, vec in (("D", D), ("delta_bias", delta_bias)):
        if vec is not None:
            _check_tensor(name, vec, 1, (d_inner,), expected=f"(d_inner,) = ({d_inner},)")
    if z is not None:
        _check_tensor("z", z, 3, (batch, d_inner, length), expected=f"(batch, d_inner, L) = {(batch, d_inner, length)}")
    if initial_state is not None:
        _check_tensor("initial_state", initial_state, 3, (batch, d_inner, n_state),
                      expected=f"(batch, d_inner, N) = {(batch, d_inner, n_state)}")
    _check_device(u.device, delta=delta, A=A, B=B, C=C, D=D, z=z, delta_bias=delta_bias, initial_state=initial_state)


# --------------------------------------------------------------------------------------------------------------
# ops


def selective_scan_fn(
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
    *,
    backend: str | None = None,
):
    """Selective scan. u, delta, z (batch, d_inner, L); A (d_inner, N) fp32; B, C (batch, N, L) or
    (batch, groups, N, L); D, delta_bias (d_inner,) fp32; initial_state (batch, d_inner, N) fp32.

    Returns out (batch, d_inner, L) in u.dtype (already gated by SiLU(z)), and last_state (batch, d_inner, N)
    fp32 when ``return_last_state``. Differentiable in every tensor input, through last_state too.
    """
    _check_scan_args(u, delta, A, B, C, D, z, delta_bias, initial_state)
    return _dispatch("selective_scan_fn", u.device, backend)(
        u, delta, A, B, C, D=D, z=z, delta_bias=delta_bias, delta_softplus=delta_softplus,
        initial_state=initial_state, return_last_state=return_last_state)


def _check_conv_args(x, weight, bias):
    _check_tensor("x", x, 3, expected="(batch, dim, L)")
    dim = x.shape[1]
    _check_tensor("weight", weight, 2, (dim, None), expected=f"(dim, width) with dim={dim}")
    if not 2 <= weight.shape[1] <= 4:
        raise ValueError(f"weight width must be 2, 3 or 4; got {weight.shape[1]}")
    if bias is not None:
        _check_tensor("bias", bias, 1, (dim,), expected=f"(dim,) = ({dim},)")


def causal_conv1d_fn(x, weight, bias=None, activation=None, initial_state=None, return_final_state=False,
                     *, backend: str | None = None):
    """Causal depthwise conv1d. x (batch, dim, L); weight (dim, W), W in 2..4; bias (dim,);
    initial_state (batch, dim, W-1). Returns out (batch, dim, L) [, final_state (batch, dim, W-1)]."""
    _check_conv_args(x, weight, bias)
    if activation not in (None, "silu", "swish"):
        raise ValueError(f"activation must be None, 'silu' or 'swish'; got {activation!r}")
    if initial_state is not None:
        _check_tensor("initial_state", initial_state, 3, (x.shape[0], x.shape[1], weight.shape[1] - 1),
                      expected=f"(batch, dim, width-1) = {(x.shape[0], x.shape[1], weight.shape[1] - 1)}")
    _check_device(x.device, weight=weight, bias=bias, initial_state=initial_state)
    return _dispatch("causal_conv1d_fn", x.device, backend)(
        x, weight, bias, activation=activation, initial_state=initial_state, return_final_state=return_final_state)


def causal_conv1d_update(x, conv_state, weight, bias=None, activation=None, *, backend: str | None = None):
    """Decode step of the causal conv. x (batch, dim) or (batch, dim, L_new); conv_state (batch, dim, S >= W-1),
    updated in place. Returns out shaped like x."""
    x3 = x.unsqueeze(-1) if isinstance(x, torch.Tensor) and x.dim() == 2 else x
    _check_conv_args(x3, weight, bias)
    _check_tensor("conv_state", conv_state, 3, (x3.shape[0], x3.shape[1], None),
                  expected=f"(batch, dim, state_len >= width-1) with batch={x3.shape[0]}, dim={x3.shape[1]}")
    if conv_state.shape[-1] < weight.shape[1] - 1:
        raise ValueError(f"conv_state must hold at least width-1={weight.shape[1] - 1} steps; got {conv_state.shape[-1]}")
    _check_device(x.device, conv_state=conv_state, weight=weight, bias=bias)
    return _dispatch("causal_conv1d_update", x.device, backend)(x, conv_state, weight, bias, activation=activation)


def rms_norm_fn(x, weight, residual=None, eps=1e-5, prenorm=False, residual_in_fp32=False,
                *, backend: str | None = None):
    """(Residual add +) RMSNorm over the last dim. x, residual (..., hidden); weight (hidden,).
    Returns normed in x.dtype, or (normed, residual_out) when ``prenorm``."""
    _check_tensor("x", x, tuple(range(1, 9)), expected="(..., hidden)")
    _check_tensor("weight", weight, 1, (x.shape[-1],), expected=f"(hidden,) = ({x.shape[-1]},)")
    if residual is not None and residual.shape != x.shape:
        raise ValueError(f"residual must have the shape of x {tuple(x.shape)}; got {tuple(residual.shape)}")
    if not eps > 0:
        raise ValueError(f"eps must be > 0; got {eps}")
    _check_device(x.device, weight=weight, residual=residual)
    return _dispatch("rms_norm_fn", x.device, backend)(
        x, weight, residual=residual, eps=eps, prenorm=prenorm, residual_in_fp32=residual_in_fp32)


def selective_state_update(state, x, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False,
                           *, backend: str | None = None):
    """One decode step, in place on ``state`` (batch, dim, N) fp32. x, dt, z (batch, dim); A (dim, N);
    B, C (batch, N) or (batch, groups, N); D, dt_bias (dim,). Returns out (batch, dim) in x.dtype."""
    _check_tensor("x", x, 2, expected="(batch, dim)")
    batch, dim = x.shape
    _check_tensor("A", A, 2, (dim, None), expected=f"(dim, N) with dim={dim}")
    n_state = A.shape[1]
    _check_tensor("state", state, 3, (batch, dim, n_state), expected=f"(batch, dim, N) = {(batch, dim, n_state)}")
    _check_tensor("dt", dt, 2, (batch, dim), expected=f"(batch, dim) = {(batch, dim)}")
    for name, bc in (("B", B), ("C", C)):
        _check_tensor(name, bc, (2, 3), expected=f"(batch, N) or (batch, groups, N) with N={n_state}")
        if bc.shape[0] != batch or bc.shape[-1] != n_state or (bc.dim() == 3 and dim % bc.shape[1] != 0):
            raise ValueError(f"{name} must have shape (batch, N) or (batch, groups, N) with batch={batch}, N={n_state}, "
                             f"groups dividing dim={dim}; got {tuple(bc.shape)}")
    if z is not None:
        _check_tensor("z", z, 2, (batch, dim), expected=f"(batch, dim) = {(batch, dim)}")
    for name, vec in (("D", D), ("dt_bias", dt_bias)):
        if vec is not None:
            _check_tensor(name, vec, 1, (dim,), expected=f"(dim,) = ({dim},)")
    _check_device(x.device, state=state, dt=dt, A=A, B=B, C=C, D=D, z=z, dt_bias=dt_bias)
    return _dispatch("selective_state_update", x.device, backend)(
        state, x, dt, A, B, C, D=D, z=z, dt_bias=dt_bias, dt_softplus=dt_softplus)
