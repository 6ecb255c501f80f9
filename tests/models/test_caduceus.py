"""CaduceusConfig checks, the BiMamba mixer against known answers, the heads, the registry and model folders."""
import json

import pytest
import torch

from mamba_bio_audio.models import (CaduceusConfig, CaduceusForMaskedLM, CaduceusForSequenceClassification,
                                    load_pretrained, model_class)
from mamba_bio_audio.models.factory import config_from_dict
from mamba_bio_audio.modules import Mamba
from mamba_bio_audio.modules.bimamba import BiMamba


def tiny(**overrides) -> CaduceusConfig:
    values = dict(d_model=8, n_layer=2, ssm_cfg={"d_state": 4}, complement_map="dna", num_labels=3)
    return CaduceusConfig(**{**values, **overrides})


@pytest.mark.parametrize(("overrides", "message"), [
    ({"rcps": True, "d_model": 9}, r"CaduceusConfig.d_model must be an even integer with rcps"),
    ({"rcps": True, "complement_map": None}, r"CaduceusConfig.complement_map must map every token id .* rcps"),
    ({"rcps": True, "complement_map": None, "vocab_size": 259}, r"CaduceusConfig.complement_map .*no complement"),
    ({"conjoin_eval": True, "complement_map": None}, r"CaduceusConfig.complement_map .* conjoin_eval"),
    ({"complement_map": {i: i for i in range(11)}}, r"CaduceusConfig.complement_map .* missing \[11\]"),
    ({"complement_map": {**{i: i for i in range(12)}, 7: 10}}, r"CaduceusConfig.complement_map must be an involution"),
    ({"complement_map": {**{i: i for i in range(12)}, 3: 16}}, r"CaduceusConfig.complement_map entry 3 -> 16"),
    ({"rcps": True, "conjoin_train": True}, r"CaduceusConfig.conjoin_train must be false with rcps"),
    ({"bidirectional_strategy": "concat"}, r"CaduceusConfig.bidirectional_strategy must be one of add, ew_multiply"),
    ({"ssm_cfg": {"d_state": 4, "d_conv": 7}}, r"CaduceusConfig.ssm_cfg\['d_conv'\] must be 2, 3 or 4"),
    ({"ssm_cfg": {"n_groups": 2}}, r"CaduceusConfig.ssm_cfg has unknown key"),
    ({"initializer_cfg": {"std": 1}}, r"CaduceusConfig.initializer_cfg has unknown key\(s\) \['std'\]"),
    ({"pad_token_id": 16}, r"CaduceusConfig.pad_token_id must be None or an id in \[0, 16\)"),
    ({"piece_length": 0}, r"CaduceusConfig.piece_length must be"),
])
def test_bad_configs_name_the_field(overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny(**overrides)


def test_config_round_trips_through_json():
    config = tiny(rcps=True)
    assert config.complement_map[7] == 10 and config.complement_map[11] == 11 and config.hidden_size == 16
    again = config_from_dict(json.loads(json.dumps(config.to_dict())))  # JSON makes the map's keys strings
    assert again == config and type(again) is CaduceusConfig
    with pytest.raises(ValueError, match="unknown CaduceusConfig field"):
        CaduceusConfig.from_dict({"d_model": 8, "d_intermediate": 4})


def _copy(src: Mamba, dst: Mamba) -> None:
    dst.load_state_dict(src.state_dict())


def test_bimamba_known_answers():
    torch.manual_seed(0)
    bi = BiMamba(8, d_state=4)
    assert bi.mamba_rev.in_proj.weight is bi.mamba_fwd.in_proj.weight
    assert bi.mamba_rev.out_proj.weight is bi.mamba_fwd.out_proj.weight
    assert bi.mamba_rev.x_proj.weight is not bi.mamba_fwd.x_proj.weight
    single = sum(p.numel() for p in Mamba(8, d_state=4).parameters())
    shared = bi.mamba_fwd.in_proj.weight.numel() + bi.mamba_fwd.out_proj.weight.numel()
    assert sum(p.numel() for p in bi.parameters()) == 2 * single - shared
    x = torch.randn(2, 11, 8)
    fwd, rev = Mamba(8, d_state=4), Mamba(8, d_state=4)
    _copy(bi.mamba_fwd, fwd)
    _copy(bi.mamba_rev, rev)
    with torch.no_grad():
        assert torch.allclose(bi(x), fwd(x) + rev(x.flip(1)).flip(1), atol=1e-6)
        mirrored = BiMamba(8, d_state=4, bidirectional_weight_tie=False)  # fwd and rev exchanged
        _copy(bi.mamba_fwd, mirrored.mamba_rev)
        _copy(bi.mamba_rev, mirrored.mamba_fwd)
        assert torch.allclose(mirrored(x.flip(1)), bi(x).flip(1), atol=1e-5)
        product = BiMamba(8, d_state=4, bidirectional_strategy="ew_multiply")
        product.load_state_dict(bi.state_dict())
        assert torch.allclose(product(x), fwd(x) * rev(x.flip(1)).flip(1), atol=1e-6)
        causal = BiMamba(8, d_state=4, bidirectional=False)
        _copy(bi.mamba_fwd, causal.mamba_fwd)
        assert causal.mamba_rev is None and torch.allclose(causal(x), fwd(x), atol=1e-6)
    with pytest.raises(ValueError, match="inference_params"):
        bi(x, inference_params=object())


def _first_output_grad_at_last_input(model, x):
    x = x.clone().requires_grad_(True)
    model(x)[:, 0].sum().backward()
    return x.grad[:, -1].abs().max().item()


def test_bimamba_sees_the_future_and_causal_does_not():
    torch.manual_seed(0)
    x = torch.randn(1, 9, 8)
    assert _first_output_grad_at_last_input(BiMamba(8, d_state=4), x) > 1e-6
    assert _first_output_grad_at_last_input(BiMamba(8, d_state=4, bidirectional=False), x) == 0.0


def test_pieces_pass_equals_one_pass():
    torch.manual_seed(0)
    model = CaduceusForMaskedLM(tiny(rcps=True)).eval()
    chunked = CaduceusForMaskedLM(tiny(rcps=True, piece_length=5)).eval()
    chunked.load_state_dict(model.state_dict())
    ids = torch.randint(7, 11, (2, 23))
    with torch.no_grad():
        assert (chunked(ids).logits - model(ids).logits).abs().max() < 1e-5


def test_an_earlier_config_json_chunk_size_is_read_as_piece_length():
    values = {k: v for k, v in tiny().to_dict().items() if k != "piece_length"}
    assert CaduceusConfig.from_dict({**values, "chunk_size": 5}).piece_length == 5
    with pytest.raises(ValueError, match="'chunk_size' .*earlier spelling of 'piece_length'"):
        CaduceusConfig.from_dict({**values, "chunk_size": 5, "piece_length": 7})


def test_heads_registry_and_no_decoding_contract(tmp_path):
    assert model_class("caduceus", "masked_lm") is CaduceusForMaskedLM
    assert model_class("caduceus", "classification") is CaduceusForSequenceClassification
    with pytest.raises(ValueError, match="caduceus models have no causal_lm head"):
        model_class("caduceus", "causal_lm")
    torch.manual_seed(0)
    lm = CaduceusForMaskedLM(tiny()).eval()
    assert not hasattr(lm, "step") and not hasattr(lm, "prefill")
    assert lm.lm_head.weight is lm.caduceus.backbone.embeddings.word_embeddings.weight
    ids = torch.randint(7, 11, (2, 10))
    labels = torch.full_like(ids, -100)
    labels[:, 3] = ids[:, 3]
    out = lm(ids, labels=labels)
    assert out.logits.shape == (2, 10, 16) and out.loss.dtype == torch.float32
    expected = torch.nn.functional.cross_entropy(out.logits[:, 3], ids[:, 3])
    assert torch.allclose(out.loss, expected)
    folder = lm.save_pretrained(tmp_path / "lm")
    assert json.loads((folder / "config.json").read_text())["head_type"] == "masked_lm"
    loaded = load_pretrained(folder)
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, lm(ids).logits)
    classifier = load_pretrained(folder, head_type="classification", num_labels=2)
    assert isinstance(classifier, CaduceusForSequenceClassification) and classifier.score.weight.shape == (2, 8)
    padded = torch.cat([ids, torch.full((2, 3), 4)], dim=1)
    with torch.no_grad():  # mean pooling skips PAD
        expected = classifier.score(classifier.caduceus(padded)[:, :10].mean(1))
        assert torch.allclose(classifier(padded).logits, expected, atol=1e-6)
        assert torch.allclose(classifier(padded, attention_mask=padded != 4).logits, classifier(padded).logits)
