import pytest
import torch

from mamba_bio_audio import ops


def test_default_backend_follows_device(monkeypatch):
    monkeypatch.delenv("MBA_BACKEND", raising=False)
    assert ops.resolve_backend(torch.device("cpu")) == "cpu"
    assert ops.resolve_backend(torch.device("cuda", 0)) == "triton"


def test_env_and_argument_override(monkeypatch):
    monkeypatch.setenv("MBA_BACKEND", "reference")
    assert ops.resolve_backend(torch.device("cpu")) == "reference"
    assert ops.resolve_backend(torch.device("cpu"), backend="cpu") == "cpu"
    monkeypatch.setenv("MBA_BACKEND", "cuda")
    with pytest.raises(ValueError, match="MBA_BACKEND must be one of"):
        ops.resolve_backend(torch.device("cpu"))
    with pytest.raises(ValueError, match="backend must be one of"):
        ops.resolve_backend(torch.device("cpu"), backend="fast")


def test_triton_needs_cuda_or_interpreter(monkeypatch):
    # TRITON_INTERPRET is read once, when the Triton backends are first imported (as Triton itself reads it)
    common = pytest.importorskip("mamba_bio_audio.kernels._triton_common")
    monkeypatch.setattr(common, "INTERPRET", False)
    with pytest.raises(ValueError, match="needs CUDA tensors"):
        ops.resolve_backend(torch.device("cpu"), backend="triton")


def test_backend_is_logged_once(caplog, monkeypatch):
    monkeypatch.setattr(ops, "_announced", set())
    x = torch.randn(2, 8)
    w = torch.ones(8)
    with caplog.at_level("INFO", logger="mamba_bio_audio.ops"):
        for _ in range(3):
            ops.rms_norm_fn(x, w, None, backend="reference")
    assert [r.getMessage() for r in caplog.records] == ["mamba_bio_audio.ops.rms_norm_fn: using the reference backend"]


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
