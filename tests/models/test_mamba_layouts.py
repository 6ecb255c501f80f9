"""The Mamba mixer's two activation layouts give the same results: (batch, L, d_inner) storage (the CPU path, no
transposes) and L-contiguous storage (the GPU path), through the scan and its gradients."""
import torch

from mamba_bio_audio.modules.mamba import Mamba


def test_scan_out_is_the_same_in_both_layouts():
    torch.manual_seed(0)
    mixer = Mamba(16, d_state=4)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, mixer.d_inner, 37, generator=gen)
    z = torch.randn(2, mixer.d_inner, 37, generator=gen)
    results = []
    for stored in (lambda t: t.contiguous(), lambda t: t.transpose(1, 2).contiguous().transpose(1, 2)):
        xs, zs = stored(x).requires_grad_(), stored(z).requires_grad_()
        assert (xs.stride(1) == 1) == (len(results) == 1)
        out, last = mixer._scan_out(xs, zs, None, return_last_state=True)
        grads = torch.autograd.grad((out * torch.linspace(-1, 1, 16)).sum() + last.sum(),
                                    [xs, zs, *mixer.parameters()], allow_unused=True)
        results.append((out, last, grads))
    (out_a, last_a, grads_a), (out_b, last_b, grads_b) = results
    torch.testing.assert_close(out_b, out_a, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(last_b, last_a, rtol=1e-5, atol=1e-6)
    for a, b in zip(grads_a, grads_b):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)
