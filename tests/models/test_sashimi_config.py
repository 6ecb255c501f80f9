"""SashimiConfig: presets, derived sizes, validation and serialisation."""
import pytest

from mamba_bio_audio.models.sashimi_config import SashimiConfig


def test_presets_hold_the_paper_layouts():
    assert SashimiConfig.available_presets() == ["sc09_large", "sc09_small", "youtubemix"]
    youtubemix = SashimiConfig.from_preset("youtubemix")
    assert (youtubemix.d_model, youtubemix.n_layers, youtubemix.pool) == (64, 3, [16, 16])
    small, large = SashimiConfig.from_preset("sc09_small"), SashimiConfig.from_preset("sc09_large")
    assert (small.d_model, small.n_layers, small.pool) == (64, 8, [4, 4])
    assert (large.d_model, large.n_layers, large.pool) == (96, 15, [4, 4])
    assert small.widths == [64, 128, 256] and small.total_pool == 16 and small.n_blocks == 40
    assert large.n_blocks == 75 and youtubemix.n_blocks == 15


def test_unknown_preset_and_field_are_named():
    with pytest.raises(ValueError, match="unknown sashimi preset 'sc10'.*sc09_small"):
        SashimiConfig.from_preset("sc10")
    with pytest.raises(ValueError, match=r"unknown SashimiConfig field\(s\) \['n_layer'\]"):
        SashimiConfig.from_dict({"n_layer": 3})


@pytest.mark.parametrize("field, value, message", [
    ("d_model", 0, "SashimiConfig.d_model must be a positive integer"),
    ("n_layers", 1.5, "SashimiConfig.n_layers must be a positive integer"),
    ("pool", [], "SashimiConfig.pool must be a non-empty list"),
    ("pool", [4, 0], "SashimiConfig.pool must be a non-empty list"),
    ("expand", True, "SashimiConfig.expand must be a positive integer"),
    ("norm_epsilon", -1.0, "SashimiConfig.norm_epsilon must be a number > 0"),
    ("ssm_cfg", {"d_conv": 9}, r"SashimiConfig.ssm_cfg is invalid at stage width 64: .*d_conv"),
    ("ssm_cfg", {"d_stat": 16}, r"SashimiConfig.ssm_cfg is invalid .*unknown key"),
])
def test_bad_values_are_refused_naming_the_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        SashimiConfig(**{field: value})


def test_json_round_trip(tmp_path):
    config = SashimiConfig.from_preset("youtubemix", d_model=8)
    config.to_json_file(tmp_path / "config.json")
    assert SashimiConfig.from_json_file(tmp_path / "config.json") == config
