import subprocess
import sys

import pytest
import torch

from mamba_bio_audio import ops
from mamba_bio_audio.kernels import settings as kernel_settings


def test_default_backend_follows_device(configure_kernels):
    configure_kernels(backend=None)
    assert ops.resolve_backend(torch.device("cpu")) == "cpu"
    assert ops.resolve_backend(torch.device("cuda", 0)) == "triton"


def test_settings_and_argument_override(configure_kernels):
    configure_kernels(backend="reference")
    assert ops.resolve_backend(torch.device("cpu")) == "reference"
    assert ops.resolve_backend(torch.device("cpu"), backend="cpu") == "cpu"
    configure_kernels(backend="cuda")
    with pytest.raises(ValueError, match=r"the backend setting \(MBA_BACKEND\) must be one of"):
        ops.resolve_backend(torch.device("cpu"))
    with pytest.raises(ValueError, match="backend must be one of"):
        ops.resolve_backend(torch.device("cpu"), backend="fast")


def test_settings_come_from_the_environment_once(monkeypatch):
    assert kernel_settings.from_environment({"MBA_BACKEND": "reference", "MBA_DETERMINISTIC": "1"}) == \
        kernel_settings.KernelSettings(backend="reference", deterministic=True)
    assert kernel_settings.from_environment({"MBA_BACKEND": ""}) == kernel_settings.KernelSettings()
    before = ops.settings()
    monkeypatch.setenv("MBA_BACKEND", "triton" if before.backend != "triton" else "cpu")
    monkeypatch.setenv("MBA_DETERMINISTIC", "0" if before.deterministic else "1")
    assert ops.settings() == before  # read once: a later change of the environment is not a hidden argument
    with pytest.raises(TypeError, match="backends"):
        ops.configure(backends="cpu")


def test_triton_needs_cuda_or_interpreter(monkeypatch):
    # TRITON_INTERPRET is read once, when the Triton backends are first imported (as Triton itself reads it)
    monkeypatch.setattr(ops, "triton_interpreter_on", lambda: False)
    with pytest.raises(ValueError, match="needs CUDA tensors"):
        ops.resolve_backend(torch.device("cpu"), backend="triton")


def test_backend_is_logged_once():
    # a fresh process: the log line is once per process, whatever ran before in this one
    probe = ("import logging, torch\n"
             "from mamba_bio_audio import ops\n"
             "logging.basicConfig(level=logging.INFO, format='%(message)s')\n"
             "for _ in range(3):\n"
             "    ops.rms_norm_fn(torch.randn(2, 8), torch.ones(8), None, backend='reference')\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if "using the" in line]
    assert lines == ["mamba_bio_audio.ops.rms_norm_fn: using the reference backend"]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: ops.causal_conv1d_fn(torch.randn(2, 4, 9), torch.randn(4, 5)), "weight width must be 2, 3 or 4"),
        (lambda: ops.causal_conv1d_fn(torch.randn(2, 4, 9), torch.randn(3, 4)), r"weight must have shape \(dim, width\)"),
        (lambda: ops.causal_conv1d_fn(torch.randn(2, 4, 9), torch.randn(4, 4), activation="relu"), "activation"),
        (lambda: ops.causal_conv1d_update(torch.randn(2, 4), torch.randn(2, 4, 2), torch.randn(4, 4)), "conv_state must hold"),
        (lambda: ops.rms_norm_fn(torch.randn(2, 8), torch.ones(7), None), r"weight must have shape \(hidden,\)"),
        (lambda: ops.rms_norm_fn(torch.randn(2, 8), torch.ones(8), None, residual=torch.randn(2, 9)), "residual must have"),
        (lambda: ops.rms_norm_fn(torch.randn(2, 8), torch.ones(8), torch.ones(7)), r"bias must have shape \(hidden,\)"),
        (lambda: ops.selective_state_update(torch.zeros(2, 4, 3), torch.randn(2, 4), torch.randn(2, 4),
                                            torch.randn(4, 3), torch.randn(2, 5), torch.randn(2, 3)), "B must have shape"),
        (lambda: ops.selective_state_update(torch.zeros(2, 4, 8), torch.randn(2, 4), torch.randn(2, 4),
                                            torch.randn(4, 3), torch.randn(2, 3), torch.randn(2, 3)), "state must have shape"),
        (lambda: ops.selective_state_update(torch.zeros(2, 4, 3), torch.randn(2, 4), torch.randn(2, 4), torch.randn(4, 3),
                                            torch.randn(2, 3), torch.randn(2, 3), D=torch.ones(5)), r"D must have shape \(dim,\)"),
        (lambda: ops.causal_conv1d_fn(torch.randn(2, 4, 9), torch.randn(4, 4, dtype=torch.float64).to(torch.int64)), "floating-point"),
    ],
)
def test_bad_arguments_name_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()
