"""The scan's carry pass over segments: ``chain_segments`` (one Triton launch) against its PyTorch twin
``chain_segments_ref``, forward and reverse, with and without a start state, one to several segments."""
import pytest
import torch

from mamba_bio_audio.kernels.selective_scan.reference import chain_segments_ref
from mamba_bio_audio.kernels.selective_scan.triton_kernels import chain_segments


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("with_start", [False, True])
@pytest.mark.parametrize("n_seg,batch,d_inner,n_state", [(1, 2, 3, 4), (3, 2, 3, 4), (5, 1, 70, 16)])
def test_carry_pass_equals_the_reference(device, reverse, with_start, n_seg, batch, d_inner, n_state):
    gen = torch.Generator().manual_seed(n_seg * 7 + batch)
    A = (-0.5 - 2 * torch.rand(d_inner, n_state, generator=gen)).to(device)
    parts = torch.randn(n_seg, batch, d_inner, n_state, generator=gen).to(device)
    dt_sums = (3 * torch.rand(n_seg, batch, d_inner, generator=gen)).to(device)
    # a start state that is not contiguous, as an initial_state slice can be
    start = torch.randn(batch, n_state, d_inner, generator=gen).to(device).transpose(1, 2) if with_start else None
    got = chain_segments(A, start, parts, dt_sums, reverse=reverse)
    expected = chain_segments_ref(A, start, parts, dt_sums, reverse=reverse)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    # the walk's first entry is the start (or zero), whichever end it walks from
    first = -1 if reverse else 0
    torch.testing.assert_close(got[first], start if with_start else torch.zeros_like(got[first]))
