"""save_pretrained / from_pretrained: our layout, mamba_ssm's, transformers', sharded weights, and the errors."""
import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from mamba_bio_audio import MambaForSequenceClassification, MambaLMHeadModel
from mamba_bio_audio.models import load_pretrained
from mamba_bio_audio.pretrained import save_pretrained


def logits_of(model, ids):
    with torch.no_grad():
        return model(ids).logits


def test_round_trip(tmp_path, tiny_lm, dna_ids):
    folder = tiny_lm.save_pretrained(tmp_path / "model")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    loaded = MambaLMHeadModel.from_pretrained(folder)
    assert loaded.config == tiny_lm.config
    assert loaded.lm_head.weight is loaded.backbone.embedding.weight
    assert torch.equal(logits_of(loaded, dna_ids), logits_of(tiny_lm, dna_ids))


def test_save_replaces_files_and_keeps_others(tmp_path, tiny_lm, make_config):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "tokenizer.json").write_text("{}")
    save_pretrained(MambaLMHeadModel(make_config(d_model=8)), folder)
    save_pretrained(tiny_lm, folder)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors", "tokenizer.json"]
    assert load_pretrained(folder).config.d_model == 16


def test_dtype_and_overrides(tmp_path, tiny_lm):
    tiny_lm.save_pretrained(tmp_path)
    loaded = MambaLMHeadModel.from_pretrained(tmp_path, dtype=torch.bfloat16, pooling="mean")
    assert loaded.config.pooling == "mean"
    assert loaded.backbone.layers[0].mixer.in_proj.weight.dtype == torch.bfloat16
    assert loaded.backbone.layers[0].mixer.A_log.dtype == torch.float32


def write_mamba_ssm_folder(model, folder):
    """mamba_ssm's save_pretrained: config.json (its field names) + pytorch_model.bin (torch.save, tied keys both)."""
    folder.mkdir()
    config = model.config
    (folder / "config.json").write_text(json.dumps({
        "d_model": config.d_model, "d_intermediate": 0, "n_layer": config.n_layer, "vocab_size": config.vocab_size,
        "ssm_cfg": {"layer": "Mamba1", **config.ssm_cfg}, "attn_layer_idx": [], "attn_cfg": {}, "rms_norm": True,
        "residual_in_fp32": True, "fused_add_norm": True, "pad_vocab_size_multiple": 8, "tie_embeddings": True,
    }))
    torch.save(model.state_dict(), folder / "pytorch_model.bin")


def transformers_config(model):
    config = model.config
    return {
        "architectures": ["MambaForCausalLM"], "model_type": "mamba", "hidden_size": config.d_model,
        "num_hidden_layers": config.n_layer, "state_size": config.ssm_cfg["d_state"], "expand": 2,
        "conv_kernel": 4, "time_step_rank": 1, "intermediate_size": 2 * config.d_model, "use_bias": False,
        "use_conv_bias": True, "layer_norm_epsilon": 1e-5, "residual_in_fp32": True,
        "vocab_size": config.padded_vocab_size, "pad_vocab_size_multiple": 8, "hidden_act": "silu",
        "initializer_range": 0.1, "rescale_prenorm_residual": False, "time_step_floor": 1e-4,
        "time_step_init_scheme": "random", "time_step_max": 0.1, "time_step_min": 0.001, "time_step_scale": 1.0,
        "bos_token_id": 0, "eos_token_id": 0, "pad_token_id": 0, "torch_dtype": "float32", "use_cache": True,
        "transformers_version": "4.46.0", "tie_word_embeddings": True,
    }


def transformers_state_dict(model):
    """transformers' key names; its safetensors files store the tied lm_head once, under the embedding."""
    renamed = {key.replace("backbone.embedding.", "backbone.embeddings."): value.clone()
               for key, value in model.state_dict().items()}
    del renamed["lm_head.weight"]
    return renamed


def test_mamba_ssm_layout(tmp_path, tiny_lm, dna_ids):
    write_mamba_ssm_folder(tiny_lm, tmp_path / "upstream")
    loaded = load_pretrained(tmp_path / "upstream")
    assert torch.equal(logits_of(loaded, dna_ids), logits_of(tiny_lm, dna_ids))


@pytest.mark.parametrize("weights", ["model.safetensors", "pytorch_model.bin"])
def test_transformers_layout(tmp_path, tiny_lm, dna_ids, weights):
    (tmp_path / "config.json").write_text(json.dumps(transformers_config(tiny_lm)))
    state_dict = transformers_state_dict(tiny_lm)
    if weights.endswith(".safetensors"):
        save_file(state_dict, tmp_path / weights)
    else:
        torch.save(state_dict, tmp_path / weights)
    loaded = MambaLMHeadModel.from_pretrained(tmp_path)
    assert loaded.config.padded_vocab_size == 16 and loaded.config.d_model == 16
    assert torch.equal(logits_of(loaded, dna_ids), logits_of(tiny_lm, dna_ids))


def test_sharded_safetensors(tmp_path, tiny_lm, dna_ids):
    tiny_lm.config.to_json_file(tmp_path / "config.json")
    state_dict = {k: v.clone() for k, v in tiny_lm.state_dict().items() if k != "lm_head.weight"}
    shards = {"model-00001-of-00002.safetensors": {}, "model-00002-of-00002.safetensors": {}}
    for i, (key, value) in enumerate(state_dict.items()):
        shards[sorted(shards)[i % 2]][key] = value
    weight_map = {}
    for name, shard in shards.items():
        save_file(shard, tmp_path / name)
        weight_map.update(dict.fromkeys(shard, name))
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    assert torch.equal(logits_of(load_pretrained(tmp_path), dna_ids), logits_of(tiny_lm, dna_ids))
    (tmp_path / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model-00002-of-00002.safetensors"):
        load_pretrained(tmp_path)


def test_missing_files_are_named(tmp_path, tiny_lm):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_pretrained(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_pretrained(tmp_path)
    tiny_lm.config.to_json_file(tmp_path / "config.json")
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load_pretrained(tmp_path)


def edit_config(folder, **changes):
    path = folder / "config.json"
    values = json.loads(path.read_text())
    values.update(changes)
    path.write_text(json.dumps(values))


@pytest.mark.parametrize(
    "changes, key, field",
    [
        ({"d_model": 32}, "backbone.embedding.weight", "d_model"),
        ({"vocab_size": 20}, "backbone.embedding.weight", "vocab_size"),
        ({"ssm_cfg": {"d_state": 8}}, "backbone.layers.0.mixer.A_log", "d_state"),
        ({"ssm_cfg": {"d_state": 4, "expand": 3}}, "backbone.layers.0.mixer.A_log", "expand"),
        ({"ssm_cfg": {"d_state": 4, "d_conv": 3}}, "backbone.layers.0.mixer.conv1d.weight", "d_conv"),
        ({"n_layer": 3}, "backbone.layers.2.norm.weight", "n_layer"),
        ({"n_layer": 1}, "backbone.layers.1.", "n_layer"),
        ({"ssm_cfg": {"d_state": 4, "bias": True}}, "backbone.layers.0.mixer.in_proj.bias", "bias"),
    ],
)
def test_config_that_does_not_fit_the_weights(tmp_path, tiny_lm, changes, key, field):
    tiny_lm.save_pretrained(tmp_path)
    edit_config(tmp_path, **changes)
    with pytest.raises(ValueError, match=rf"(?s){key}.*{field}"):
        load_pretrained(tmp_path)


def test_missing_and_unexpected_keys_are_named(tmp_path, tiny_lm):
    state_dict = dict(tiny_lm.state_dict())
    del state_dict["backbone.layers.1.mixer.D"]
    write_mamba_ssm_folder(tiny_lm, tmp_path / "missing")
    torch.save(state_dict, tmp_path / "missing" / "pytorch_model.bin")
    with pytest.raises(ValueError, match="backbone.layers.1.mixer.D"):
        load_pretrained(tmp_path / "missing")
    state_dict = {**tiny_lm.state_dict(), "backbone.layers.0.mixer.rogue": torch.zeros(1)}
    write_mamba_ssm_folder(tiny_lm, tmp_path / "extra")
    torch.save(state_dict, tmp_path / "extra" / "pytorch_model.bin")
    with pytest.raises(ValueError, match="backbone.layers.0.mixer.rogue"):
        load_pretrained(tmp_path / "extra")


def test_untied_weights_with_a_tied_config_are_refused(tmp_path, tiny_lm):
    state_dict = {k: v.clone() for k, v in tiny_lm.state_dict().items()}
    state_dict["lm_head.weight"] += 1
    write_mamba_ssm_folder(tiny_lm, tmp_path / "m")
    torch.save(state_dict, tmp_path / "m" / "pytorch_model.bin")
    with pytest.raises(ValueError, match="tie_embeddings"):
        load_pretrained(tmp_path / "m")


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"d_modle": 16}, "d_modle"),
        ({"attn_layer_idx": [1]}, "attn_layer_idx"),
        ({"ssm_cfg": {"layer": "Mamba2"}}, "layer"),
    ],
)
def test_bad_config_fields_are_named(tmp_path, tiny_lm, changes, field):
    tiny_lm.save_pretrained(tmp_path)
    edit_config(tmp_path, **changes)
    with pytest.raises(ValueError, match=field):
        load_pretrained(tmp_path)


@pytest.mark.parametrize(
    "changes, field",
    [({"use_mamba_kernels_v9": True}, "use_mamba_kernels_v9"), ({"model_type": "mamba2"}, "model_type"),
     ({"intermediate_size": 48}, "intermediate_size"), ({"hidden_act": "gelu"}, "hidden_act")],
)
def test_bad_transformers_fields_are_named(tmp_path, tiny_lm, changes, field):
    (tmp_path / "config.json").write_text(json.dumps({**transformers_config(tiny_lm), **changes}))
    save_file(transformers_state_dict(tiny_lm), tmp_path / "model.safetensors")
    with pytest.raises(ValueError, match=field):
        load_pretrained(tmp_path)


def test_classifier_from_a_pretrained_lm(tmp_path, tiny_lm, dna_ids):
    tiny_lm.save_pretrained(tmp_path / "lm")
    classifier = MambaForSequenceClassification.from_pretrained(tmp_path / "lm", num_labels=5)
    assert classifier.score.weight.shape == (5, 16)
    for key, value in tiny_lm.backbone.state_dict().items():
        assert torch.equal(classifier.backbone.state_dict()[key], value)
    classifier.save_pretrained(tmp_path / "clf")
    again = MambaForSequenceClassification.from_pretrained(tmp_path / "clf")
    assert again.config.num_labels == 5
    with torch.no_grad():
        assert torch.equal(again(dna_ids).logits, classifier(dna_ids).logits)
    with pytest.raises(ValueError, match="num_labels"):
        MambaForSequenceClassification.from_pretrained(tmp_path / "clf", num_labels=2)


def test_the_loader_imports_no_model():
    """mamba_bio_audio.pretrained reads folders for any model class without importing one (no import cycle)."""
    code = ("import sys, mamba_bio_audio.pretrained; "
            "print(sorted(m for m in sys.modules if m.startswith('mamba_bio_audio.models')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
