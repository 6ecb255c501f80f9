"""The CPU conv decode step against ``causal_conv1d_update_ref`` and, stepped over a sequence, against the full
causal conv: outputs, the updated state, and the gradients of x, weight and bias."""
import pytest
import torch

from mamba_bio_audio import ops
from mamba_bio_audio.kernels.causal_conv1d.cpu import causal_conv1d_update_cpu
from mamba_bio_audio.kernels.causal_conv1d.reference import causal_conv1d_ref, causal_conv1d_update_ref


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("steps", [None, 1, 5])
@pytest.mark.parametrize("extra_state", [0, 3])
@pytest.mark.parametrize("activation, with_bias", [(None, False), ("silu", True)])
def test_matches_reference(dtype, steps, extra_state, activation, with_bias):
    gen = torch.Generator().manual_seed(0)
    batch, dim, width = 2, 24, 4
    shape = (batch, dim) if steps is None else (batch, dim, steps)
    x = torch.randn(shape, generator=gen).to(dtype).requires_grad_()
    weight = torch.randn(dim, width, generator=gen).requires_grad_()
    bias = torch.randn(dim, generator=gen).requires_grad_() if with_bias else None
    state = torch.randn(batch, dim, width - 1 + extra_state, generator=gen).to(dtype)
    state_ref = state.clone()
    out = causal_conv1d_update_cpu(x, state, weight, bias, activation)
    expected = causal_conv1d_update_ref(x, state_ref, weight, bias, activation)
    tol = dict(rtol=1e-2, atol=1e-2) if dtype == torch.bfloat16 else dict(rtol=1e-5, atol=1e-5)
    assert out.dtype == dtype and out.shape == x.shape
    torch.testing.assert_close(out, expected, **tol)
    torch.testing.assert_close(state, state_ref, rtol=0, atol=0)
    cotangent = torch.randn(out.shape, generator=gen).to(dtype)
    inputs = [t for t in (x, weight, bias) if t is not None]
    grads = torch.autograd.grad(out, inputs, cotangent)
    grads_ref = torch.autograd.grad(expected, inputs, cotangent)
    for g, g_ref in zip(grads, grads_ref):
        torch.testing.assert_close(g.float(), g_ref.float(), **tol)


def test_steps_equal_the_full_conv_through_ops():
    gen = torch.Generator().manual_seed(1)
    batch, dim, width, length = 3, 16, 4, 11
    x = torch.randn(batch, dim, length, generator=gen)
    weight, bias = torch.randn(dim, width, generator=gen), torch.randn(dim, generator=gen)
    full = causal_conv1d_ref(x, weight, bias, activation="silu")
    state = torch.zeros(batch, dim, width - 1)
    stepped = [ops.causal_conv1d_update(x[:, :, t], state, weight, bias, "silu", backend="cpu") for t in range(7)]
    stepped.append(ops.causal_conv1d_update(x[:, :, 7:], state, weight, bias, "silu", backend="cpu"))
    torch.testing.assert_close(torch.cat([s.unsqueeze(-1) for s in stepped[:-1]] + [stepped[-1]], -1), full)
    torch.testing.assert_close(state, x[:, :, -(width - 1):])
