"""One registry and loader for every model, one decoding contract and one sampler: each model folder loads back as
its own class with identical outputs, and the sampler's log-likelihoods equal the teacher-forced forward pass's."""
from __future__ import annotations

import json

import pytest
import torch

from mamba_bio_audio.config import MambaConfig, TransformerConfig
from mamba_bio_audio.generation import generate, sample_sequences
from mamba_bio_audio.models import (MambaForSequenceClassification, MambaLMHeadModel, SashimiConfig, SashimiLM,
                                    load_pretrained)
from mamba_bio_audio.models.transformer import TransformerForSequenceClassification, TransformerLMHeadModel

DNA = dict(vocab_size=12, pad_token_id=4)


def _mamba_lm():
    return MambaLMHeadModel(MambaConfig(d_model=16, n_layer=2, ssm_cfg={"d_state": 4}, **DNA))


def _transformer_lm():
    return TransformerLMHeadModel(TransformerConfig(d_model=32, n_layer=2, n_head=4, d_intermediate=64, **DNA))


def _sashimi():
    return SashimiLM(SashimiConfig(d_model=8, n_layers=1, pool=[2, 2], vocab_size=256))


def _mamba_classifier():
    return MambaForSequenceClassification(MambaConfig(d_model=16, n_layer=2, ssm_cfg={"d_state": 4}, num_labels=3,
                                                      **DNA))


def _transformer_classifier():
    return TransformerForSequenceClassification(TransformerConfig(d_model=32, n_layer=2, n_head=4, d_intermediate=64,
                                                                  num_labels=3, **DNA))


GENERATIVE = {"mamba": _mamba_lm, "transformer": _transformer_lm, "sashimi": _sashimi}
ALL = {**GENERATIVE, "mamba_classifier": _mamba_classifier, "transformer_classifier": _transformer_classifier}


def _ids(model, batch: int, length: int, seed: int = 0) -> torch.Tensor:
    low, high = (7, 11) if model.config.vocab_size == 12 else (0, 256)
    return torch.randint(low, high, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", sorted(ALL))
def test_every_folder_loads_back_as_its_own_class(name, tmp_path):
    torch.manual_seed(0)
    model = ALL[name]().eval()
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["architecture"] == model.config.architecture and saved["head_type"] == model.head_type
    loaded = load_pretrained(tmp_path)
    assert type(loaded) is type(model) and not loaded.training
    ids = _ids(model, 2, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, model(ids).logits, rtol=0, atol=0)


def test_a_folder_of_another_architecture_is_refused_by_name(tmp_path):
    _sashimi().save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="architecture 'sashimi', not 'mamba'.*load_pretrained"):
        MambaLMHeadModel.from_pretrained(tmp_path)
    legacy = json.loads((tmp_path / "config.json").read_text())
    del legacy["architecture"], legacy["head_type"]  # what a folder without the registry keys reads as: Mamba
    (tmp_path / "config.json").write_text(json.dumps(legacy))
    with pytest.raises(ValueError, match="no field 'n_layers'.*\"architecture\": \"sashimi\""):
        load_pretrained(tmp_path)


def test_a_classifier_starts_from_an_lm_folder_with_a_fresh_head(tmp_path):
    torch.manual_seed(0)
    lm = _transformer_lm()
    lm.save_pretrained(tmp_path)
    classifier = load_pretrained(tmp_path, head_type="classification", num_labels=5)
    assert type(classifier) is TransformerForSequenceClassification and classifier.config.num_labels == 5
    torch.testing.assert_close(classifier.backbone.embedding.weight, lm.backbone.embedding.weight)


def test_a_mis_shaped_tensor_names_the_key_and_the_field(tmp_path):
    _transformer_lm().save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "d_intermediate": 32}))
    with pytest.raises(ValueError, match=r"'backbone.layers.0.mlp.fc1.weight' has shape .* d_intermediate"):
        load_pretrained(tmp_path)


@pytest.mark.parametrize("name", sorted(GENERATIVE))
def test_sampler_log_likelihood_equals_the_teacher_forced_forward(name):
    """The oracle: one forward pass over the drawn sequence, log-softmax over the real vocabulary."""
    torch.manual_seed(0)
    model = GENERATIVE[name]().eval()
    prompt = _ids(model, 3, 5, seed=1)
    drawn = sample_sequences(model, prompt, 11, batch_size=2, temperature=1.3, top_k=0, seed=7)
    assert drawn.tokens.shape == (3, 16) and torch.equal(drawn.tokens[:, :5], prompt)
    with torch.no_grad():
        logits = model(drawn.tokens[:, :-1]).logits[..., :model.config.vocab_size].float()
    expected = torch.log_softmax(logits, -1).gather(-1, drawn.tokens[:, 1:, None])[..., 0]
    torch.testing.assert_close(drawn.log_probs[:, 1:], expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(drawn.log_likelihood, expected[:, 4:].sum(1), rtol=1e-4, atol=1e-4)
    again = sample_sequences(model, prompt, 11, batch_size=2, temperature=1.3, top_k=0, seed=7)
    assert torch.equal(again.tokens, drawn.tokens)


@pytest.mark.parametrize("name", sorted(GENERATIVE))
def test_allowed_tokens_restrict_the_draws_not_the_likelihood(name):
    torch.manual_seed(0)
    model = GENERATIVE[name]().eval()
    allowed = [7, 8] if model.config.vocab_size == 12 else [100, 200]
    drawn = sample_sequences(model, _ids(model, 2, 3), 20, allowed_tokens=allowed, seed=0)
    assert set(drawn.tokens[:, 3:].unique().tolist()) <= set(allowed)
    with torch.no_grad():  # the oracle: the unmasked model over its whole vocabulary, teacher-forced
        logits = model(drawn.tokens[:, :-1]).logits[..., :model.config.vocab_size].float()
    expected = torch.log_softmax(logits, -1).gather(-1, drawn.tokens[:, 1:, None])[..., 0]
    torch.testing.assert_close(drawn.log_probs[:, 1:], expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["mamba", "transformer"])
def test_generate_scores_match_the_forward_through_the_same_loop(name):
    torch.manual_seed(0)
    model = GENERATIVE[name]().eval()
    ids = _ids(model, 2, 12)
    out = generate(model, ids[:, :4], 12, teacher_outputs=ids, return_dict_in_generate=True, output_scores=True)
    with torch.no_grad():
        logits = model(ids).logits[..., :12]
    assert torch.equal(out.sequences, ids)
    torch.testing.assert_close(torch.stack(out.scores, 1), logits[:, 3:11], rtol=1e-5, atol=1e-5)


def test_a_transformer_state_needs_its_length():
    with pytest.raises(ValueError, match="max_seqlen"):
        _transformer_lm().allocate_inference_cache(2)
