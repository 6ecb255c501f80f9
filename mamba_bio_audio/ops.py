"""The public functional API: the only door to the kernels.

Signatures are upstream's: each op takes the positional arguments of its ``mamba_ssm`` / ``causal_conv1d``
namesake, by name and in order (``tests/kernels/test_backend_signatures.py`` holds the lists); the arguments we add
(``initial_state``, ``backend``) are keyword-only, and upstream arguments we do not support (``seq_idx``,
``cache_seqlens``, ``x1``, ...) are accepted by name and refused with a ValueError unless left at their default.
Every function validates its arguments (ValueError naming the
argument and the expected shape) and then dispatches through :data:`DISPATCH` to a backend:

* ``triton``: fused GPU kernels (CUDA tensors; CPU tensors too under ``TRITON_INTERPRET=1``),
* ``cpu``: numba kernels for the scan, a PyTorch conv decode step, the reference for the other cheap ops (CPU
  tensors),
* ``reference``: the pure-PyTorch twins, ``kernels/<op>/reference.py`` (anything; slow, exact).

The default is chosen by device; ``backend=``, or the settings (:func:`configure`; ``MBA_BACKEND=reference|cpu|triton``
read once), overrides it. The
backend actually used is logged once per (op, backend). Backend modules are imported on first use, so importing
this module imports neither triton nor numba. :func:`set_cpu_threads` sets the threads of CPU work.
"""
from __future__ import annotations

import importlib
import logging

import torch

from mamba_bio_audio.kernels import settings as kernel_settings
from mamba_bio_audio.kernels.constants import SCAN_TILE_STEPS  # noqa: F401 (re-exported: the library's chunk rule)
from mamba_bio_audio.kernels.settings import KernelSettings  # noqa: F401 (the type settings() returns)

__all__ = [
    "BACKENDS",
    "DISPATCH",
    "resolve_backend",
    "kernel",
    "selective_scan_fn",
    "selective_scan_tuned",
    "causal_conv1d_fn",
    "causal_conv1d_update",
    "rms_norm_fn",
    "selective_state_update",
    "cpu_decode_kernels",
    "max_cpu_threads",
    "cpu_threads",
    "set_cpu_threads",
    "triton_launches",
    "triton_interpreter_on",
    "settings",
    "configure",
    "probe",
]

BACKENDS = ("triton", "cpu", "reference")
_log = logging.getLogger(__name__)
_announced: set[tuple[str, str]] = set()


def settings() -> "KernelSettings":
    """The kernel settings in force (``backend``, ``deterministic``): read from ``MBA_BACKEND`` and
    ``MBA_DETERMINISTIC`` once, on first use; see :mod:`mamba_bio_audio.kernels.settings`."""
    return kernel_settings.current()


def configure(**changes) -> "KernelSettings":
    """Change the kernel settings for the rest of the process (``configure(backend="reference")``,
    ``configure(deterministic=True)``); returns the previous settings."""
    return kernel_settings.configure(**changes)


def resolve_backend(device: torch.device, backend: str | None = None) -> str:
    """Pick the backend for tensors on ``device``: ``backend`` argument, else the settings' backend
    (``MBA_BACKEND``), else by device."""
    choice = backend if backend is not None else settings().backend
    if choice is None:
        return "triton" if device.type == "cuda" else ("cpu" if device.type == "cpu" else "reference")
    if choice not in BACKENDS:
        source = "backend" if backend is not None else "the backend setting (MBA_BACKEND)"
        raise ValueError(f"{source} must be one of {', '.join(BACKENDS)}; got {choice!r}")
    if choice == "cpu" and device.type != "cpu":
        raise ValueError(f"backend 'cpu' needs CPU tensors; got tensors on {device}")
    if choice == "triton" and device.type != "cuda" and not triton_interpreter_on():
        raise ValueError(f"backend 'triton' needs CUDA tensors (or TRITON_INTERPRET=1); got tensors on {device}")
    return choice


def triton_interpreter_on() -> bool:
    """Whether Triton's CPU interpreter is on, as the Triton backends read it (``_triton_common.INTERPRET``:
    Triton's own reading of ``TRITON_INTERPRET``, taken once); False when triton is not installed."""
    try:
        return importlib.import_module("mamba_bio_audio.kernels._triton_common").INTERPRET
    except ImportError:
        return False


def _refuse_unsupported(op: str, **arguments) -> None:
    """ValueError naming the first upstream argument of ``op`` given a value other than its default (each keyword
    maps to (value, default))."""
    for name, (value, default) in arguments.items():
        if (value is not None) if default is None else (value != default):
            raise ValueError(f"{op}: {name} is not supported by mamba_bio_audio (accepted for upstream's signature "
                             f"only); leave it at {default!r}")


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
        "cpu": "causal_conv1d.cpu:causal_conv1d_cpu",
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
    # its num_threads / set_num_threads choose numba's threading layer before numba starts its threads
    return importlib.import_module("mamba_bio_audio.kernels.selective_scan.cpu")


def cpu_decode_kernels():
    """The numba kernels of the fused CPU decode step (``kernels/selective_state_update/cpu_block.py``:
    ``embed``, ``block_step``, ``final_step``, ``add_norm``, ``linear``), imported on first use. They take numpy
    arrays and validate nothing: ``mamba_bio_audio.models.fast_decode`` checks the shapes once per decoding state."""
    return importlib.import_module("mamba_bio_audio.kernels.selective_state_update.cpu_block")


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


def triton_launches(plan: str, sm_count: int, *sizes, **options) -> list:
    """The Triton kernel launches (``kernels/_triton_common.Launch``: kernel, grid, arguments, constexprs and
    num_warps) that ``kernels/launch_plan.py``'s ``plan`` (e.g. ``training_step``, ``decode_step``, ``scan``) makes
    for ``sizes`` on a GPU with ``sm_count`` SMs, recorded on meta tensors, not run: what a compile-only report
    compiles. Needs triton, no GPU; compiling the recorded kernels needs ``TRITON_INTERPRET`` unset at import."""
    plans = importlib.import_module("mamba_bio_audio.kernels.launch_plan").PLANS
    if plan not in plans:
        raise ValueError(f"plan must be one of {', '.join(plans)}; got {plan!r}")
    return plans[plan](sm_count, *sizes, **options)


def probe(name: str):
    """A measuring kernel of ``kernels/probes/`` by ``"<module>.<function>"``, e.g. ``exp2_rate.exp2_chain`` (the
    exp2 rate behind the scan's exponential floor), imported on first use. Needs triton (CUDA, or
    ``TRITON_INTERPRET=1`` set before the first import)."""
    module, _, function = name.partition(".")
    return getattr(importlib.import_module(f"mamba_bio_audio.kernels.probes.{module}"), function)


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
    return_last_state=False,
    *,
    initial_state=None,
    backend: str | None = None,
):
    """Selective scan (``mamba_ssm.ops.selective_scan_interface.selective_scan_fn``'s positional arguments, plus
    keyword-only ``initial_state`` and ``backend``). u, delta, z (batch, d_inner, L); A (d_inner, N) fp32; B, C (batch, N, L) or
    (batch, groups, N, L); D, delta_bias (d_inner,) fp32; initial_state (batch, d_inner, N) fp32.

    Returns out (batch, d_inner, L) in u.dtype (already gated by SiLU(z)), and last_state (batch, d_inner, N)
    fp32 when ``return_last_state``. Differentiable in every tensor input, through last_state too.
    """
    _check_scan_args(u, delta, A, B, C, D, z, delta_bias, initial_state)
    return _dispatch("selective_scan_fn", u.device, backend)(
        u, delta, A, B, C, D=D, z=z, delta_bias=delta_bias, delta_softplus=delta_softplus,
        return_last_state=return_last_state, initial_state=initial_state)


def selective_scan_tuned(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                         return_last_state=False, *, initial_state=None, block_l: int | None = None,
                         block_d: int | None = None, segments: int | None = None, forward_lanes: int | None = None,
                         backward_lanes: int | None = None):
    """:func:`selective_scan_fn` on the triton backend with its launch configuration given, for tuning sweeps
    (``benchmarks/scan_tune.py``): ``block_l`` (steps per tile along L) and ``block_d`` (channels per program),
    powers of two; ``segments`` (pieces of L run in parallel, a positive int); ``forward_lanes`` /
    ``backward_lanes`` (each direction's lanes on the states, a power of two up to min(32, next_pow2(N))); None:
    the backend's own choice."""
    _check_scan_args(u, delta, A, B, C, D, z, delta_bias, initial_state)
    resolve_backend(u.device, "triton")  # CUDA tensors, or CPU tensors under TRITON_INTERPRET=1
    tuned = importlib.import_module(kernel("selective_scan_fn", "triton").__module__).selective_scan_tuned
    return tuned(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state,
                 initial_state=initial_state, block_l=block_l, block_d=block_d, segments=segments,
                 forward_lanes=forward_lanes, backward_lanes=backward_lanes)


def _check_conv_args(x, weight, bias):
    _check_tensor("x", x, 3, expected="(batch, dim, L)")
    dim = x.shape[1]
    _check_tensor("weight", weight, 2, (dim, None), expected=f"(dim, width) with dim={dim}")
    if not 2 <= weight.shape[1] <= 4:
        raise ValueError(f"weight width must be 2, 3 or 4; got {weight.shape[1]}")
    if bias is not None:
        _check_tensor("bias", bias, 1, (dim,), expected=f"(dim,) = ({dim},)")


def causal_conv1d_fn(x, weight, bias=None, seq_idx=None, initial_states=None, return_final_states=False,
                     final_states_out=None, activation=None, *, backend: str | None = None):
    """Causal depthwise conv1d (``causal_conv1d.causal_conv1d_interface.causal_conv1d_fn``'s signature).
    x (batch, dim, L); weight (dim, W), W in 2..4; bias (dim,); initial_states (batch, dim, W-1).
    Returns out (batch, dim, L) [, final_states (batch, dim, W-1), a new tensor, when ``return_final_states``].
    ``seq_idx`` and ``final_states_out`` are refused unless None."""
    _refuse_unsupported("causal_conv1d_fn", seq_idx=(seq_idx, None), final_states_out=(final_states_out, None))
    initial_state = initial_states
    _check_conv_args(x, weight, bias)
    if activation not in (None, "silu", "swish"):
        raise ValueError(f"activation must be None, 'silu' or 'swish'; got {activation!r}")
    if initial_state is not None:
        _check_tensor("initial_states", initial_state, 3, (x.shape[0], x.shape[1], weight.shape[1] - 1),
                      expected=f"(batch, dim, width-1) = {(x.shape[0], x.shape[1], weight.shape[1] - 1)}")
    _check_device(x.device, weight=weight, bias=bias, initial_states=initial_state)
    return _dispatch("causal_conv1d_fn", x.device, backend)(
        x, weight, bias, initial_states=initial_state, return_final_states=return_final_states, activation=activation)


def causal_conv1d_update(x, conv_state, weight, bias=None, activation=None, cache_seqlens=None,
                         conv_state_indices=None, *, backend: str | None = None):
    """Decode step of the causal conv (``causal_conv1d.causal_conv1d_interface.causal_conv1d_update``'s
    signature). x (batch, dim) or (batch, dim, L_new); conv_state (batch, dim, S >= W-1), updated in place.
    Returns out shaped like x. ``cache_seqlens`` and ``conv_state_indices`` are refused unless None."""
    _refuse_unsupported("causal_conv1d_update", cache_seqlens=(cache_seqlens, None),
                        conv_state_indices=(conv_state_indices, None))
    x3 = x.unsqueeze(-1) if isinstance(x, torch.Tensor) and x.dim() == 2 else x
    _check_conv_args(x3, weight, bias)
    _check_tensor("conv_state", conv_state, 3, (x3.shape[0], x3.shape[1], None),
                  expected=f"(batch, dim, state_len >= width-1) with batch={x3.shape[0]}, dim={x3.shape[1]}")
    if conv_state.shape[-1] < weight.shape[1] - 1:
        raise ValueError(f"conv_state must hold at least width-1={weight.shape[1] - 1} steps; got {conv_state.shape[-1]}")
    _check_device(x.device, conv_state=conv_state, weight=weight, bias=bias)
    return _dispatch("causal_conv1d_update", x.device, backend)(x, conv_state, weight, bias, activation=activation)


def rms_norm_fn(x, weight, bias, residual=None, x1=None, weight1=None, bias1=None, eps=1e-6, dropout_p=0.0,
                rowscale=None, prenorm=False, residual_in_fp32=False, return_dropout_mask=False,
                *, backend: str | None = None):
    """(Residual add +) RMSNorm over the last dim (``mamba_ssm.ops.triton.layer_norm.rms_norm_fn``'s signature).
    x, residual (..., hidden); weight, bias (hidden,) (bias may be None; the triton backend refuses one).
    Returns normed in x.dtype, or (normed, residual_out) when ``prenorm``. ``x1``, ``weight1``, ``bias1``,
    ``rowscale`` (None), ``dropout_p`` (0.0) and ``return_dropout_mask`` (False) are refused at other values."""
    _refuse_unsupported("rms_norm_fn", x1=(x1, None), weight1=(weight1, None), bias1=(bias1, None),
                        dropout_p=(dropout_p, 0.0), rowscale=(rowscale, None),
                        return_dropout_mask=(return_dropout_mask, False))
    _check_tensor("x", x, tuple(range(1, 9)), expected="(..., hidden)")
    _check_tensor("weight", weight, 1, (x.shape[-1],), expected=f"(hidden,) = ({x.shape[-1]},)")
    if bias is not None:
        _check_tensor("bias", bias, 1, (x.shape[-1],), expected=f"(hidden,) = ({x.shape[-1]},)")
    if residual is not None and residual.shape != x.shape:
        raise ValueError(f"residual must have the shape of x {tuple(x.shape)}; got {tuple(residual.shape)}")
    if not eps > 0:
        raise ValueError(f"eps must be > 0; got {eps}")
    _check_device(x.device, weight=weight, bias=bias, residual=residual)
    return _dispatch("rms_norm_fn", x.device, backend)(
        x, weight, bias, residual, eps=eps, prenorm=prenorm, residual_in_fp32=residual_in_fp32)


def selective_state_update(state, x, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False,
                           state_batch_indices=None, *, backend: str | None = None):
    """One decode step, in place on ``state`` (batch, dim, N) fp32 (``mamba_ssm.ops.triton.selective_state_update``'s
    signature). x, dt, z (batch, dim); A (dim, N); B, C (batch, N) or (batch, groups, N); D, dt_bias (dim,).
    Returns out (batch, dim) in x.dtype. ``state_batch_indices`` is refused unless None."""
    _refuse_unsupported("selective_state_update", state_batch_indices=(state_batch_indices, None))
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
