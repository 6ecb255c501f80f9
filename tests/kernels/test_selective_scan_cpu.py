"""The numba CPU scan against ``selective_scan_ref``: forward, every gradient, chunk boundaries, state passing.

Small shapes: checkpoint_every 16 over L = 45 gives two full chunks and a partial one; d_inner 20 or 40 gives channel
blocks of 16 lanes and a partial block, so the cross-block dB/dC sums and the padding lanes are exercised.
"""
import os
import subprocess
import sys

import numba
import pytest
import torch

from mamba_bio_audio import ops
from mamba_bio_audio.kernels.selective_scan.cpu import (selective_scan_cpu_bwd, selective_scan_cpu_fwd,
                                                        selective_scan_tuned)
from mamba_bio_audio.kernels.selective_scan.reference import selective_scan_ref

TOLERANCES = {torch.float32: (6e-4, 2e-3), torch.bfloat16: (3e-2, 5e-2)}


def assert_matches_reference(actual, expected, dtype, has_z):
    """mamba_ssm's test rules: per-gradient multiples of the dtype's (rtol, atol)."""
    rtol, atol = TOLERANCES[dtype]
    rtolw, atolw = (max(rtol, 1e-3), max(atol, 1e-3)) if has_z else (1e-3, 1e-3)
    rules = dict(u=(2 * rtol, 2 * atol), delta=(5 * rtol, 10 * atol), A=(rtolw, 5 * atolw), B=(rtol, atol),
                 C=(rtol, atol), D=(rtolw, atolw), z=(rtolw, atolw), delta_bias=(rtolw, atolw),
                 initial_state=(rtol, atol))
    out, last, grads = actual
    out_e, last_e, grads_e = expected
    assert out.dtype == out_e.dtype == dtype
    torch.testing.assert_close(out.float(), out_e.float(), rtol=rtol, atol=atol, msg=lambda m: f"out: {m}")
    if last_e is not None:
        assert last.dtype == torch.float32
        torch.testing.assert_close(last, last_e, rtol=rtol, atol=atol, msg=lambda m: f"last_state: {m}")
    assert grads.keys() == grads_e.keys()
    for name, grad in grads.items():
        assert grad.dtype == grads_e[name].dtype, name
        r, a = rules[name]
        torch.testing.assert_close(grad.float(), grads_e[name].float(), rtol=r, atol=a, msg=lambda m: f"d{name}: {m}")


CASES = {
    "everything-groups2": dict(make=dict(groups=2, d_inner=40), softplus=True, last=True),
    "everything-groups1": dict(make=dict(groups=1), softplus=True, last=True),
    "ungrouped-bare": dict(make=dict(z=False, D=False, delta_bias=False, initial_state=False), softplus=False,
                           last=False),
    "no-z": dict(make=dict(z=False, d_inner=40), softplus=True, last=True),
    "no-D-no-bias": dict(make=dict(D=False, delta_bias=False), softplus=True, last=False),
    "bias-without-softplus": dict(make=dict(initial_state=False), softplus=False, last=True),
    "state-only-groups2": dict(make=dict(z=False, D=False, delta_bias=False, groups=2), softplus=False, last=True),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_cpu_scan_matches_reference(case, make_scan_inputs, scan_gradients):
    inputs = make_scan_inputs(**case["make"])
    expected = scan_gradients(selective_scan_ref, inputs, case["softplus"], case["last"])
    actual = scan_gradients(selective_scan_tuned, inputs, case["softplus"], case["last"], checkpoint_every=16)
    assert_matches_reference(actual, expected, torch.float32, has_z=inputs["z"] is not None)


def test_cpu_scan_past_one_span_of_the_block_sums(make_scan_inputs, scan_gradients):
    """L 600: the dB / dC block sums run in spans of 256 steps (``cpu_numba._SUM_SPAN``), the last one partial."""
    from mamba_bio_audio.kernels.selective_scan.cpu_numba import _SUM_SPAN
    length = 2 * _SUM_SPAN + 88
    inputs = make_scan_inputs(batch=1, groups=2, d_inner=40, length=length)
    expected = scan_gradients(selective_scan_ref, inputs)
    actual = scan_gradients(selective_scan_tuned, inputs, checkpoint_every=100)
    assert_matches_reference(actual, expected, torch.float32, has_z=True)


@pytest.mark.parametrize("checkpoint_every", [1, 45, None], ids=["every-step", "once-per-L", "default"])
def test_cpu_scan_any_checkpoint_every(checkpoint_every, make_scan_inputs, scan_gradients):
    inputs = make_scan_inputs(groups=2)
    expected = scan_gradients(selective_scan_ref, inputs)
    actual = scan_gradients(selective_scan_tuned, inputs, checkpoint_every=checkpoint_every)
    assert_matches_reference(actual, expected, torch.float32, has_z=True)


def test_cpu_scan_bf16_inputs(make_scan_inputs, scan_gradients):
    inputs = make_scan_inputs(groups=2, dtype=torch.bfloat16)
    expected = scan_gradients(selective_scan_ref, inputs)
    actual = scan_gradients(selective_scan_tuned, inputs, checkpoint_every=16)
    assert_matches_reference(actual, expected, torch.bfloat16, has_z=True)


def test_cpu_scan_saturated_softplus_and_long_decay(make_scan_inputs, scan_gradients):
    """delta + bias above softplus's threshold (identity there), and dt * A below exp's fp32 range."""
    inputs = make_scan_inputs()
    with torch.no_grad():
        inputs["delta"][:, :, 10:20] += 40.0
        inputs["A"][:3] *= 100.0
    expected = scan_gradients(selective_scan_ref, inputs)
    actual = scan_gradients(selective_scan_tuned, inputs, checkpoint_every=16)
    assert_matches_reference(actual, expected, torch.float32, has_z=True)


def test_three_pieces_with_state_passing_equal_one_pass(make_scan_inputs, scan_gradients, in_pieces):
    """Through the op API: gradients reach every piece through the passed states, as in one pass."""
    inputs = make_scan_inputs(groups=2, length=70)
    one_pass = scan_gradients(ops.selective_scan_fn, inputs, backend="cpu")
    pieces = scan_gradients(in_pieces(ops.selective_scan_fn, [0, 20, 51, 70]), inputs, backend="cpu")
    assert_matches_reference(pieces, one_pass, torch.float32, has_z=True)


def test_cpu_scan_is_deterministic(make_scan_inputs, scan_gradients):
    """Bit-identical results run after run, and with one thread as with all of them."""
    inputs = make_scan_inputs(batch=3, groups=2, d_inner=72)
    runs = [scan_gradients(selective_scan_tuned, inputs, checkpoint_every=16) for _ in range(2)]
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        runs.append(scan_gradients(selective_scan_tuned, inputs, checkpoint_every=16))
    finally:
        numba.set_num_threads(threads)
    first = runs[0]
    for other in runs[1:]:
        assert torch.equal(first[0], other[0]) and torch.equal(first[1], other[1])
        for name, grad in first[2].items():
            assert torch.equal(grad, other[2][name]), name


def test_only_last_state_used(make_scan_inputs):
    """A loss on last_state alone still reaches every input that shapes the state."""
    inputs = make_scan_inputs(z=False)
    grads = {}
    for fn, kwargs in ((selective_scan_ref, {}), (selective_scan_tuned, dict(checkpoint_every=16))):
        _, last = fn(inputs["u"], inputs["delta"], inputs["A"], inputs["B"], inputs["C"], inputs["D"],
                     delta_bias=inputs["delta_bias"], delta_softplus=True, return_last_state=True,
                     initial_state=inputs["initial_state"], **kwargs)
        names = ("u", "delta", "A", "B", "initial_state")
        grads[fn] = torch.autograd.grad(last.square().sum(), [inputs[n] for n in names])
    for expected, actual in zip(grads[selective_scan_ref], grads[selective_scan_tuned]):
        torch.testing.assert_close(actual, expected, rtol=6e-4, atol=2e-3)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(A=lambda t: t.half()), "A must be float32"),
        (dict(B=lambda t: t[..., :-1]), "B must have shape"),
        (dict(D=lambda t: t[:-1]), "D must have shape"),
        (dict(delta=lambda t: t.float().to("meta")), "delta is on meta"),
    ],
    ids=["A-fp16", "B-wrong-L", "D-wrong-length", "delta-other-device"],
)
def test_op_api_names_the_bad_argument(change, message, make_scan_inputs, run_scan):
    inputs = {name: (t.detach() if t is not None else None) for name, t in make_scan_inputs().items()}
    for name, transform in change.items():
        inputs[name] = transform(inputs[name])
    with pytest.raises(ValueError, match=message):
        run_scan(ops.selective_scan_fn, inputs, backend="cpu")


def test_checkpoint_every_must_be_positive(make_scan_inputs, run_scan):
    with pytest.raises(ValueError, match="checkpoint_every must be >= 1"):
        run_scan(selective_scan_tuned, make_scan_inputs(), checkpoint_every=0)


def test_kernels_import_without_a_writable_numba_cache():
    """With no cache location numba would refuse ``cache=True``; the kernels then compile per process instead."""
    env = dict(os.environ, NUMBA_CACHE_LOCATOR_CLASSES="_IPythonCacheLocator")  # a locator that never applies
    code = ("from mamba_bio_audio.kernels.selective_scan import cpu_numba as k; "
            "print(type(k.scan_fwd._cache).__name__, type(k.scan_bwd._cache).__name__)")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["NullCache", "NullCache"]


def test_custom_op_opcheck(make_scan_inputs):
    """Schema, fake (meta) implementation, autograd registration and AOT dispatch of the custom ops."""
    inputs = make_scan_inputs(batch=1, d_inner=8, length=20, groups=2)
    args = tuple(inputs[name] for name in ("u", "delta", "A", "B", "C", "D", "z", "delta_bias", "initial_state"))
    torch.library.opcheck(selective_scan_cpu_fwd, (*args, True, 8))
    detached = tuple(t.detach() for t in args)
    out, last, ckpt = selective_scan_cpu_fwd(*detached, True, 8)
    torch.library.opcheck(selective_scan_cpu_bwd, (*detached[:8], ckpt, torch.ones_like(out), torch.ones_like(last),
                                                   True, 8))
    no_options = make_scan_inputs(batch=1, d_inner=8, length=20, z=False, D=False, delta_bias=False,
                                  initial_state=False)
    args = tuple(no_options[name] for name in ("u", "delta", "A", "B", "C"))
    torch.library.opcheck(selective_scan_cpu_fwd, (*args, None, None, None, None, False, 8))


def test_torch_compile_fullgraph(make_scan_inputs, scan_gradients):
    """torch.compile traces through the op without a graph break, forward and backward."""
    inputs = make_scan_inputs(length=30, groups=2)
    compiled = torch.compile(selective_scan_tuned, fullgraph=True, backend="aot_eager")
    expected = scan_gradients(selective_scan_tuned, inputs, checkpoint_every=16)
    actual = scan_gradients(compiled, inputs, checkpoint_every=16)
    assert_matches_reference(actual, expected, torch.float32, has_z=True)



THREADING_PROBE = (
    "import numba\n"
    "from mamba_bio_audio import ops\n"
    "from mamba_bio_audio.kernels.selective_scan import cpu\n"
    "print(numba.config.THREADING_LAYER)\n"  # what importing the backend left
    "ops.set_cpu_threads(1)\n"
    "print(numba.threading_layer(), type(cpu._launching()).__name__)\n"
)


def _threading_probe(layer=None):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"}
    env.update({} if layer is None else {"NUMBA_THREADING_LAYER": layer})
    return subprocess.run([sys.executable, "-c", THREADING_PROBE], env=env, capture_output=True, text=True,
                          check=True).stdout.split()


def test_threading_layer_is_chosen_on_first_use_not_at_import():
    assert _threading_probe() == ["default", "workqueue", "lock"]


def test_the_users_threading_layer_is_kept_and_needs_no_launch_lock():
    """omp runs parallel regions from several threads at once: launches go unserialised."""
    assert _threading_probe("omp") == ["omp", "omp", "nullcontext"]


CONCURRENT_SCANS = (
    "import threading, numba, torch\n"
    "from mamba_bio_audio import ops\n"
    "u = torch.randn(2, 32, 64); A = -torch.ones(32, 4); B = torch.randn(2, 4, 64)\n"
    "ref = ops.selective_scan_fn(u, u.sigmoid(), A, B, B, backend='reference')\n"
    "same = []\n"
    "def run():\n"
    "    for _ in range(10):\n"
    "        out = ops.selective_scan_fn(u, u.sigmoid(), A, B, B, backend='cpu')\n"
    "        same.append(torch.allclose(out, ref, atol=1e-4))\n"
    "threads = [threading.Thread(target=run) for _ in range(4)]\n"
    "[t.start() for t in threads]; [t.join() for t in threads]\n"
    "print(numba.threading_layer(), len(same), all(same))\n"
)


def test_scans_from_several_threads_under_workqueue_neither_abort_nor_differ():
    """numba aborts the process when two threads enter workqueue's parallel region at once: the launch lock."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"}
    result = subprocess.run([sys.executable, "-c", CONCURRENT_SCANS], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-500:]
    assert result.stdout.split() == ["workqueue", "40", "True"]
