"""The kernels as torch custom ops: ``torch.library.opcheck`` (schema, fake tensors, autograd registration, AOT
dispatch) and ``torch.compile(fullgraph=True)`` of functions that call them, forward and backward.

On CPU the compiled tests use the ``aot_eager`` backend: it runs dynamo and AOTAutograd (where graph breaks and
fake-tensor or autograd-registration mistakes show up) while the kernels still run under the interpreter; inductor
works too but spends tens of seconds compiling C++ for the surrounding ops, so it is exercised in the GPU tests.
"""
import pytest
import torch

from mamba_bio_audio.kernels.causal_conv1d.reference import causal_conv1d_ref
from mamba_bio_audio.kernels.causal_conv1d.triton import (causal_conv1d_bwd, causal_conv1d_fwd, causal_conv1d_triton,
                                                  causal_conv1d_update_op)
from mamba_bio_audio.kernels.rms_norm.reference import rms_norm_ref
from mamba_bio_audio.kernels.rms_norm.triton import rms_norm_bwd, rms_norm_fwd, rms_norm_triton
from mamba_bio_audio.kernels.selective_scan.reference import selective_scan_ref
from mamba_bio_audio.kernels.selective_scan.triton import selective_scan_bwd, selective_scan_fwd, selective_scan_tuned
from mamba_bio_audio.kernels.selective_state_update.reference import selective_state_update_ref
from mamba_bio_audio.kernels.selective_state_update.triton import selective_state_update_op, selective_state_update_triton


def rand(device, *shape, seed, grad=False, scale=1.0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=gen) * scale).to(device).requires_grad_(grad)


def scan_args(device, grad):
    batch, d_inner, n_state, length = 1, 4, 4, 20
    A = (-0.5 - torch.rand(d_inner, n_state, generator=torch.Generator().manual_seed(0))).to(device)
    return (rand(device, batch, d_inner, length, seed=1, grad=grad), rand(device, batch, d_inner, length, seed=2,
            grad=grad, scale=0.5), A.requires_grad_(grad), rand(device, batch, 1, n_state, length, seed=3, grad=grad),
            rand(device, batch, 1, n_state, length, seed=4, grad=grad), rand(device, d_inner, seed=5, grad=grad),
            rand(device, batch, d_inner, length, seed=6, grad=grad), rand(device, d_inner, seed=7, grad=grad),
            rand(device, batch, d_inner, n_state, seed=8, grad=grad))


def test_opcheck_selective_scan(device):
    args = scan_args(device, grad=True)
    torch.library.opcheck(selective_scan_fwd, (*args, True, 16, 2, True, True, 1))


def test_opcheck_causal_conv1d(device):
    x, weight, bias = rand(device, 2, 4, 9, seed=0, grad=True), rand(device, 4, 3, seed=1, grad=True), None
    init = rand(device, 2, 4, 2, seed=2, grad=True)
    torch.library.opcheck(causal_conv1d_fwd, (x, weight, bias, init, True))
    state = rand(device, 2, 4, 3, seed=3)
    torch.library.opcheck(causal_conv1d_update_op, (rand(device, 2, 4, 1, seed=4), state, weight.detach(),
                                                            rand(device, 4, seed=5), False))


def test_opcheck_rms_norm(device):
    x, weight, residual = (rand(device, 6, 24, seed=0, grad=True), rand(device, 24, seed=1, grad=True),
                           rand(device, 6, 24, seed=2, grad=True))
    torch.library.opcheck(rms_norm_fwd, (x, weight, residual, 1e-5, True, True))
    torch.library.opcheck(rms_norm_fwd, (x, weight, None, 1e-5, False, False))


def test_opcheck_selective_state_update(device):
    batch, dim, n_state = 2, 8, 4
    args = (rand(device, batch, dim, n_state, seed=0), rand(device, batch, dim, seed=1),
            rand(device, batch, dim, seed=2), -torch.rand(dim, n_state, device=device),
            rand(device, batch, 1, n_state, seed=3), rand(device, batch, 1, n_state, seed=4), None,
            rand(device, batch, dim, seed=5), None, True)
    torch.library.opcheck(selective_state_update_op, args)


def _mini_block(hidden, residual, conv_weight, A, B, C, D, norm_weight):
    """A toy Mamba-like block through all three differentiable kernels (what a compiled model sees)."""
    normed, residual = rms_norm_triton(hidden, norm_weight, None, residual, prenorm=True, residual_in_fp32=True)
    x = causal_conv1d_triton(normed.transpose(1, 2), conv_weight, activation="silu")
    y, last = selective_scan_tuned(x, x.sigmoid(), A, B, C, D, delta_softplus=True, return_last_state=True,
                                   block_l=16)
    return y.transpose(1, 2) + residual, last


def _mini_block_ref(hidden, residual, conv_weight, A, B, C, D, norm_weight):
    normed, residual = rms_norm_ref(hidden, norm_weight, None, residual, prenorm=True, residual_in_fp32=True)
    x = causal_conv1d_ref(normed.transpose(1, 2), conv_weight, activation="silu")
    y, last = selective_scan_ref(x, x.sigmoid(), A, B, C, D, delta_softplus=True, return_last_state=True)
    return y.transpose(1, 2) + residual, last


def test_compiled_block_has_no_graph_break_and_matches_eager(device, assert_close):
    batch, length, d_model, n_state = 1, 24, 4, 4
    params = [rand(device, batch, length, d_model, seed=0, grad=True), rand(device, batch, length, d_model, seed=1),
              rand(device, d_model, 4, seed=2, grad=True),
              (-0.5 - torch.rand(d_model, n_state, device=device)).requires_grad_(),
              rand(device, batch, n_state, length, seed=3, grad=True), rand(device, batch, n_state, length, seed=4),
              rand(device, d_model, seed=5, grad=True), rand(device, d_model, seed=6, grad=True)]
    leaves = [p for p in params if p.requires_grad]
    backend = "inductor" if device.type == "cuda" else "aot_eager"
    compiled = torch.compile(_mini_block, fullgraph=True, backend=backend)  # fullgraph: a graph break raises
    results = []
    for fn in (compiled, _mini_block_ref):
        out, last = fn(*params)
        loss = (out * out).sum() + last.sum()
        results.append((out, last, torch.autograd.grad(loss, leaves)))
    (out, last, grads), (ref_out, ref_last, ref_grads) = results
    assert_close(out, ref_out, name="out")
    assert_close(last, ref_last, name="last_state")
    for i, (got, want) in enumerate(zip(grads, ref_grads)):
        assert_close(got, want, name=f"grad {i}")


def test_compiled_decode_step_mutates_state(device, assert_close):
    batch, dim, n_state = 2, 8, 4
    gen = torch.Generator().manual_seed(9)
    x, dt = torch.randn(batch, dim, generator=gen).to(device), torch.randn(batch, dim, generator=gen).to(device)
    A = -torch.rand(dim, n_state, generator=gen).to(device)
    B, C = torch.randn(batch, n_state, generator=gen).to(device), torch.randn(batch, n_state, generator=gen).to(device)
    state = torch.randn(batch, dim, n_state, generator=gen).to(device)
    ref_state = state.clone()

    def step(state, x, dt):
        return selective_state_update_triton(state, x, dt, A, B, C, dt_softplus=True) * 2

    backend = "inductor" if device.type == "cuda" else "aot_eager"
    out = torch.compile(step, fullgraph=True, backend=backend)(state, x, dt)
    ref = selective_state_update_ref(ref_state, x, dt, A, B, C, dt_softplus=True) * 2
    assert_close(out, ref, name="out")
    assert_close(state, ref_state, name="state")


@pytest.mark.parametrize("name", ["selective_scan_fwd", "selective_scan_bwd", "causal_conv1d_fwd", "causal_conv1d_bwd",
                                  "causal_conv1d_update", "rms_norm_fwd", "rms_norm_bwd", "selective_state_update"])
def test_ops_are_registered(name):
    assert hasattr(torch.ops.mamba_bio_audio, name)


def test_opcheck_backward_ops(device):
    """The backward kernels are custom ops of their own (one node in a compiled backward graph)."""
    u, delta, A, B, C, D, z, bias, h0 = scan_args(device, grad=False)
    _, _, states = selective_scan_fwd(u, delta, A, B, C, D, z, bias, h0, True, 16, 2, True, True, 1)
    torch.library.opcheck(selective_scan_bwd, (u, delta, A, B, C, D, z, bias, states, torch.ones_like(u),
                                                          torch.ones_like(h0), True, 16, 2, True, 1))
    x, weight, init = rand(device, 2, 4, 9, seed=0), rand(device, 4, 3, seed=1), rand(device, 2, 4, 2, seed=2)
    torch.library.opcheck(causal_conv1d_bwd, (x, weight, None, init, torch.ones_like(x), True))
    s, weight, dy = rand(device, 6, 24, seed=3), rand(device, 24, seed=4), rand(device, 6, 24, seed=5)
    rstd = torch.rand(6, device=device) + 0.5
    torch.library.opcheck(rms_norm_bwd, (s, weight, rstd, dy, None, True, torch.float32, torch.float32))
