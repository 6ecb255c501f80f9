"""Bad input for chunked training: refused at config time (or at the call) with the field named."""
import pytest
import torch

from mamba_bio_audio.config import MambaConfig, TransformerConfig
from mamba_bio_audio.models import MambaLMHeadModel
from mamba_bio_audio.models.chunked import chunk_lengths
from mamba_bio_audio.ops import SCAN_TILE_STEPS


@pytest.mark.parametrize("value, hint", [(1000, "960 or 1024"), (32, "64"), (0, ""), (-128, ""), (64.0, ""),
                                         (True, "")])
def test_chunk_size_must_be_a_multiple_of_the_kernel_tile(value, hint):
    with pytest.raises(ValueError, match=r"MambaConfig\.chunk_size must be .*multiple of 64") as err:
        MambaConfig(chunk_size=value)
    assert hint in str(err.value)


def test_valid_switches_round_trip(tmp_path):
    config = MambaConfig(d_model=16, n_layer=2, vocab_size=12, chunk_size=4 * SCAN_TILE_STEPS, tbptt=True,
                         checkpoint_blocks=True)
    config.to_json_file(tmp_path / "config.json")
    assert MambaConfig.from_json_file(tmp_path / "config.json") == config
    assert MambaConfig().chunk_size is None and not MambaConfig().tbptt and not MambaConfig().checkpoint_blocks


def test_tbptt_needs_a_chunk_size():
    with pytest.raises(ValueError, match=r"MambaConfig\.tbptt needs MambaConfig\.chunk_size"):
        MambaConfig(tbptt=True)


@pytest.mark.parametrize("pooling", ["mean", "first"])
def test_tbptt_refuses_poolings_over_the_whole_sequence(pooling):
    with pytest.raises(ValueError, match=rf"MambaConfig\.pooling must be 'last' with tbptt.*{pooling}"):
        MambaConfig(chunk_size=256, tbptt=True, pooling=pooling)


@pytest.mark.parametrize("name", ["tbptt", "checkpoint_blocks"])
def test_switches_must_be_booleans(name):
    with pytest.raises(ValueError, match=rf"MambaConfig\.{name} must be true or false"):
        MambaConfig(**{name: 1}, chunk_size=64)


@pytest.mark.parametrize("field", ["chunk_size", "tbptt"])
def test_attention_cannot_be_chunked(field):
    with pytest.raises(ValueError, match=rf"TransformerConfig has no field '{field}': attention"):
        TransformerConfig.from_dict({field: 256})


def test_transformer_fields_are_checked():
    with pytest.raises(ValueError, match=r"TransformerConfig\.n_head must be a divisor of d_model"):
        TransformerConfig(d_model=64, n_head=3)
    with pytest.raises(ValueError, match=r"TransformerConfig\.d_intermediate"):
        TransformerConfig(d_intermediate=0)


def test_explicit_chunk_lengths_must_cover_the_sequence():
    with pytest.raises(ValueError, match="sum to the sequence length 100"):
        chunk_lengths(100, [50, 40])
    with pytest.raises(ValueError, match="positive"):
        chunk_lengths(100, [120, -20])
    with pytest.raises(ValueError, match="chunk size must be a positive integer"):
        chunk_lengths(100, 0)


def test_states_must_match_the_layers(make_mamba_config, make_dna):
    model = MambaLMHeadModel(make_mamba_config())
    _, states = model.backbone.forward_with_state(make_dna(1, 8))
    with pytest.raises(ValueError, match="one \\(conv_state, ssm_state\\) per layer \\(2\\)"):
        model.backbone.forward_with_state(make_dna(1, 8), states[:1])
    with pytest.raises(ValueError, match="initial_state"):
        model.backbone.forward_with_state(make_dna(2, 8), states)  # batch 2 after a batch-1 state
    assert torch.isfinite(model.backbone.forward_with_state(make_dna(1, 8), states)[0]).all()
