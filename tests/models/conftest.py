"""Tiny models shared by the model tests (fast with every ops backend, the reference one included)."""
import pytest
import torch

from mamba_bio_audio.config import MambaConfig
from mamba_bio_audio.models import MambaForSequenceClassification, MambaLMHeadModel


def _tiny_config(**overrides) -> MambaConfig:
    """d_model 16, 2 layers, d_state 4, the DNA vocabulary (12 padded to 16) with [PAD] = 4."""
    values = dict(d_model=16, n_layer=2, vocab_size=12, ssm_cfg={"d_state": 4}, pad_token_id=4)
    values.update(overrides)
    return MambaConfig(**values)


@pytest.fixture
def make_config():
    """Factory: the tiny config with keyword overrides."""
    return _tiny_config


@pytest.fixture
def tiny_lm() -> MambaLMHeadModel:
    torch.manual_seed(0)
    return MambaLMHeadModel(_tiny_config()).eval()


@pytest.fixture
def tiny_classifier() -> MambaForSequenceClassification:
    torch.manual_seed(0)
    return MambaForSequenceClassification(_tiny_config(num_labels=3)).eval()


@pytest.fixture
def dna_ids() -> torch.Tensor:
    """(2, 12) int64 ids of A, C, G, T (7..10), seeded."""
    generator = torch.Generator().manual_seed(1)
    return torch.randint(7, 11, (2, 12), generator=generator)
