"""Transformer++ baseline: parameter-matched presets, causality, RoPE, decoding, the classifier, checkpoints."""
import pytest
import torch

from mamba_bio_audio.config import MambaConfig, TransformerConfig
from mamba_bio_audio.models.factory import load_preset
from mamba_bio_audio.models import MambaLMHeadModel
from mamba_bio_audio.models.transformer import (TransformerForSequenceClassification, TransformerLMHeadModel,
                                                apply_rotary)

# Paper sizes (Gu & Dao 2023, Fig. 5 left; approximate) of the DNA scaling runs.
PAPER_SIZES = {"250k": 250e3, "700k": 700e3, "1.4m": 1.4e6, "3.5m": 3.5e6, "7m": 7.0e6, "19.3m": 19.3e6,
               "40.7m": 40.7e6}
LAYERS = {"250k": (4, 64), "700k": (5, 96), "1.4m": (6, 128), "3.5m": (7, 192), "7m": (8, 256), "19.3m": (10, 384),
          "40.7m": (12, 512)}


def _count(model_cls, config) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in model_cls(config).parameters())


@pytest.mark.parametrize("size", sorted(PAPER_SIZES))
def test_presets_match_the_table_and_the_mamba_presets(size):
    config = load_preset(f"transformer_dna_{size}")
    assert isinstance(config, TransformerConfig)
    assert (config.n_layer, config.d_model) == LAYERS[size]  # half the Mamba blocks, same width
    assert config.padded_vocab_size == 16 and config.pad_token_id == 4
    count = _count(TransformerLMHeadModel, config)
    assert abs(count - PAPER_SIZES[size]) / PAPER_SIZES[size] < 0.05
    mamba = _count(MambaLMHeadModel, MambaConfig.from_preset(f"dna_{size}"))
    assert abs(count - mamba) / mamba < 0.05


def test_causal(make_transformer_config, make_dna):
    torch.manual_seed(0)
    model = TransformerLMHeadModel(make_transformer_config()).eval()
    ids = make_dna(2, 40)
    changed = ids.clone()
    changed[:, 25] = 11
    with torch.no_grad():
        torch.testing.assert_close(model(changed).logits[:, :25], model(ids).logits[:, :25], rtol=0, atol=0)


def test_rotary_scores_depend_on_relative_position():
    torch.manual_seed(0)
    q, k = torch.randn(1, 1, 1, 32), torch.randn(1, 1, 1, 32)

    def score(i, j):
        return (apply_rotary(q, torch.tensor([i]), 1e4) * apply_rotary(k, torch.tensor([j]), 1e4)).sum()

    torch.testing.assert_close(score(7, 3), score(1007, 1003), rtol=1e-4, atol=1e-4)
    assert abs(score(7, 3) - score(3, 7)) > 1e-3


def test_step_and_generate_match_the_forward(make_transformer_config, make_dna):
    torch.manual_seed(0)
    model = TransformerLMHeadModel(make_transformer_config()).eval()
    ids = make_dna(2, 20)
    with torch.no_grad():
        logits = model(ids).logits
    params = model.allocate_inference_cache(2, 20)
    torch.testing.assert_close(model.prefill(ids[:, :8], params)[0], logits[:, :8], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(model.prefill(ids[:, 8:13], params)[0], logits[:, 8:13], rtol=1e-5, atol=1e-5)
    for t in range(13, 20):
        torch.testing.assert_close(model.step(ids[:, t], params)[0], logits[:, t], rtol=1e-5, atol=1e-5)
    out = model.generate(ids[:, :5], 20, teacher_outputs=ids, return_dict_in_generate=True, output_scores=True)
    torch.testing.assert_close(torch.stack(out.scores, 1), logits[:, 4:19, :12], rtol=1e-5, atol=1e-5)


def test_save_load_and_classifier_from_the_lm(tmp_path, make_transformer_config, make_dna):
    torch.manual_seed(0)
    model = TransformerLMHeadModel(make_transformer_config()).eval()
    ids = make_dna(2, 30)
    model.save_pretrained(tmp_path)
    loaded = TransformerLMHeadModel.from_pretrained(tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, model(ids).logits, rtol=0, atol=0)
    classifier = TransformerForSequenceClassification.from_pretrained(tmp_path, num_labels=5, pooling="mean")
    torch.testing.assert_close(classifier.backbone.embedding.weight, model.backbone.embedding.weight)
    ids[1, 20:] = 4
    out = classifier.train()(ids, labels=torch.tensor([1, 4]))
    out.loss.backward()
    assert out.logits.shape == (2, 5) and classifier.score.weight.grad is not None
    with pytest.raises(ValueError, match="architecture"):
        MambaLMHeadModel.from_pretrained(tmp_path)


def test_same_training_interface_as_mamba(make_transformer_config, make_dna):
    torch.manual_seed(0)
    model = TransformerLMHeadModel(make_transformer_config()).train()
    ids = make_dna(2, 65)
    ids[0, -10:] = 4
    out = model(ids[:, :-1], targets=ids[:, 1:])
    assert out.logits.shape == (2, 64, 16) and out.loss.ndim == 0
    out.loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_the_config_picks_the_model_class(make_mamba_config, make_transformer_config):
    from mamba_bio_audio.models import MambaForSequenceClassification
    from mamba_bio_audio.models.factory import model_class

    assert model_class(load_preset("transformer_dna_7m")) is TransformerLMHeadModel
    assert model_class(load_preset("dna_7m")) is MambaLMHeadModel
    assert model_class(make_mamba_config(), "classification") is MambaForSequenceClassification
    assert model_class(make_transformer_config(), "classification") is TransformerForSequenceClassification
    with pytest.raises(ValueError, match="head_type must be one of"):
        model_class(make_mamba_config(), "token_classification")
    with pytest.raises(ValueError, match="mamba models have no masked_lm head"):
        model_class(make_mamba_config(), "masked_lm")
