"""Tests of the Triton kernels: natively on a CUDA device when there is one, else on CPU tensors under Triton's
interpreter.

Triton decides when it is imported and a kernel is decorated whether kernels are interpreted, so
``TRITON_INTERPRET=1`` must be in the environment before triton or a Triton backend is first imported: the root
``tests/conftest.py`` sets it for the session on a machine without CUDA. Run alone, this folder sets it too, and if a
Triton backend was imported before, the check below says so instead of failing later with a confusing launch error.
"""
import os
import sys

import pytest
import torch

HAS_CUDA = torch.cuda.is_available()

if not HAS_CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")
    _built = sorted(name for name in sys.modules
                    if name.startswith("mamba_bio_audio.kernels.") and "triton" in name.rsplit(".", 1)[-1])
    if _built:
        raise pytest.UsageError(
            f"{', '.join(_built)} imported before tests/kernels/triton/conftest.py set TRITON_INTERPRET=1, so their "
            "kernels were built for a GPU; run with TRITON_INTERPRET=1 in the environment"
        )

TOLERANCES = {torch.float32: dict(rtol=6e-4, atol=2e-3), torch.bfloat16: dict(rtol=3e-2, atol=5e-2),
              torch.float16: dict(rtol=3e-3, atol=5e-3)}


@pytest.fixture
def device():
    """Where the kernels run: the GPU when there is one, else the CPU under the interpreter."""
    return torch.device("cuda") if HAS_CUDA else torch.device("cpu")


@pytest.fixture
def assert_close():
    """assert_close(actual, expected, dtype=torch.float32, name="", scale=(1, 1)): compare in fp32 with the
    :data:`TOLERANCES` of ``dtype``, rtol and atol multiplied by ``scale``."""

    def check(actual, expected, dtype=torch.float32, name="", scale=(1, 1)):
        rtol, atol = TOLERANCES[dtype]["rtol"] * scale[0], TOLERANCES[dtype]["atol"] * scale[1]
        torch.testing.assert_close(actual.float(), expected.float(), rtol=rtol, atol=atol,
                                   msg=lambda m: f"{name}: {m}")

    return check
