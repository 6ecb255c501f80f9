"""Parity of the Triton causal conv1d (forward, backward, initial/final state) and its decode update with
``causal_conv1d_ref`` / ``causal_conv1d_update_ref``."""
import pytest
import torch

from mamba_bio_audio import ops
from mamba_bio_audio.kernels.causal_conv1d.reference import causal_conv1d_ref, causal_conv1d_update_ref


def leaf(device, *shape, seed, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=gen).to(device=device, dtype=dtype).requires_grad_()


def run_both(x, weight, bias, activation, initial_state, g_out, g_final):
    """Outputs and the gradients of <out, g_out> + <final_state, g_final> through the kernel and the reference."""
    inputs = [t for t in (x, weight, bias, initial_state) if t is not None]
    results = []
    for fn, backend in ((ops.causal_conv1d_fn, dict(backend="triton")), (causal_conv1d_ref, {})):
        out, final = fn(x, weight, bias, initial_states=initial_state, return_final_states=True, activation=activation,
                        **backend)
        results.append((out, final, torch.autograd.grad((out, final), inputs, (g_out, g_final))))
    return results


@pytest.mark.parametrize("width", [2, 3, 4])
@pytest.mark.parametrize("activation", [None, "silu"])
def test_forward_backward_with_initial_and_final_state(width, activation, device, assert_close):
    batch, dim, length = 2, 6, 37
    x = leaf(device, batch, dim, length, seed=0)
    weight = leaf(device, dim, width, seed=1)
    bias = leaf(device, dim, seed=2)
    init = leaf(device, batch, dim, width - 1, seed=3)
    g_out = torch.randn(batch, dim, length, generator=torch.Generator().manual_seed(4)).to(device)
    g_final = torch.randn(batch, dim, width - 1, generator=torch.Generator().manual_seed(5)).to(device)
    (out, final, grads), (ref_out, ref_final, ref_grads) = run_both(x, weight, bias, activation, init, g_out, g_final)
    assert_close(out, ref_out, name="out")
    assert_close(final, ref_final, name="final_state")
    for name, got, want in zip(("x", "weight", "bias", "initial_state"), grads, ref_grads):
        assert_close(got, want, name=f"d{name}")


def test_no_bias_no_initial_state_channel_last(device, assert_close):
    """x channel-last (stride 1 on dim), which the kernels read through their strides without a copy."""
    batch, dim, length, width = 2, 8, 40, 4
    x = leaf(device, batch, length, dim, seed=6).transpose(1, 2)
    weight = leaf(device, dim, width, seed=7)
    g_out = torch.randn(batch, dim, length, generator=torch.Generator().manual_seed(8)).to(device)
    g_final = torch.zeros(batch, dim, width - 1, device=device)
    (out, final, grads), (ref_out, ref_final, ref_grads) = run_both(x, weight, None, "silu", None, g_out, g_final)
    assert_close(out, ref_out, name="out")
    assert_close(final, ref_final, name="final_state")
    for name, got, want in zip(("x", "weight"), grads, ref_grads):
        assert_close(got, want, name=f"d{name}")


def test_sequence_shorter_than_the_state(device, assert_close):
    """L < W-1: the final state keeps part of the initial state, and its gradient flows back there."""
    x = leaf(device, 2, 4, 2, seed=9)
    weight = leaf(device, 4, 4, seed=10)
    init = leaf(device, 2, 4, 3, seed=11)
    g_out = torch.ones(2, 4, 2, device=device)
    g_final = torch.randn(2, 4, 3, generator=torch.Generator().manual_seed(12)).to(device)
    (out, final, grads), (ref_out, ref_final, ref_grads) = run_both(x, weight, None, None, init, g_out, g_final)
    assert_close(out, ref_out, name="out")
    assert_close(final, ref_final, name="final_state")
    for name, got, want in zip(("x", "weight", "initial_state"), grads, ref_grads):
        assert_close(got, want, name=f"d{name}")


def test_bf16(device, assert_close):
    x = leaf(device, 2, 8, 33, seed=13, dtype=torch.bfloat16)
    weight = leaf(device, 8, 4, seed=14)
    bias = leaf(device, 8, seed=15)
    out = ops.causal_conv1d_fn(x, weight, bias, activation="silu", backend="triton")
    ref = causal_conv1d_ref(x, weight, bias, activation="silu")
    assert out.dtype == torch.bfloat16
    assert_close(out, ref, torch.bfloat16, name="out")


@pytest.mark.parametrize("steps", [None, 3])
@pytest.mark.parametrize("state_len", [3, 5])
def test_update_matches_reference_in_place(steps, state_len, device, assert_close):
    batch, dim, width = 2, 6, 4
    gen = torch.Generator().manual_seed(16)
    x_shape = (batch, dim) if steps is None else (batch, dim, steps)
    x = torch.randn(*x_shape, generator=gen).to(device)
    weight = torch.randn(dim, width, generator=gen).to(device)
    bias = torch.randn(dim, generator=gen).to(device)
    state = torch.randn(batch, dim, state_len, generator=gen).to(device)
    ref_state = state.clone()
    out = ops.causal_conv1d_update(x, state, weight, bias, activation="silu", backend="triton")
    ref = causal_conv1d_update_ref(x, ref_state, weight, bias, activation="silu")
    assert out.shape == x.shape
    assert_close(out, ref, name="out")
    assert torch.equal(state, ref_state)


def test_update_steps_continue_the_full_convolution(device, assert_close):
    """Prefix through the conv (final state out), then token-by-token updates = conv over the whole sequence."""
    batch, dim, width, length, prefix = 2, 6, 4, 20, 12
    gen = torch.Generator().manual_seed(17)
    x = torch.randn(batch, dim, length, generator=gen).to(device)
    weight = torch.randn(dim, width, generator=gen).to(device)
    bias = torch.randn(dim, generator=gen).to(device)
    full = ops.causal_conv1d_fn(x, weight, bias, activation="silu", backend="triton")
    _, state = ops.causal_conv1d_fn(x[..., :prefix], weight, bias, return_final_states=True, activation="silu",
                                    backend="triton")
    steps = [ops.causal_conv1d_update(x[..., t], state, weight, bias, activation="silu", backend="triton")
             for t in range(prefix, length)]
    assert_close(torch.stack(steps, dim=-1), full[..., prefix:], name="out")
