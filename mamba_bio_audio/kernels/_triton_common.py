"""What the Triton backends of every op share: the interpreter fix, the deterministic-mode default and two
argument helpers. Every ``<op>/triton.py`` imports this module before it launches a kernel.

Interpreter fix. Triton's CPU interpreter (``TRITON_INTERPRET=1``) holds a scalar kernel argument as a
one-element array and converts it to a Python int with ``int(array)`` when it is used as a loop bound
(``for c in range(n_chunks)``). NumPy 2.4 made that conversion a TypeError, so every kernel with a runtime loop
bound fails under the interpreter of triton <= 3.6 (triton-lang/triton#9171; 3.9's interpreter has the fix).
:func:`patch_interpreter_index` applies the upstream fix (``.item()``) to the interpreter's patching of
``tl.tensor``, a private Triton internal; importing this module calls it only where all three hold: the interpreter
is on (:data:`INTERPRET`), the installed triton is one without the fix (< 3.7), and NumPy refuses the conversion.

:data:`INTERPRET` is Triton's own reading of ``TRITON_INTERPRET`` (``triton.knobs.runtime.interpret``), taken
once, at this module's import: the kernel modules import it first, and Triton fixes at ``@triton.jit`` time
whether a kernel is interpreted, so a later change of the variable could not reach them anyway.

Launches. Every launcher starts its kernels through :func:`launch`. Inside :func:`recording_launches` it records
them instead (kernel, grid, arguments, options) without running anything, so a report can compile for a GPU
target exactly what the launchers would launch, on ``meta`` tensors, with no GPU (``launch_plan.py``).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from mamba_bio_audio.kernels import settings

__all__ = ["INTERPRET", "Launch", "deterministic_default", "l_contiguous", "launch", "multiprocessor_count",
           "or_placeholder", "patch_interpreter_index", "recording_launches"]


def _index_needs_fix() -> bool:
    try:
        int(np.zeros(1, dtype=np.int32))
    except TypeError:
        return True
    return False


def patch_interpreter_index() -> None:
    """Make the interpreter's ``tl.tensor.__index__`` use ``.item()`` (idempotent)."""
    from triton.runtime import interpreter

    if not _index_needs_fix() or getattr(interpreter._patch_lang_tensor, "_mba_fixed", False):
        return
    original = interpreter._patch_lang_tensor

    def _patch_lang_tensor(tensor, scope):
        original(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.item()))

    _patch_lang_tensor._mba_fixed = True
    interpreter._patch_lang_tensor = _patch_lang_tensor


def _interpreter_on() -> bool:
    try:
        from triton import knobs
    except ImportError:  # no triton: no interpreter
        return False
    return bool(knobs.runtime.interpret)


def _triton_lacks_index_fix() -> bool:
    import triton

    major, minor = (int(part) for part in triton.__version__.split(".")[:2])
    return (major, minor) < (3, 7)


INTERPRET: bool = _interpreter_on()

if INTERPRET and _triton_lacks_index_fix():
    patch_interpreter_index()


def deterministic_default() -> bool:
    """True when the settings ask for it (``MBA_DETERMINISTIC=1``, read once; ``ops.configure(deterministic=...)``)
    or torch's deterministic algorithms are on."""
    return settings.current().deterministic or torch.are_deterministic_algorithms_enabled()


def l_contiguous(t: torch.Tensor | None) -> torch.Tensor | None:
    """``t`` with stride 1 along its last (L or N) dim, copied only when it is not; None stays None. The kernels
    take every other stride as an argument."""
    return t if t is None or t.stride(-1) == 1 else t.contiguous()


def or_placeholder(t: torch.Tensor | None, placeholder: torch.Tensor) -> torch.Tensor:
    """Kernels take a pointer for every optional tensor; an absent one (its HAS_* flag False) is never read."""
    return placeholder if t is None else t


@dataclass(frozen=True)
class Launch:
    """One kernel launch as a launcher makes it: the ``@triton.jit`` kernel, its grid, its positional arguments
    (tensors and ints, in the kernel's parameter order) and keyword arguments (constexprs and ``num_warps``)."""

    kernel: object
    grid: tuple[int, ...]
    args: tuple
    kwargs: dict


@dataclass
class _Recording:
    sm_count: int
    launches: list


# process-wide, not a ContextVar: autograd runs a CUDA backward on a thread of its own, whose launches count too
_recording: list[_Recording | None] = [None]


def launch(kernel, grid, *args, **kwargs) -> None:
    """``kernel[grid](*args, **kwargs)``, or, inside :func:`recording_launches`, its record."""
    recording = _recording[0]
    if recording is None:
        kernel[grid](*args, **kwargs)
    else:
        recording.launches.append(Launch(kernel, tuple(grid), args, dict(kwargs)))


@contextmanager
def recording_launches(sm_count: int):
    """Record the launches made inside the block, in any thread of the process (yields the list they are appended
    to), instead of running them, as on a GPU with ``sm_count`` multiprocessors (:func:`multiprocessor_count`).
    Meant for ``meta`` tensors, or real ones whose results do not matter; not for concurrent use."""
    previous, _recording[0] = _recording[0], _Recording(sm_count, [])
    try:
        yield _recording[0].launches
    finally:
        _recording[0] = previous


def multiprocessor_count(device: torch.device) -> int:
    """SMs of ``device`` (the recorded GPU's inside :func:`recording_launches`); 4 off a GPU (the interpreter)."""
    recording = _recording[0]
    if recording is not None:
        return recording.sm_count
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return 4
