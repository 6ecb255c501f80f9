"""Parameter counts of the full presets against the paper's (Gu & Dao 2023, §4.4).

Block internals: LayerNorm + Mamba mixer (E = 2, N = 16, d_conv 4, dt_rank ceil(D/16)) in a residual; linear
pools with bias; widths D / 2D / 4D; 256-class embedding and Linear head with bias; final LayerNorm.
"""
import pytest

from mamba_bio_audio.models.sashimi import SashimiLM
from mamba_bio_audio.models.sashimi_config import SashimiConfig

PAPER = {"youtubemix": 3.5e6, "sc09_small": 6.1e6, "sc09_large": 24.3e6}


@pytest.mark.parametrize("name", list(PAPER))
def test_parameter_count_within_5_percent_of_the_paper(name):
    model = SashimiLM(SashimiConfig.from_preset(name), device="meta")
    count = sum(p.numel() for p in model.parameters())
    ratio = count / PAPER[name]
    print(f"{name}: {count:,} parameters vs the paper's {PAPER[name] / 1e6:.1f}M ({100 * (ratio - 1):+.1f} %)")
    assert abs(ratio - 1) <= 0.05
