"""Fixtures shared by the scan tests here: random scan inputs, and the gradients of a fixed random loss."""
import pytest
import torch

SCAN_INPUTS = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias", "initial_state")


def _make_scan_inputs(batch=2, d_inner=20, n_state=4, length=45, groups=None, z=True, D=True, delta_bias=True,
                      initial_state=True, dtype=torch.float32, seed=0):
    """Leaf tensors (requires_grad) keyed by argument name; absent optional inputs are None.

    u, delta, z, B, C come in ``dtype``; A, D, delta_bias, initial_state in fp32 (float64 when dtype is), as the
    op API requires. B, C are (batch, N, L) when ``groups`` is None, else (batch, groups, N, L).
    """
    gen = torch.Generator().manual_seed(seed)
    weight_dtype = torch.float64 if dtype == torch.float64 else torch.float32

    def rand(*shape, scale=1.0, dt=dtype):
        return (torch.randn(*shape, generator=gen, dtype=torch.float64) * scale).to(dt).requires_grad_()

    bc_shape = (batch, n_state, length) if groups is None else (batch, groups, n_state, length)
    A = -0.5 - torch.rand(d_inner, n_state, generator=gen, dtype=torch.float64) * 2
    return dict(
        u=rand(batch, d_inner, length),
        delta=rand(batch, d_inner, length, scale=0.5),
        A=A.to(weight_dtype).requires_grad_(),
        B=rand(*bc_shape),
        C=rand(*bc_shape),
        D=rand(d_inner, dt=weight_dtype) if D else None,
        z=rand(batch, d_inner, length) if z else None,
        delta_bias=rand(d_inner, scale=0.3, dt=weight_dtype) if delta_bias else None,
        initial_state=rand(batch, d_inner, n_state, dt=weight_dtype) if initial_state else None,
    )


def _run_scan(fn, inputs, delta_softplus=True, return_last_state=True, **kwargs):
    """``fn`` called as mamba_ssm's tests call ``selective_scan_fn`` (u, delta, A, B, C, D positional, the rest by
    name), with the optional inputs of ``inputs``; ``initial_state`` and ``kwargs`` (e.g. ``backend``) by name."""
    return fn(inputs["u"], inputs["delta"], inputs["A"], inputs["B"], inputs["C"], inputs["D"], z=inputs["z"],
              delta_bias=inputs["delta_bias"], delta_softplus=delta_softplus, return_last_state=return_last_state,
              initial_state=inputs["initial_state"], **kwargs)


def _scan_gradients(fn, inputs, delta_softplus=True, return_last_state=True, seed=1, **kwargs):
    """(out, last_state or None, {name: gradient}) of the loss <out, g> (+ <last_state, g_last>) for a fixed
    random g, with respect to every input present."""
    result = _run_scan(fn, inputs, delta_softplus, return_last_state, **kwargs)
    outputs = result if return_last_state else (result,)
    gen = torch.Generator().manual_seed(seed)
    cotangents = [torch.randn(o.shape, generator=gen).to(o.dtype) for o in outputs]
    present = [name for name in SCAN_INPUTS if inputs[name] is not None]
    grads = torch.autograd.grad(outputs, [inputs[name] for name in present], cotangents)
    last = outputs[1].detach() if return_last_state else None
    return outputs[0].detach(), last, dict(zip(present, grads))


def _in_pieces(scan, bounds):
    """A function with ``scan``'s signature that scans L as the consecutive pieces [bounds[i], bounds[i+1]), each
    piece's last_state the next one's initial_state (other keywords, e.g. ``backend``, passed on to every piece);
    returns (out, last_state)."""

    def run(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, return_last_state=True, *,
            initial_state=None, **kwargs):
        state, outs = initial_state, []
        for start, stop in zip(bounds[:-1], bounds[1:]):
            piece = slice(start, stop)
            out, state = scan(u[..., piece], delta[..., piece], A, B[..., piece], C[..., piece], D,
                              z=None if z is None else z[..., piece], delta_bias=delta_bias,
                              delta_softplus=delta_softplus, return_last_state=True, initial_state=state, **kwargs)
            outs.append(out)
        return torch.cat(outs, dim=-1), state

    return run


@pytest.fixture
def make_scan_inputs():
    return _make_scan_inputs


@pytest.fixture
def run_scan():
    return _run_scan


@pytest.fixture
def scan_gradients():
    return _scan_gradients


@pytest.fixture
def in_pieces():
    return _in_pieces
