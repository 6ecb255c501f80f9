"""The numba CPU scan on (batch, L, d_inner)-stored inputs (a transposed linear layer's output, what the Mamba
mixer feeds it): the same values and gradients as the reference and as the (batch, d_inner, L) layout, outputs and
gradients returned in the channels-last layout, across chunk boundaries and channel blocks, and the fake kernels
giving the real strides (so compiled graphs agree)."""
import pytest
import torch

from mamba_bio_audio.kernels.selective_scan.cpu import (channels_last, selective_scan_cpu_bwd, selective_scan_cpu_fwd,
                                                        selective_scan_tuned)
from mamba_bio_audio.kernels.selective_scan.reference import selective_scan_ref

from tests.kernels.test_selective_scan_cpu import assert_matches_reference

L_AXIS = ("u", "delta", "z")


def _stored_channels_last(inputs, names=L_AXIS):
    """The same values, each named L-axis leaf stored as (batch, L, d_inner)."""
    out = dict(inputs)
    for name in names:
        if out[name] is not None:
            out[name] = out[name].detach().transpose(1, 2).contiguous().transpose(1, 2).requires_grad_()
            assert channels_last(out[name])
    return out


CASES = {
    "gated-groups2-state": dict(make=dict(groups=2, d_inner=40), softplus=True, last=True),
    "no-z": dict(make=dict(z=False, d_inner=20), softplus=True, last=True),
    "bare": dict(make=dict(z=False, D=False, delta_bias=False, initial_state=False), softplus=False, last=False),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_channels_last_matches_reference_and_the_contiguous_layout(case, make_scan_inputs, scan_gradients):
    inputs = make_scan_inputs(**case["make"])
    expected = scan_gradients(selective_scan_ref, inputs, case["softplus"], case["last"])
    contiguous = scan_gradients(selective_scan_tuned, inputs, case["softplus"], case["last"], checkpoint_every=16)
    actual = scan_gradients(selective_scan_tuned, _stored_channels_last(inputs), case["softplus"], case["last"],
                            checkpoint_every=16)
    assert_matches_reference(actual, expected, torch.float32, has_z=inputs["z"] is not None)
    # same kernel arithmetic, only the loads and stores differ
    torch.testing.assert_close(actual[0], contiguous[0], rtol=1e-6, atol=1e-6)
    for name, grad in actual[2].items():
        torch.testing.assert_close(grad, contiguous[2][name], rtol=1e-5, atol=1e-6, msg=lambda m: f"d{name}: {m}")


def test_mixed_layouts_are_read_right(make_scan_inputs, scan_gradients):
    """u channels-last, delta and z not: the kernels read every L-axis tensor in u's layout (copying the others)."""
    inputs = make_scan_inputs(d_inner=20)
    expected = scan_gradients(selective_scan_ref, inputs)
    actual = scan_gradients(selective_scan_tuned, _stored_channels_last(inputs, ("u",)), checkpoint_every=16)
    assert_matches_reference(actual, expected, torch.float32, has_z=True)


def test_outputs_and_gradients_come_back_channels_last_and_fakes_agree(make_scan_inputs):
    inputs = _stored_channels_last(make_scan_inputs(batch=2, d_inner=20, length=30))
    args = tuple(inputs[n].detach() for n in ("u", "delta", "A", "B", "C", "D", "z", "delta_bias", "initial_state"))
    out, last, ckpt = selective_scan_cpu_fwd(*args, True, 16)
    grads = selective_scan_cpu_bwd(*args[:8], ckpt, torch.ones_like(out), torch.ones_like(last), True, 16)
    assert out.shape == args[0].shape and channels_last(out)
    for i in (0, 1, 6):  # du, ddelta, dz
        assert channels_last(grads[i])
    torch.library.opcheck(selective_scan_cpu_fwd, (*args, True, 16))
    torch.library.opcheck(selective_scan_cpu_bwd, (*args[:8], ckpt, torch.ones_like(out), torch.ones_like(last),
                                                   True, 16))
