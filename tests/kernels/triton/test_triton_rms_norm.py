"""Parity of the fused residual-add + RMSNorm Triton kernels with ``rms_norm_ref``, forward and backward."""
import pytest
import torch

from mamba_bio_audio import ops
from mamba_bio_audio.kernels.rms_norm.reference import rms_norm_ref


def leaf(device, *shape, seed, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=gen).to(device=device, dtype=dtype).requires_grad_()


@pytest.mark.parametrize(
    "dtype, with_residual, prenorm, residual_in_fp32",
    [
        (torch.float32, False, False, False),
        (torch.float32, True, True, False),
        (torch.float32, True, False, True),
        (torch.bfloat16, True, True, False),
        (torch.bfloat16, True, True, True),
        (torch.bfloat16, False, True, True),
    ],
)
def test_forward_backward_match_reference(dtype, with_residual, prenorm, residual_in_fp32, device, assert_close):
    shape = (3, 5, 40)  # hidden 40: not a power of two
    x = leaf(device, *shape, seed=0, dtype=dtype)
    weight = leaf(device, shape[-1], seed=1)
    residual = leaf(device, *shape, seed=2, dtype=dtype) if with_residual else None
    inputs = [t for t in (x, weight, residual) if t is not None]
    results = []
    for fn, backend in ((ops.rms_norm_fn, dict(backend="triton")), (rms_norm_ref, {})):
        got = fn(x, weight, None, residual=residual, eps=1e-5, prenorm=prenorm, residual_in_fp32=residual_in_fp32,
                 **backend)
        outs = got if prenorm else (got,)
        # the loss weights normed and (with prenorm) the residual stream, as the next block would
        loss = sum((o.float() * torch.linspace(-1, 1, o.numel(), device=device).view(o.shape)).sum() for o in outs)
        results.append((outs, torch.autograd.grad(loss, inputs)))
    (outs, grads), (ref_outs, ref_grads) = results
    for got, want in zip(outs, ref_outs):
        assert got.dtype == want.dtype and got.shape == want.shape
        assert_close(got, want, dtype)
    for name, got, want in zip(("x", "weight", "residual"), grads, ref_grads):
        assert got.dtype == want.dtype, name
        assert_close(got, want, dtype, name=f"d{name}")


def test_many_rows_share_the_weight_gradient(device, assert_close):
    """More rows than backward programs: each program walks several rows and writes one dweight partial."""
    x = leaf(device, 37, 16, seed=3)
    weight = leaf(device, 16, seed=4)
    out = ops.rms_norm_fn(x, weight, None, backend="triton")
    ref = rms_norm_ref(x, weight, None)
    assert_close(out, ref, name="out")
    assert_close(torch.autograd.grad(out.sum(), weight)[0], torch.autograd.grad(ref.sum(), weight)[0], name="dw")


def test_a_bias_is_refused_not_dropped(device):
    """mamba_ssm's positional ``bias``: the reference adds it, the kernel has none and says so."""
    x, weight, bias = torch.randn(3, 16, device=device), torch.ones(16, device=device), torch.randn(16, device=device)
    with pytest.raises(ValueError, match="bias is not supported by the triton rms_norm kernel"):
        ops.rms_norm_fn(x, weight, bias, backend="triton")
    torch.testing.assert_close(rms_norm_ref(x, weight, bias), rms_norm_ref(x, weight, None) + bias)
