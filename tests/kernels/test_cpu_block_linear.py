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
