"""MambaConfig: defaults, validation, serialisation and the DNA presets."""
import pytest
import torch

from mamba_bio_audio.config import MambaConfig
from mamba_bio_audio.models import MambaLMHeadModel


def test_defaults_are_mamba_ssm_defaults():
    config = MambaConfig()
    assert (config.d_model, config.d_intermediate, config.n_layer, config.vocab_size) == (2560, 0, 64, 50277)
    assert config.ssm_cfg == {} and config.rms_norm and config.residual_in_fp32 and config.fused_add_norm
    assert config.pad_vocab_size_multiple == 8 and config.tie_embeddings and config.norm_epsilon == 1e-5


def test_padded_vocab_size():
    assert MambaConfig(vocab_size=12).padded_vocab_size == 16
    assert MambaConfig(vocab_size=16).padded_vocab_size == 16
    assert MambaConfig(vocab_size=50277).padded_vocab_size == 50280


def test_dict_and_json_round_trip(tmp_path, make_config):
    config = make_config(pooling="mean", num_labels=5, ssm_cfg={"d_state": 8, "dt_rank": 3})
    assert MambaConfig.from_dict(config.to_dict()) == config
    config.to_json_file(tmp_path / "config.json")
    assert MambaConfig.from_json_file(tmp_path / "config.json") == config


def test_ssm_cfg_is_copied(make_config):
    ssm_cfg = {"d_state": 4}
    config = make_config(ssm_cfg=ssm_cfg)
    ssm_cfg["d_state"] = 99
    assert config.ssm_cfg == {"d_state": 4}


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"n_layer": 0}, "n_layer"),
        ({"d_model": -4}, "d_model"),
        ({"vocab_size": 0}, "vocab_size"),
        ({"d_intermediate": -1}, "d_intermediate"),
        ({"pad_vocab_size_multiple": 0}, "pad_vocab_size_multiple"),
        ({"pooling": "max"}, "pooling"),
        ({"num_labels": 0}, "num_labels"),
        ({"norm_epsilon": 0.0}, "norm_epsilon"),
        ({"initializer_range": -0.02}, "initializer_range"),
        ({"pad_token_id": 16}, "pad_token_id"),
        ({"rms_norm": 1}, "rms_norm"),
        ({"ssm_cfg": {"d_state": 0}}, "d_state"),
        ({"ssm_cfg": {"d_conv": 5}}, "d_conv"),
        ({"ssm_cfg": {"expand": 0}}, "expand"),
        ({"ssm_cfg": {"dt_rank": 0}}, "dt_rank"),
        ({"ssm_cfg": {"dt_min": 0.5}}, "dt_max"),
        ({"ssm_cfg": {"dt_init": "normal"}}, "dt_init"),
        ({"ssm_cfg": {"layer": "Mamba2"}}, "layer"),
        ({"ssm_cfg": {"headdim": 64}}, "headdim"),
        ({"ssm_cfg": [("d_state", 4)]}, "ssm_cfg"),
    ],
)
def test_bad_values_name_the_field(make_config, overrides, field):
    with pytest.raises(ValueError, match=field):
        make_config(**overrides)


def test_unknown_field_is_named():
    with pytest.raises(ValueError, match="d_modle"):
        MambaConfig.from_dict({"d_modle": 16})


# Paper sizes (Gu & Dao 2023, Fig. 5 left) and the exact counts of the architecture.
PRESETS = {
    "dna_250k": (250e3, 0.263e6),
    "dna_700k": (700e3, 0.684e6),
    "dna_1.4m": (1.4e6, 1.401e6),
    "dna_3.5m": (3.5e6, 3.527e6),
    "dna_7m": (7.0e6, 7.013e6),
    "dna_19.3m": (19.3e6, 19.29e6),
    "dna_40.7m": (40.7e6, 40.69e6),
}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_parameter_counts(name):
    config = MambaConfig.from_preset(name)
    assert config.vocab_size == 12 and config.padded_vocab_size == 16 and config.pad_token_id == 4
    with torch.device("meta"):  # shapes only: no memory, no init cost
        model = MambaLMHeadModel(config)
    count = sum(p.numel() for p in model.parameters())
    paper, derived = PRESETS[name]
    assert abs(count - derived) / derived < 0.002
    # The paper prints rounded sizes; "250K" is the coarsest (the architecture has 262,720 parameters, +5.1 %).
    tolerance = 0.06 if name == "dna_250k" else 0.05
    assert abs(count - paper) / paper < tolerance


def test_presets_are_listed_and_unknown_preset_is_refused():
    assert set(PRESETS) <= set(MambaConfig.available_presets())
    with pytest.raises(ValueError, match="dna_1.4m"):
        MambaConfig.from_preset("dna_2m")
