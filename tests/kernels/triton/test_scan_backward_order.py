"""The backward custom ops of both native scan backends return the same gradients in the same order, the forward's
input order (``selective_scan.common.SCAN_INPUTS``), and match the reference's, across chunk boundaries.

The CPU ops run on CPU tensors; the Triton ops on the test device (the GPU, or the CPU under the interpreter).
L = 40 with BLOCK_L 16 gives two full chunks and a partial one.
"""
import pytest
import torch

from mamba_bio_audio.kernels.selective_scan import cpu as scan_cpu
from mamba_bio_audio.kernels.selective_scan import triton as scan_triton
from mamba_bio_audio.kernels.selective_scan.common import SCAN_INPUTS
from mamba_bio_audio.kernels.selective_scan.reference import selective_scan_ref

BLOCK_L, BLOCK_D = 16, 2


def make_inputs(present, batch=2, d_inner=4, n_state=4, length=40, groups=2, seed=0):
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape, scale=1.0):
        return torch.randn(*shape, generator=gen) * scale

    inputs = dict(
        u=rand(batch, d_inner, length), delta=rand(batch, d_inner, length, scale=0.5),
        A=-0.5 - torch.rand(d_inner, n_state, generator=gen) * 2,
        B=rand(batch, groups, n_state, length), C=rand(batch, groups, n_state, length),
        D=rand(d_inner), z=rand(batch, d_inner, length), delta_bias=rand(d_inner, scale=0.3),
        initial_state=rand(batch, d_inner, n_state),
    )
    return {name: t if name in present else None for name, t in inputs.items()}


def backward(fwd, bwd, inputs, dout, dlast, fwd_config, bwd_config):
    """The backward op's outputs for ``inputs`` and the cotangents, from its own forward's saved states."""
    args = [inputs[name] for name in SCAN_INPUTS]
    _, _, states = fwd(*args, True, *fwd_config)
    return bwd(*args[:8], states, dout, dlast, True, *bwd_config)


def reference_gradients(inputs, dout, dlast):
    leaves = {name: t.clone().requires_grad_() for name, t in inputs.items() if t is not None}
    full = {name: leaves.get(name) for name in SCAN_INPUTS}
    out, last = selective_scan_ref(*(full[name] for name in SCAN_INPUTS[:6]), z=full["z"],
                                   delta_bias=full["delta_bias"], delta_softplus=True, return_last_state=True,
                                   initial_state=full["initial_state"])
    return dict(zip(leaves, torch.autograd.grad((out, last), list(leaves.values()), (dout, dlast))))


@pytest.mark.parametrize("present", [SCAN_INPUTS, SCAN_INPUTS[:5]], ids=["all-inputs", "no-optional-inputs"])
def test_both_backward_ops_return_reference_gradients_in_input_order(present, device, assert_close):
    inputs = make_inputs(present)
    gen = torch.Generator().manual_seed(1)
    dout = torch.randn(inputs["u"].shape, generator=gen)
    dlast = torch.randn(inputs["u"].shape[0], inputs["u"].shape[1], inputs["A"].shape[1], generator=gen)
    expected = reference_gradients(inputs, dout, dlast)
    on_device = {name: None if t is None else t.to(device) for name, t in inputs.items()}
    results = {
        "cpu": backward(scan_cpu.selective_scan_cpu_fwd, scan_cpu.selective_scan_cpu_bwd, inputs, dout, dlast,
                        (BLOCK_L,), (BLOCK_L,)),
        "triton": backward(scan_triton.selective_scan_fwd, scan_triton.selective_scan_bwd, on_device,
                           dout.to(device), dlast.to(device), (BLOCK_L, BLOCK_D, True, True), (BLOCK_L, BLOCK_D, True)),
    }
    for backend, grads in results.items():
        assert len(grads) == len(SCAN_INPUTS), backend
        for name, grad in zip(SCAN_INPUTS, grads):
            if name in expected:
                assert grad.shape == inputs[name].shape and grad.dtype == inputs[name].dtype, (backend, name)
                assert_close(grad.cpu(), expected[name], name=f"{backend} d{name}")
            elif name == "initial_state":  # always returned: the state gradient exists without an initial state
                assert grad.shape == (2, 4, 4) and grad.dtype == torch.float32, backend
            else:
                assert grad.numel() == 0, (backend, name)
