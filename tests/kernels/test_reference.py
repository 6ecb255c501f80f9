"""The pure-torch reference kernels against independent step-by-step implementations, and their state passing."""
import pytest
import torch
import torch.nn.functional as F

from mamba_bio_audio.kernels.causal_conv1d.reference import causal_conv1d_ref, causal_conv1d_update_ref
from mamba_bio_audio.kernels.rms_norm.reference import rms_norm_ref
from mamba_bio_audio.kernels.selective_scan.reference import selective_scan_chunked_ref, selective_scan_ref
from mamba_bio_audio.kernels.selective_state_update.reference import selective_state_update_ref

FP32 = dict(rtol=6e-4, atol=2e-3)
EXACT = dict(rtol=1e-5, atol=1e-5)  # same fp32 maths, only grouped differently


def oracle_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, return_last_state=False,
                *, initial_state=None):
    """The selective scan written one time step at a time from its formula, in float64.

    Shapes as selective_scan_ref; returns (out (batch, d_inner, L) float64, last_state (batch, d_inner, N)).
    """
    batch, d_inner, length = u.shape
    u, delta, A, B, C = (t.double() for t in (u, delta, A, B, C))
    if B.dim() == 3:
        B, C = B.unsqueeze(1), C.unsqueeze(1)
    group_of_channel = torch.arange(d_inner) // (d_inner // B.shape[1])
    h = u.new_zeros(batch, d_inner, A.shape[1]) if initial_state is None else initial_state.double()
    ys = []
    for t in range(length):
        dt = delta[:, :, t] + (0.0 if delta_bias is None else delta_bias.double())
        if delta_softplus:
            dt = torch.where(dt > 20, dt, torch.log1p(torch.exp(dt)))
        h = torch.exp(dt[..., None] * A) * h + (dt * u[:, :, t])[..., None] * B[:, group_of_channel, :, t]
        y = (h * C[:, group_of_channel, :, t]).sum(-1)
        if D is not None:
            y = y + D.double() * u[:, :, t]
        if z is not None:
            y = y * F.silu(z[:, :, t].double())
        ys.append(y)
    out = torch.stack(ys, dim=-1)
    return (out, h) if return_last_state else out


def assert_scan_results_close(actual, expected, tol):
    out, last, grads = actual
    out_e, last_e, grads_e = expected
    torch.testing.assert_close(out.double(), out_e.double(), **tol, msg=lambda m: f"out: {m}")
    if last_e is not None:
        torch.testing.assert_close(last.double(), last_e.double(), **tol, msg=lambda m: f"last_state: {m}")
    assert grads.keys() == grads_e.keys()
    for name in grads:
        torch.testing.assert_close(grads[name].double(), grads_e[name].double(), **tol, msg=lambda m: f"d{name}: {m}")


def test_selective_scan_ref_gradcheck(make_scan_inputs, run_scan):
    """Finite differences agree with autograd for every input, through last_state too.

    The reference computes in fp32 whatever the input dtype, so the differences are taken with a large step and
    compared loosely; a wrong gradient term is off by O(1).
    """
    inputs = make_scan_inputs(batch=1, d_inner=4, n_state=2, length=5, groups=2, dtype=torch.float64)
    names = list(inputs)

    def fn(*tensors):
        return run_scan(selective_scan_ref, dict(zip(names, tensors)), delta_softplus=True)

    assert torch.autograd.gradcheck(fn, tuple(inputs.values()), eps=1e-3, atol=3e-3, rtol=3e-3)


@pytest.mark.parametrize(
    "options",
    [
        dict(make=dict(groups=2), softplus=True),
        dict(make=dict(groups=1, D=False, initial_state=False), softplus=True),
        dict(make=dict(z=False, delta_bias=False), softplus=False),
    ],
    ids=["all-groups2", "groups1-no-D-no-state", "ungrouped-no-z-no-bias"],
)
def test_selective_scan_ref_matches_step_by_step_oracle(options, make_scan_inputs, scan_gradients):
    inputs = make_scan_inputs(length=23, **options["make"])
    expected = scan_gradients(oracle_scan, inputs, options["softplus"])
    actual = scan_gradients(selective_scan_ref, inputs, options["softplus"])
    assert_scan_results_close(actual, expected, FP32)


def test_softplus_is_identity_above_20(make_scan_inputs, scan_gradients):
    inputs = make_scan_inputs(length=6, groups=2)
    with torch.no_grad():
        inputs["delta"][:, :, ::2] += 25.0
    assert_scan_results_close(scan_gradients(selective_scan_ref, inputs),
                              scan_gradients(oracle_scan, inputs), FP32)


@pytest.mark.parametrize("checkpoint_every", [5, 7])
def test_chunked_ref_equals_one_pass(checkpoint_every, make_scan_inputs, scan_gradients):
    inputs = make_scan_inputs(length=23, groups=2)
    one_pass = scan_gradients(selective_scan_ref, inputs)
    chunked = scan_gradients(selective_scan_chunked_ref, inputs, checkpoint_every=checkpoint_every)
    assert_scan_results_close(chunked, one_pass, EXACT)


def test_ref_state_passing_in_three_pieces_equals_one_pass(make_scan_inputs, scan_gradients, in_pieces):
    """Gradients flow back through every passed state: the pieces' loss has the one-pass gradients."""
    inputs = make_scan_inputs(length=31, groups=2)
    pieces = scan_gradients(in_pieces(selective_scan_ref, [0, 9, 20, 31]), inputs)
    assert_scan_results_close(pieces, scan_gradients(selective_scan_ref, inputs), EXACT)


# ------------------------------------------------------------------------------------------------------------
# causal conv1d


def loop_causal_conv1d(x, weight, bias=None, activation=None, initial_state=None):
    """out[b, d, t] = act(bias[d] + sum_k w[d, k] x[b, d, t - (W-1) + k]), inputs before t = 0 from initial_state."""
    batch, dim, length = x.shape
    width = weight.shape[1]
    history = torch.zeros(batch, dim, width - 1) if initial_state is None else initial_state.float()
    padded = torch.cat([history, x.float()], dim=-1)
    out = torch.zeros(batch, dim, length)
    for t in range(length):
        for k in range(width):
            out[:, :, t] += weight[:, k].float() * padded[:, :, t + k]
        if bias is not None:
            out[:, :, t] += bias.float()
    return F.silu(out) if activation == "silu" else out


def conv_inputs(width, dim=6, length=11, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(2, dim, length, generator=gen), torch.randn(dim, width, generator=gen),
            torch.randn(dim, generator=gen), torch.randn(2, dim, width - 1, generator=gen))


@pytest.mark.parametrize("width", [2, 3, 4])
@pytest.mark.parametrize("activation", [None, "silu"])
@pytest.mark.parametrize("with_state", [False, True], ids=["zeros-before", "initial-state"])
def test_causal_conv1d_ref_matches_loop(width, activation, with_state):
    x, weight, bias, state = conv_inputs(width)
    state = state if with_state else None
    expected = loop_causal_conv1d(x, weight, bias, activation, state)
    torch.testing.assert_close(causal_conv1d_ref(x, weight, bias, initial_states=state, activation=activation),
                               expected, **EXACT)
    torch.testing.assert_close(causal_conv1d_ref(x, weight, None, initial_states=state, activation=activation),
                               loop_causal_conv1d(x, weight, None, activation, state), **EXACT)


@pytest.mark.parametrize("width", [2, 4])
def test_causal_conv1d_ref_two_halves_equal_one_pass(width):
    x, weight, bias, state = conv_inputs(width)
    whole, whole_final = causal_conv1d_ref(x, weight, bias, initial_states=state, return_final_states=True,
                                           activation="silu")
    first, mid_state = causal_conv1d_ref(x[..., :5], weight, bias, initial_states=state, return_final_states=True,
                                         activation="silu")
    second, final = causal_conv1d_ref(x[..., 5:], weight, bias, initial_states=mid_state, return_final_states=True,
                                      activation="silu")
    torch.testing.assert_close(torch.cat([first, second], dim=-1), whole, **EXACT)
    torch.testing.assert_close(final, whole_final)
    torch.testing.assert_close(whole_final, x[..., -(width - 1):])


@pytest.mark.parametrize("extra_state", [0, 2], ids=["state-W-1", "longer-state"])
def test_causal_conv1d_update_ref_step_by_step_equals_full(extra_state):
    width = 4
    x, weight, bias, state = conv_inputs(width)
    expected = causal_conv1d_ref(x, weight, bias, initial_states=state, activation="silu")
    conv_state = torch.cat([torch.randn(2, x.shape[1], extra_state), state], dim=-1)
    steps = [causal_conv1d_update_ref(x[:, :, t], conv_state, weight, bias, "silu") for t in range(6)]
    block = causal_conv1d_update_ref(x[:, :, 6:], conv_state, weight, bias, "silu")
    torch.testing.assert_close(torch.cat([torch.stack(steps, dim=-1), block], dim=-1), expected, **EXACT)
    torch.testing.assert_close(conv_state, x[..., -conv_state.shape[-1]:])


# ------------------------------------------------------------------------------------------------------------
# RMSNorm


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("with_residual", [False, True])
@pytest.mark.parametrize("residual_in_fp32", [False, True])
@pytest.mark.parametrize("with_bias", [False, True])
def test_rms_norm_ref_matches_formula(dtype, with_residual, residual_in_fp32, with_bias):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 16, generator=gen).to(dtype)
    weight = torch.randn(16, generator=gen)
    bias = torch.randn(16, generator=gen) if with_bias else None
    residual = torch.randn(3, 5, 16, generator=gen).to(dtype) if with_residual else None
    summed = x.double() + (0 if residual is None else residual.double())
    expected = summed / torch.sqrt(summed.pow(2).mean(-1, keepdim=True) + 1e-5) * weight.double()
    expected = expected if bias is None else expected + bias.double()
    tol = FP32 if dtype == torch.float32 else dict(rtol=3e-2, atol=5e-2)

    out = rms_norm_ref(x, weight, bias, residual=residual, eps=1e-5)
    assert out.dtype == dtype
    torch.testing.assert_close(out.double(), expected, **tol)

    out, residual_out = rms_norm_ref(x, weight, bias, residual=residual, eps=1e-5, prenorm=True,
                                     residual_in_fp32=residual_in_fp32)
    torch.testing.assert_close(out.double(), expected, **tol)
    assert residual_out.dtype == (torch.float32 if residual_in_fp32 else dtype)
    torch.testing.assert_close(residual_out.double(), summed.to(residual_out.dtype).double())


# ------------------------------------------------------------------------------------------------------------
# decode step


@pytest.mark.parametrize("groups", [None, 2])
def test_selective_state_update_ref_step_by_step_equals_scan(groups, make_scan_inputs):
    inputs = {k: (v.detach() if v is not None else None)
              for k, v in make_scan_inputs(length=9, groups=groups).items()}
    out, last = selective_scan_ref(**inputs, delta_softplus=True, return_last_state=True)
    state = inputs["initial_state"].clone()
    steps = []
    for t in range(9):
        B_t, C_t = inputs["B"][..., t], inputs["C"][..., t]
        steps.append(selective_state_update_ref(
            state, inputs["u"][..., t], inputs["delta"][..., t], inputs["A"], B_t, C_t, D=inputs["D"],
            z=inputs["z"][..., t], dt_bias=inputs["delta_bias"], dt_softplus=True))
    torch.testing.assert_close(torch.stack(steps, dim=-1), out, **FP32)
    torch.testing.assert_close(state, last, **FP32)
