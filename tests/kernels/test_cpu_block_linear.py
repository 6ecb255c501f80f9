"""The fused decode step's GEMM (kernels/selective_state_update/cpu_block.py ``linear``: 4x4 blocks plus edge rows)
against numpy's float64 product, at sizes that leave every kind of edge: batch rows past the last 4-row block,
weight rows past the last 4-row block, both, neither."""
import numpy as np
import pytest

from mamba_bio_audio import ops


@pytest.mark.parametrize("batch, rows, width", [(1, 9, 16), (4, 8, 7), (5, 6, 33), (8, 64, 16), (7, 3, 5)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_equals_the_float64_product(batch, rows, width, with_bias):
    rng = np.random.default_rng(batch * 100 + rows)
    x = rng.standard_normal((batch, width)).astype(np.float32)
    weight = rng.standard_normal((rows, width)).astype(np.float32)
    bias = rng.standard_normal(rows).astype(np.float32) if with_bias else np.zeros(0, dtype=np.float32)
    out = np.full((batch, rows), np.nan, dtype=np.float32)
    ops.cpu_decode_kernels().linear(x, weight, bias, with_bias, out)
    expected = x.astype(np.float64) @ weight.astype(np.float64).T + (bias if with_bias else 0.0)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_compiled_for_computes_what_the_kernel_computes_for_those_types():
    """``compiled_for`` (the fused step's call without the dispatcher): the same product, and a readonly weight, a
    numba type of its own, gets a version of its own."""
    kernels = ops.cpu_decode_kernels()
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 24)).astype(np.float32)
    weight = rng.standard_normal((10, 24)).astype(np.float32)
    bias = rng.standard_normal(10).astype(np.float32)
    expected = x.astype(np.float64) @ weight.astype(np.float64).T + bias
    frozen = weight.copy()
    frozen.flags.writeable = False
    for w in (weight, frozen):
        out = np.full((2, 10), np.nan, dtype=np.float32)
        linear = kernels.compiled_for(kernels.linear, x, w, bias, True, out)
        linear(x, w, bias, True, out)
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    assert kernels.compiled_for(kernels.linear, x, weight, bias, True, out) is not linear
