"""The CPU full causal conv against ``causal_conv1d_ref``: x stored as (batch, L, dim) (the Mamba mixer's CPU
layout) through shifted multiply-adds, x otherwise through the reference itself; values, final states, every
gradient, and the output stored channels-last."""
import pytest
import torch

from mamba_bio_audio import ops
from mamba_bio_audio.kernels.causal_conv1d.cpu import causal_conv1d_cpu
from mamba_bio_audio.kernels.causal_conv1d.reference import causal_conv1d_ref


def _inputs(batch=2, dim=5, length=11, width=4, bias=True, initial=True, channels_last=True, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, length, dim, generator=gen)
    x = x.transpose(1, 2) if channels_last else x.transpose(1, 2).contiguous()
    return dict(
        x=x.requires_grad_(),
        weight=torch.randn(dim, width, generator=gen).requires_grad_(),
        bias=torch.randn(dim, generator=gen).requires_grad_() if bias else None,
        initial_states=torch.randn(batch, dim, width - 1, generator=gen).requires_grad_() if initial else None,
    )


def _run(fn, inputs, activation, final):
    result = fn(inputs["x"], inputs["weight"], inputs["bias"], inputs["initial_states"], final,
                activation=activation)
    out, states = result if final else (result, None)
    loss = (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum()
    if final:
        loss = loss + (states * 0.5).sum()
    leaves = {k: v for k, v in inputs.items() if v is not None}
    grads = torch.autograd.grad(loss, list(leaves.values()))
    return out, states, dict(zip(leaves, grads))


@pytest.mark.parametrize("case", [
    dict(activation="silu", final=True), dict(activation=None, final=False, bias=False, initial=False),
    dict(activation="silu", final=True, width=2), dict(activation="silu", final=True, channels_last=False),
    dict(activation="silu", final=True, length=2), dict(activation=None, final=True, batch=3, dim=150, length=40),
    dict(activation="silu", final=True, width=1, initial=False),
], ids=["silu-states", "bare", "width2", "contiguous-x", "shorter-than-the-taps", "batch3-dim150", "width1"])
def test_cpu_conv_matches_reference(case):
    case = dict(case)
    activation, final = case.pop("activation"), case.pop("final")
    inputs = _inputs(**case)
    out, states, grads = _run(causal_conv1d_cpu, inputs, activation, final)
    out_e, states_e, grads_e = _run(causal_conv1d_ref, inputs, activation, final)
    torch.testing.assert_close(out, out_e, rtol=1e-5, atol=1e-6)
    if final:
        assert states.is_contiguous()
        torch.testing.assert_close(states, states_e)
    for name, grad in grads.items():
        torch.testing.assert_close(grad, grads_e[name], rtol=1e-5, atol=1e-5, msg=lambda m: f"d{name}: {m}")
    if case.get("channels_last", True):
        assert out.stride(1) == 1  # stored (batch, L, dim), like its input: the scan reads it without a copy


def test_ops_routes_cpu_tensors_here_and_keeps_bf16():
    inputs = _inputs()
    x = inputs["x"].detach().to(torch.bfloat16)
    out = ops.causal_conv1d_fn(x, inputs["weight"].detach(), inputs["bias"].detach(), activation="silu",
                               backend="cpu")
    expected = causal_conv1d_ref(x, inputs["weight"].detach(), inputs["bias"].detach(), activation="silu")
    assert out.dtype == torch.bfloat16 and out.stride(1) == 1
    torch.testing.assert_close(out.float(), expected.float(), rtol=2e-2, atol=2e-2)
