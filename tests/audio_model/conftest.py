"""Scaled-down copies of the three SaShiMi presets (two pooling stages each, tiny widths) shared by the tests."""
import pytest
import torch

from mamba_bio_audio.models.sashimi import SashimiLM
from mamba_bio_audio.models.sashimi_config import SashimiConfig

# preset -> overrides: widths 8-16, 1-2 blocks per stage, pools 2-4 (unequal in one, to catch index mix-ups)
SCALED = {
    "youtubemix": dict(d_model=8, n_layers=1, pool=[4, 4]),
    "sc09_small": dict(d_model=16, n_layers=2, pool=[2, 2]),
    "sc09_large": dict(d_model=12, n_layers=2, pool=[2, 3]),
}


def scaled_model(name: str, seed: int = 0) -> SashimiLM:
    """The preset ``name`` scaled down (see SCALED), seeded, in eval mode."""
    torch.manual_seed(seed)
    return SashimiLM(SashimiConfig.from_preset(name, **SCALED[name])).eval()


@pytest.fixture
def make_model():
    """Factory: ``make_model(preset_name, seed=0)`` → a scaled-down SashimiLM."""
    return scaled_model


@pytest.fixture
def tiny_model() -> SashimiLM:
    """sc09_large scaled down: d_model 12, 2 blocks per stage, pools [2, 3]."""
    return scaled_model("sc09_large")
