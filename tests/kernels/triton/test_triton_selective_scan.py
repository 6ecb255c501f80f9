"""Parity of the fused Triton selective scan with ``selective_scan_ref``, forward and every gradient.

Small shapes (the interpreter runs every tile element in Python): L crosses tile boundaries and is not a multiple
of block_l; ``block_d`` below d_inner exercises the dB/dC reduction across channel blocks. Off a GPU the launchers
count 4 SMs, so these grids would split L into segments: the cases where the split is not the point run in one
segment (``segments=1``, half the interpreter's time); ``full``, ``default-config``, the op-API tests and the
deterministic-mode test take the automatic split.
"""
import pytest
import torch

from mamba_bio_audio import ops
from mamba_bio_audio.kernels import _triton_common
from mamba_bio_audio.kernels.selective_scan import triton as scan_triton
from mamba_bio_audio.kernels.selective_scan import triton_kernels as scan_kernels
from mamba_bio_audio.kernels.selective_scan.reference import selective_scan_ref
from mamba_bio_audio.kernels.selective_scan.triton import scan_config, selective_scan_tuned

NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias", "initial_state")


def make_inputs(device, batch=2, d_inner=8, n_state=4, length=75, groups=None, z=True, D=True, bias=True,
                initial_state=True, dtype=torch.float32, seed=0):
    """Leaf tensors (requires_grad) for the scan; absent optional ones are None."""
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape, scale=1.0, dt=torch.float32):
        return (torch.randn(*shape, generator=gen) * scale).to(device=device, dtype=dt).requires_grad_()

    bc_shape = (batch, n_state, length) if groups is None else (batch, groups, n_state, length)
    A = (-0.5 - torch.rand(d_inner, n_state, generator=gen) * 2).to(device).requires_grad_()
    return dict(
        u=rand(batch, d_inner, length, dt=dtype),
        delta=rand(batch, d_inner, length, scale=0.5, dt=dtype),
        A=A,
        B=rand(*bc_shape, dt=dtype),
        C=rand(*bc_shape, dt=dtype),
        D=rand(d_inner) if D else None,
        z=rand(batch, d_inner, length, dt=dtype) if z else None,
        delta_bias=rand(d_inner, scale=0.3) if bias else None,
        initial_state=rand(batch, d_inner, n_state) if initial_state else None,
    )


def run_scan(fn, inputs, delta_softplus, **kwargs):
    """``fn`` called as mamba_ssm's tests call ``selective_scan_fn`` (D positional, the rest by name);
    ``initial_state`` and ``kwargs`` (``backend``, the tuning knobs) by name."""
    return fn(inputs["u"], inputs["delta"], inputs["A"], inputs["B"], inputs["C"], inputs["D"], z=inputs["z"],
              delta_bias=inputs["delta_bias"], delta_softplus=delta_softplus, return_last_state=True,
              initial_state=inputs["initial_state"], **kwargs)


def gradients(fn, inputs, delta_softplus, seed=1, **kwargs):
    """out, last_state and the gradients of <out, g> + <last_state, g_last> for every present input."""
    out, last = run_scan(fn, inputs, delta_softplus, **kwargs)
    gen = torch.Generator().manual_seed(seed)
    g_out = torch.randn(out.shape, generator=gen).to(out)
    g_last = torch.randn(last.shape, generator=gen).to(last)
    present = [name for name in NAMES if inputs[name] is not None]
    grads = torch.autograd.grad((out, last), [inputs[name] for name in present], (g_out, g_last))
    return out, last, dict(zip(present, grads))


CASES = {
    # every feature, two groups with two channel blocks each (atomic dB/dC), block_l 32 over L = 75; L split into
    # 3 segments (chained by the carry pass; the interpreter counts as 4 SMs, so small grids are split)
    "full": dict(make=dict(groups=2), softplus=True, kwargs=dict(block_l=32, block_d=2)),
    # the same in one segment: the kernels' own walk over L, no carry pass
    "full-one-segment": dict(make=dict(groups=2), softplus=True, kwargs=dict(block_l=32, block_d=2, segments=1)),
    # ungrouped (batch, N, L) B/C, no optional inputs, no softplus
    "bare": dict(make=dict(z=False, D=False, bias=False, initial_state=False, length=70), softplus=False,
                 kwargs=dict(block_l=32, segments=1)),
    # N and d_inner not powers of two, a partial channel block, L shorter than two tiles of block_l
    "ragged": dict(make=dict(d_inner=6, n_state=3, D=False, bias=False, length=45), softplus=True,
                   kwargs=dict(block_l=16, block_d=4, segments=1)),
    # the launch configuration the op API picks (block_l 16 here: 7 chunks), grouped, no initial state
    "default-config": dict(make=dict(groups=2, z=False, initial_state=False, length=100), softplus=True,
                           kwargs=dict()),
    # each direction's lanes on the states given (the tuning knob): all 16 states across lanes, one per thread
    "lanes-16": dict(make=dict(n_state=16, length=40), softplus=True,
                     kwargs=dict(block_l=16, segments=1, forward_lanes=16, backward_lanes=16)),
    # and fewer lanes than either default, more states in each thread
    "lanes-narrow": dict(make=dict(n_state=16, length=40), softplus=True,
                         kwargs=dict(block_l=16, segments=1, forward_lanes=2, backward_lanes=4)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_forward_and_backward_match_reference(case, device, assert_close):
    spec = CASES[case]
    inputs = make_inputs(device, **spec["make"])
    out, last, grads = gradients(selective_scan_tuned, inputs, spec["softplus"], **spec["kwargs"])
    ref_out, ref_last, ref_grads = gradients(selective_scan_ref, inputs, spec["softplus"])
    assert out.dtype == inputs["u"].dtype and last.dtype == torch.float32
    assert_close(out, ref_out, name="out")
    assert_close(last, ref_last, name="last_state")
    assert grads.keys() == ref_grads.keys()
    for name in grads:
        assert grads[name].dtype == inputs[name].dtype, name
        assert_close(grads[name], ref_grads[name], name=f"d{name}")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_inputs_fp32_state(dtype, device, assert_close):
    inputs = make_inputs(device, groups=2, length=70, dtype=dtype)
    out, last, grads = gradients(selective_scan_tuned, inputs, True, block_l=32, segments=1)
    ref_out, ref_last, ref_grads = gradients(selective_scan_ref, inputs, True)
    assert out.dtype == dtype and last.dtype == torch.float32
    assert_close(out, ref_out, dtype, name="out")
    assert_close(last, ref_last, dtype, name="last_state")
    for name in grads:
        assert grads[name].dtype == inputs[name].dtype, name
        assert_close(grads[name], ref_grads[name], dtype, name=f"d{name}")


def test_strided_inputs(device, assert_close):
    """u and z sliced out of one (batch, 2 d_inner, L) projection (strided channels), delta channel-last."""
    batch, d_inner, n_state, length = 2, 8, 4, 40
    gen = torch.Generator().manual_seed(3)
    xz = torch.randn(batch, 2 * d_inner, length, generator=gen).to(device).requires_grad_()
    delta_t = (torch.randn(batch, length, d_inner, generator=gen) * 0.5).to(device).requires_grad_()
    rest = make_inputs(device, batch, d_inner, n_state, length, z=False, initial_state=False, seed=4)
    inputs = dict(rest, u=xz[:, :d_inner], z=xz[:, d_inner:], delta=delta_t.transpose(1, 2))
    present = [xz, delta_t, rest["A"], rest["B"], rest["C"]]
    results = []
    for fn, kwargs in ((selective_scan_tuned, dict(block_l=16, segments=1)), (selective_scan_ref, {})):
        out, last = run_scan(fn, inputs, True, **kwargs)
        results.append((out, torch.autograd.grad((out * out).sum() + last.sum(), present)))
    (out, grads), (ref_out, ref_grads) = results
    assert_close(out, ref_out, name="out")
    for name, got, want in zip(("xz", "delta", "A", "B", "C"), grads, ref_grads):
        assert_close(got, want, name=f"d{name}")


def test_three_segments_with_state_passing_equal_one_pass(device, assert_close):
    """Chunked processing of a long sequence: the state and its gradient pass between calls of the op API."""
    inputs = make_inputs(device, length=96, groups=2, seed=5)
    full_out, full_last, full_grads = gradients(ops.selective_scan_fn, inputs, True, backend="triton")

    def segmented(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, return_last_state=True,
                  *, initial_state=None):
        outs, state = [], initial_state
        for sl in (slice(0, 30), slice(30, 64), slice(64, 96)):
            out, state = ops.selective_scan_fn(
                u[..., sl], delta[..., sl], A, B[..., sl], C[..., sl], D, z=z[..., sl], delta_bias=delta_bias,
                delta_softplus=delta_softplus, return_last_state=True, initial_state=state, backend="triton")
            outs.append(out)
        return torch.cat(outs, dim=-1), state

    seg_out, seg_last, seg_grads = gradients(segmented, inputs, True)
    assert_close(seg_out, full_out, name="out")
    assert_close(seg_last, full_last, name="last_state")
    for name in full_grads:
        assert_close(seg_grads[name], full_grads[name], name=f"d{name}")


def test_deterministic_mode_is_bitwise_reproducible(device, assert_close):
    """Four channel blocks share one group: deterministic mode sums per-block dB/dC partials in a fixed order."""
    inputs = make_inputs(device, d_inner=8, length=40, seed=6)
    runs = [gradients(selective_scan_tuned, inputs, True, block_l=16, block_d=2, deterministic=True)[2]
            for _ in range(2)]
    for name in runs[0]:
        assert torch.equal(runs[0][name], runs[1][name]), name
    atomic = gradients(selective_scan_tuned, inputs, True, block_l=16, block_d=2, deterministic=False)[2]
    for name in ("B", "C"):
        assert_close(atomic[name], runs[0][name], name=f"d{name}")


def test_deterministic_default_follows_the_settings(configure_kernels):
    configure_kernels(deterministic=False)
    assert not _triton_common.deterministic_default()
    configure_kernels(deterministic=True)
    assert _triton_common.deterministic_default()


def test_no_grad_forward_saves_no_states(device, assert_close):
    inputs = make_inputs(device, length=20, seed=7)
    with torch.no_grad():
        out, last = run_scan(selective_scan_tuned, inputs, True, block_l=16, segments=1)
        ref_out, ref_last = run_scan(selective_scan_ref, inputs, True)
    assert not out.requires_grad
    assert_close(out, ref_out, name="out")
    assert_close(last, ref_last, name="last_state")


def test_launch_configuration():
    assert scan_config(1024, 1, 16, 65536) == (4, 16)
    # BLOCK_L is 16 whatever N and L (the backward holds BLOCK_L steps per thread); BLOCK_D fills a 1024-element tile
    assert {scan_config(64, 1, n, length)[1] for n in (1, 4, 16, 64, 256) for length in (5, 1 << 20)} == {16}
    assert [scan_config(64, 1, n, 4096)[0] for n in (1, 4, 16, 64, 256)] == [64, 16, 4, 1, 1]
    # a training chunk (a multiple of the library's SCAN_TILE_STEPS, 64) is a whole number of tiles
    assert ops.SCAN_TILE_STEPS == 64 and 64 % scan_config(64, 1, 16, 1 << 20)[1] == 0
    assert scan_config(24, 4, 16, 100, block_l=32)[0] == 2  # 6 channels per group
    # the tiles (SUB, NK, BLOCK_D, NL) at N 16: forward NL 4 (8 channels per warp), NL 8 where that leaves fewer than
    # 16 warps per SM (batch 8 × 2048 channels: 2,048 one-warp programs on an H100's 132 SMs, not on an A100's 108)
    assert scan_kernels.forward_plan(8, 2048, 1, 16, 16, 4, 108) == dict(BLOCK_D=8, NK=4, NL=4, SUB=8, num_warps=1)
    assert scan_kernels.forward_plan(8, 2048, 1, 16, 16, 4, 132) == dict(BLOCK_D=4, NK=2, NL=8, SUB=16, num_warps=1)
    assert scan_kernels.backward_layout(4, 16, 16, 2048) == dict(BLOCK_D=4, NK=2, NL=8, SUB=8, num_warps=1)
    # segments: the fewest that give 16 warps on every SM, at most one per chunk (batch 1 × 1024 channels, L 2^16)
    assert scan_kernels.scan_segments(128, 1, 4096, 132) == (17, 241)
    assert scan_kernels.scan_segments(4096, 1, 128, 132) == (1, 128)
    assert scan_kernels.scan_segments(2, 1, 3, 132, segments=5) == (3, 1)
    with pytest.raises(ValueError, match="segments"):
        run_scan(selective_scan_tuned, make_inputs("cpu", length=4), True, segments=0)
    with pytest.raises(ValueError, match="power of two"):
        scan_config(8, 1, 4, 64, block_l=48)
    with pytest.raises(ValueError, match="block_d"):
        scan_config(12, 2, 4, 64, block_d=4)
    # lanes on the states given: each direction's kernels launch with that NL (and the layout that follows from it)
    launches = ops.triton_launches("scan", 132, 8, 2048, 16, 2048, forward_lanes=16, backward_lanes=2)
    assert {(lr.kernel.fn.__name__, lr.kwargs["NL"], lr.kwargs["NK"]) for lr in launches} == {
        ("_scan_fwd_kernel", 16, 1), ("_scan_bwd_kernel", 2, 8)}
    # lanes on the states: a power of two up to min(32, next_pow2(N)) (N 3: 4)
    for bad in (3, 8, 0, True):
        with pytest.raises(ValueError, match="backward_lanes must be a power of two from 1 to 4"):
            run_scan(selective_scan_tuned, make_inputs("cpu", n_state=3, length=4), True, backward_lanes=bad)


def test_the_backend_setting_selects_the_triton_kernels(device, monkeypatch, assert_close, configure_kernels):
    """The backend setting ``triton`` (``MBA_BACKEND=triton``; with ``TRITON_INTERPRET=1`` on CPU) routes the op API
    to these kernels."""
    calls = []

    def spy(*args, **kwargs):
        calls.append(1)
        return scan(*args, **kwargs)

    scan = scan_triton.selective_scan_triton
    monkeypatch.setattr(scan_triton, "selective_scan_triton", spy)
    configure_kernels(backend="triton")
    inputs = make_inputs(device, length=20, seed=8)
    with torch.no_grad():
        out, last = run_scan(ops.selective_scan_fn, inputs, True)
        ref_out, ref_last = run_scan(selective_scan_ref, inputs, True)
    assert calls == [1]
    assert_close(out, ref_out, name="out")
    assert_close(last, ref_last, name="last_state")
