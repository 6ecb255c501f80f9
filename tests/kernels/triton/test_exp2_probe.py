"""``kernels/probes/exp2_rate.py`` through ``ops.probe``: the exp2 chain behind ``bench scan --floors`` computes
what its docstring says (x <- exp2(x / 2), ``steps`` times), on every element including a partial last block."""
import torch

from mamba_bio_audio import ops


def test_exp2_chain_matches_torch(device):
    x = torch.rand(1500, generator=torch.Generator().manual_seed(0)).to(device)  # 1024 + a partial block
    expected = x.clone()
    for _ in range(3):
        expected = torch.exp2(expected / 2)
    out = ops.probe("exp2_rate.exp2_chain")(x, 3)
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)
    assert 1.0 <= out.min() and out.max() <= 2.0
