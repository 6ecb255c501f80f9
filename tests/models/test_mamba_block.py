"""Mamba mixer, RMSNorm, Block, MixerModel: names, initialisation, dataflow, decoding, precision."""
import math

import pytest
import torch
import torch.nn.functional as F

from mamba_bio_audio.generation import InferenceParams
from mamba_bio_audio.models import MambaLMHeadModel, param_groups
from mamba_bio_audio.modules import Mamba, RMSNorm

# mamba_ssm's state-dict keys.
MIXER_KEYS = ["in_proj.weight", "conv1d.weight", "conv1d.bias", "x_proj.weight", "dt_proj.weight", "dt_proj.bias",
              "out_proj.weight", "A_log", "D"]


def upstream_keys(n_layer):
    keys = {"backbone.embedding.weight", "backbone.norm_f.weight", "lm_head.weight"}
    for i in range(n_layer):
        keys.add(f"backbone.layers.{i}.norm.weight")
        keys.update(f"backbone.layers.{i}.mixer.{name}" for name in MIXER_KEYS)
    return keys


def test_state_dict_keys_match_mamba_ssm(tiny_lm):
    assert set(tiny_lm.state_dict()) == upstream_keys(2)


def test_shapes(make_config):
    mixer = Mamba(16, d_state=4, layer_idx=0)
    assert (mixer.d_inner, mixer.dt_rank) == (32, 1)
    shapes = {name: tuple(p.shape) for name, p in mixer.named_parameters()}
    assert shapes == {
        "in_proj.weight": (64, 16), "conv1d.weight": (32, 1, 4), "conv1d.bias": (32,), "x_proj.weight": (9, 32),
        "dt_proj.weight": (32, 1), "dt_proj.bias": (32,), "out_proj.weight": (16, 32), "A_log": (32, 4), "D": (32,),
    }
    model = MambaLMHeadModel(make_config())
    assert model.backbone.embedding.weight.shape == (16, 16)


def test_initialisation_after_model_init(make_config):
    torch.manual_seed(0)
    dt_min, dt_max = 0.002, 0.05
    config = make_config(d_model=64, n_layer=3, ssm_cfg={"d_state": 6, "dt_min": dt_min, "dt_max": dt_max,
                                                         "bias": True})
    model = MambaLMHeadModel(config)
    for layer in model.backbone.layers:
        mixer = layer.mixer
        dt = F.softplus(mixer.dt_proj.bias)
        # in [dt_min, dt_max]: the model's init left the dt bias alone (zeroed, softplus(0) = 0.69 would be outside)
        assert dt.min() >= dt_min * (1 - 1e-5) and dt.max() <= dt_max * (1 + 1e-5)
        bound = mixer.dt_rank**-0.5
        assert mixer.dt_proj.weight.abs().max() <= bound
        assert mixer.A_log.dtype == torch.float32 and mixer.D.dtype == torch.float32
        torch.testing.assert_close(-torch.exp(mixer.A_log), -torch.arange(1, 7.0).expand(mixer.d_inner, 6))
        assert torch.equal(mixer.D, torch.ones(mixer.d_inner))
        assert torch.count_nonzero(mixer.in_proj.bias) == 0 and torch.count_nonzero(mixer.out_proj.bias) == 0
        # kaiming_uniform(a=√5) bound 1/√fan_in, then ÷ √n_layer (GPT-2 residual scaling)
        bound = 1 / math.sqrt(mixer.d_inner) / math.sqrt(3)
        assert 0.9 * bound < mixer.out_proj.weight.abs().max() <= bound
    assert abs(model.backbone.embedding.weight.std().item() - 0.02) < 0.003


def test_constant_dt_init():
    mixer = Mamba(32, dt_init="constant", dt_scale=0.5)
    assert torch.allclose(mixer.dt_proj.weight, torch.full_like(mixer.dt_proj.weight, 2**-0.5 * 0.5))


def naive_mamba(mixer: Mamba, u: torch.Tensor) -> torch.Tensor:
    """The Mamba block's dataflow (Gu & Dao 2023, Alg. 2 and Fig. 3) token by token, written independently of the
    module's code paths."""
    batch, length, _ = u.shape
    x, z = mixer.in_proj(u).chunk(2, dim=-1)  # (B, L, d_inner)
    w = mixer.conv1d.weight[:, 0]  # (d_inner, W)
    padded = F.pad(x.transpose(1, 2), (w.shape[1] - 1, 0))
    x = F.silu(torch.stack([(padded[..., t:t + w.shape[1]] * w).sum(-1) for t in range(length)], 1) + mixer.conv1d.bias)
    dt_low, B, C = mixer.x_proj(x).split([mixer.dt_rank, mixer.d_state, mixer.d_state], dim=-1)
    delta = F.softplus(dt_low @ mixer.dt_proj.weight.T + mixer.dt_proj.bias)
    A = -torch.exp(mixer.A_log)
    h = torch.zeros(batch, mixer.d_inner, mixer.d_state)
    ys = []
    for t in range(length):
        h = torch.exp(delta[:, t, :, None] * A) * h + delta[:, t, :, None] * B[:, t, None, :] * x[:, t, :, None]
        ys.append((h * C[:, t, None, :]).sum(-1) + mixer.D * x[:, t])
    y = torch.stack(ys, 1) * F.silu(z)
    return mixer.out_proj(y)


def test_mixer_forward_matches_the_definition():
    torch.manual_seed(0)
    mixer = Mamba(16, d_state=4, layer_idx=0)
    u = torch.randn(2, 9, 16)
    with torch.no_grad():
        torch.testing.assert_close(mixer(u), naive_mamba(mixer, u), rtol=1e-4, atol=1e-5)


def test_mixer_step_after_prefix_matches_forward():
    torch.manual_seed(0)
    mixer = Mamba(16, d_state=4, layer_idx=0)
    u = torch.randn(2, 10, 16)
    with torch.no_grad():
        full = mixer(u)
        params = InferenceParams(max_seqlen=10, max_batch_size=2)
        params.key_value_memory_dict = {0: mixer.allocate_inference_cache(2, 10)}
        outs = [mixer(u[:, :6], inference_params=params)]
        params.seqlen_offset = 6
        conv_state, ssm_state = params.key_value_memory_dict[0]
        for t in range(6, 10):
            out, _, _ = mixer.step(u[:, t:t + 1], conv_state, ssm_state)
            outs.append(out)
    torch.testing.assert_close(torch.cat(outs, 1), full, rtol=1e-5, atol=1e-6)


def test_step_refuses_several_tokens():
    mixer = Mamba(16, d_state=4, layer_idx=0)
    conv_state, ssm_state = mixer.allocate_inference_cache(1, 4)
    with pytest.raises(ValueError, match="one token"):
        mixer.step(torch.randn(1, 2, 16), conv_state, ssm_state)


def test_decoding_needs_layer_idx():
    with pytest.raises(ValueError, match="layer_idx"):
        Mamba(16, d_state=4)(torch.randn(1, 3, 16), inference_params=InferenceParams(3, 1))


def test_ssm_state_is_fp32_whatever_the_weights(make_config):
    model = MambaLMHeadModel(make_config()).to(torch.bfloat16)
    conv_state, ssm_state = model.allocate_inference_cache(2, 8).key_value_memory_dict[0]
    assert conv_state.dtype == torch.bfloat16 and conv_state.shape == (2, 32, 4)
    assert ssm_state.dtype == torch.float32 and ssm_state.shape == (2, 32, 4)


def test_rms_norm_and_fused_residual():
    torch.manual_seed(0)
    norm = RMSNorm(8, eps=1e-6)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
    x, residual = torch.randn(3, 8), torch.randn(3, 8)
    expected = (x + residual) / torch.sqrt(((x + residual) ** 2).mean(-1, keepdim=True) + 1e-6) * norm.weight
    out, new_residual = norm(x.bfloat16(), residual=residual, prenorm=True, residual_in_fp32=True)
    assert out.dtype == torch.bfloat16 and new_residual.dtype == torch.float32
    torch.testing.assert_close(norm(x, residual=residual), expected)
    assert norm.bias is None


@pytest.mark.parametrize("overrides", [{"fused_add_norm": False}, {"rms_norm": False}, {"d_intermediate": 40}])
def test_backbone_variants_match_their_recurrence(make_config, dna_ids, overrides):
    torch.manual_seed(0)
    model = MambaLMHeadModel(make_config(**overrides)).eval()
    if overrides.get("d_intermediate"):
        assert model.backbone.layers[0].mlp.fc1.weight.shape == (256, 16)  # 40 rounded up to 128, gated
    params = InferenceParams(max_seqlen=12, max_batch_size=2)
    with torch.no_grad():
        full = model(dna_ids).logits
        steps = [model.prefill(dna_ids[:, :5], params)[0][:, -1]]
        steps += [model.step(dna_ids[:, t], params)[0] for t in range(5, 11)]
    torch.testing.assert_close(torch.stack(steps, 1), full[:, 4:11], rtol=1e-5, atol=1e-5)


def test_fused_and_unfused_add_norm_agree(make_config, dna_ids):
    torch.manual_seed(0)
    fused = MambaLMHeadModel(make_config())
    unfused = MambaLMHeadModel(make_config(fused_add_norm=False))
    unfused.load_state_dict(fused.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(fused(dna_ids).logits, unfused(dna_ids).logits, rtol=1e-5, atol=1e-6)


def test_autocast_bf16_keeps_fp32_parameters_and_residual(tiny_lm, dna_ids):
    with torch.no_grad():
        reference = tiny_lm(dna_ids).logits
        with torch.autocast("cpu", dtype=torch.bfloat16):
            hidden = tiny_lm.backbone.embedding(dna_ids)
            _, residual = tiny_lm.backbone.layers[0](hidden)
            logits = tiny_lm(dna_ids).logits
    assert residual.dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in tiny_lm.parameters())
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits).all()
    torch.testing.assert_close(logits.float(), reference, rtol=5e-2, atol=5e-2)


def test_backward_reaches_every_parameter(tiny_lm, dna_ids):
    tiny_lm.train()
    loss = tiny_lm(dna_ids[:, :-1], targets=dna_ids[:, 1:]).loss
    loss.backward()
    missing = [name for name, p in tiny_lm.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert missing == []


def test_param_groups_split(tiny_lm):
    groups = param_groups(tiny_lm, weight_decay=0.1)
    decay, no_decay = ({id(p) for p in g["params"]} for g in groups)
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]
    names = {id(p): n for n, p in tiny_lm.named_parameters()}  # the tied lm_head appears once, as the embedding
    assert decay | no_decay == set(names) and not decay & no_decay
    expected_no_decay = {n for n in names.values()
                         if n.endswith(("A_log", ".D", "bias", "norm.weight", "norm_f.weight", "embedding.weight"))}
    assert {names[i] for i in no_decay} == expected_no_decay
    assert "backbone.layers.0.mixer.in_proj.weight" in {names[i] for i in decay}
    torch.optim.AdamW(groups, lr=1e-3)
