"""What the Triton backends of every op share: the interpreter fix, the deterministic-mode default and two
argument helpers. Every ``<op>/triton.py`` imports this module before it launches a kernel.

Interpreter fix. Triton's CPU interpreter (``TRITON_INTERPRET=1``) holds a scalar kernel argument as a
one-element array and converts it to a Python int with ``int(array)`` when it is used as a loop bound
(``for c in range(n_chunks)``). NumPy 2.4 made that conversion a TypeError, so every kernel with a runtime loop
bound fails under the interpreter of triton <= 3.6 (triton-lang/triton#9171). :func:`patch_interpreter_index`
applies the upstream fix (``.item()``) to the interpreter's patching of ``tl.tensor``; importing this module calls
it when the interpreter is on, and it changes nothing where the conversion already works.
"""
from __future__ import annotations

import os

import numpy as np
import torch

__all__ = ["deterministic_default", "l_contiguous", "or_placeholder", "patch_interpreter_index"]


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


if os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes"):
    patch_interpreter_index()


def deterministic_default() -> bool:
    """True when ``MBA_DETERMINISTIC=1`` or torch's deterministic algorithms are on."""
    return os.environ.get("MBA_DETERMINISTIC") == "1" or torch.are_deterministic_algorithms_enabled()


def l_contiguous(t: torch.Tensor | None) -> torch.Tensor | None:
    """``t`` with stride 1 along its last (L or N) dim, copied only when it is not; None stays None. The kernels
    take every other stride as an argument."""
    return t if t is None or t.stride(-1) == 1 else t.contiguous()


def or_placeholder(t: torch.Tensor | None, placeholder: torch.Tensor) -> torch.Tensor:
    """Kernels take a pointer for every optional tensor; an absent one (its HAS_* flag False) is never read."""
    return placeholder if t is None else t
