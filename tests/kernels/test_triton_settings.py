"""``TRITON_INTERPRET`` means to the op API what it means to Triton (read once, by Triton's own parser), and the
interpreter fix touches Triton's private internals only where the interpreter is on and the installed Triton
lacks the fix. Each case runs in a fresh interpreter: the setting is read once per process, as Triton reads it."""
import os
import subprocess
import sys

import pytest

pytest.importorskip("triton")

PROBE = (
    "import torch, triton.knobs\n"
    "from mamba_bio_audio import ops\n"
    "from triton.runtime import interpreter\n"
    "try:\n"
    "    chosen = ops.resolve_backend(torch.device('cpu'), 'triton')\n"
    "except ValueError:\n"
    "    chosen = 'refused'\n"
    "print(triton.knobs.runtime.interpret, chosen, getattr(interpreter._patch_lang_tensor, '_mba_fixed', False))\n"
)


def _probe(value):
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "MBA_BACKEND")}
    env["TRITON_INTERPRET"] = value
    return subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True,
                          check=True).stdout.split()


def _triton_lacks_the_fix():
    import triton

    return tuple(int(part) for part in triton.__version__.split(".")[:2]) < (3, 7)


@pytest.mark.parametrize("value, on", [("true", True), ("0", False)])
def test_triton_backend_on_cpu_follows_tritons_reading_of_the_variable(value, on):
    """'true' turns Triton's interpreter on, so the op API accepts CPU tensors for triton (it used to want '1')."""
    interpret, chosen, patched = _probe(value)
    assert interpret == str(on)
    assert chosen == ("triton" if on else "refused")
    assert patched == str(on and _triton_lacks_the_fix())
