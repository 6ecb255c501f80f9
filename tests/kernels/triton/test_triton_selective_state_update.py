"""The Triton decode step: in place, equal to ``selective_state_update_ref``, and step by step equal to the scan."""
import pytest
import torch

from mamba_bio_audio import ops
from mamba_bio_audio.kernels.selective_scan.reference import selective_scan_ref
from mamba_bio_audio.kernels.selective_state_update.reference import selective_state_update_ref


@pytest.mark.parametrize("groups", [None, 2])
def test_steps_equal_the_scan(groups, device, assert_close):
    batch, dim, n_state, length = 2, 8, 5, 12
    gen = torch.Generator().manual_seed(0)

    def rand(*shape, scale=1.0):
        return (torch.randn(*shape, generator=gen) * scale).to(device)

    u, delta, z = rand(batch, dim, length), rand(batch, dim, length, scale=0.5), rand(batch, dim, length)
    bc_shape = (batch, n_state, length) if groups is None else (batch, groups, n_state, length)
    B, C = rand(*bc_shape), rand(*bc_shape)
    A = -0.5 - torch.rand(dim, n_state, generator=gen).to(device)
    D, dt_bias, h0 = rand(dim), rand(dim, scale=0.3), rand(batch, dim, n_state)
    ref_out, ref_last = selective_scan_ref(u, delta, A, B, C, D, z=z, delta_bias=dt_bias, delta_softplus=True,
                                           return_last_state=True, initial_state=h0)
    # the state lives in a larger preallocated cache, as in generation: a strided view updated in place
    cache = torch.zeros(batch, dim, n_state + 3, device=device)
    state = cache[..., 1:n_state + 1]
    state.copy_(h0)
    outs = [ops.selective_state_update(state, u[..., t], delta[..., t], A, B[..., t], C[..., t], D=D, z=z[..., t],
                                       dt_bias=dt_bias, dt_softplus=True, backend="triton")
            for t in range(length)]
    assert_close(torch.stack(outs, dim=-1), ref_out, name="out")
    assert_close(state, ref_last, name="state")
    assert torch.count_nonzero(cache[..., 0]) == 0 and torch.count_nonzero(cache[..., n_state + 1:]) == 0


@pytest.mark.parametrize("n_state", [16, 40])
def test_matches_reference_without_optional_inputs(n_state, device, assert_close):
    batch, dim = 3, 20
    gen = torch.Generator().manual_seed(1)
    state = torch.randn(batch, dim, n_state, generator=gen).to(device)
    x, dt = torch.randn(batch, dim, generator=gen).to(device), torch.rand(batch, dim, generator=gen).to(device)
    A = -torch.rand(dim, n_state, generator=gen).to(device)
    B, C = torch.randn(batch, n_state, generator=gen).to(device), torch.randn(batch, n_state, generator=gen).to(device)
    ref_state = state.clone()
    out = ops.selective_state_update(state, x, dt, A, B, C, backend="triton")
    ref = selective_state_update_ref(ref_state, x, dt, A, B, C)
    assert_close(out, ref, name="out")
    assert_close(state, ref_state, name="state")
