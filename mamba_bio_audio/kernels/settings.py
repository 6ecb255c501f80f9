"""The kernels' settings: one object, read from the environment once (when first asked for) and changed only
through :func:`configure` (re-exported as ``mamba_bio_audio.ops.configure``).

* ``backend`` (``MBA_BACKEND``: ``reference`` | ``cpu`` | ``triton``; None: chosen by the tensors' device): the op
  backend when a call names none;
* ``deterministic`` (``MBA_DETERMINISTIC=1``): the Triton scan's deterministic mode when a call does not choose
  (``torch.use_deterministic_algorithms(True)`` turns it on too).

Whether Triton interprets its kernels is Triton's own setting, read when a kernel is decorated
(``_triton_common.INTERPRET``), not one of these.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

__all__ = ["KernelSettings", "configure", "current", "from_environment"]


@dataclasses.dataclass(frozen=True)
class KernelSettings:
    backend: str | None = None
    deterministic: bool = False


def from_environment(environ: Mapping[str, str] = os.environ) -> KernelSettings:
    """The settings ``environ`` describes (unset or empty variables give the defaults)."""
    return KernelSettings(backend=environ.get("MBA_BACKEND") or None,
                          deterministic=environ.get("MBA_DETERMINISTIC") == "1")


_current: KernelSettings | None = None


def current() -> KernelSettings:
    """The settings in force: read from the environment on the first call, then kept."""
    global _current
    if _current is None:
        _current = from_environment()
    return _current


def configure(**changes) -> KernelSettings:
    """Replace fields of the settings in force (``configure(backend="reference")``); returns the previous settings,
    so ``configure(**dataclasses.asdict(previous))`` restores them. An unknown field is a TypeError naming it."""
    global _current
    previous = current()
    _current = dataclasses.replace(previous, **changes)
    return previous
