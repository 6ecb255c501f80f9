"""Compatibility of Triton's CPU interpreter (``TRITON_INTERPRET=1``) with NumPy >= 2.4.

The interpreter holds a scalar kernel argument as a one-element array and converts it to a Python int with
``int(array)`` when it is used as a loop bound (``for c in range(n_chunks)``). NumPy 2.4 made that conversion a
TypeError, so every kernel with a runtime loop bound fails under the interpreter of triton <= 3.6
(triton-lang/triton#9171). :func:`patch_interpreter_index` applies the upstream fix (``.item()``) to the interpreter's
patching of ``tl.tensor``; it is called by this package only when the interpreter is on, and changes nothing where
the conversion already works.
"""
from __future__ import annotations

import numpy as np


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
