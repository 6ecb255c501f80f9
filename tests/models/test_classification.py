"""Sequence classification: pad-aware pooling, right padding invariance, streaming, losses."""
import pytest
import torch
import torch.nn.functional as F

from mamba_bio_audio import MambaForSequenceClassification
from mamba_bio_audio.modules.pooling import merge, pool, pooled, summarize

PAD = 4


def test_pool_functions():
    hidden = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)
    mask = torch.tensor([[True, True, False, False], [False, True, True, True]])
    torch.testing.assert_close(pool(hidden, "mean", mask), torch.stack([hidden[0, :2].mean(0), hidden[1, 1:].mean(0)]))
    torch.testing.assert_close(pool(hidden, "last", mask), torch.stack([hidden[0, 1], hidden[1, 3]]))
    torch.testing.assert_close(pool(hidden, "first", mask), torch.stack([hidden[0, 0], hidden[1, 1]]))
    torch.testing.assert_close(pool(hidden, "last"), hidden[:, -1])
    assert torch.equal(pool(hidden, "mean", torch.zeros(2, 4, dtype=torch.bool)), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="pooling"):
        pool(hidden, "max")


@pytest.mark.parametrize("mode", ["last", "mean", "first"])
def test_merged_chunk_summaries_equal_the_whole(mode):
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(3, 7, 5, generator=generator)
    mask = torch.rand(3, 7, generator=generator) > 0.4
    mask[0] = False
    mask[1, :4] = False  # first chunk of row 1 is all padding
    whole = pooled(summarize(hidden, mask), mode)
    chunks = merge(summarize(hidden[:, :4], mask[:, :4]), summarize(hidden[:, 4:], mask[:, 4:]))
    torch.testing.assert_close(pooled(chunks, mode), whole)


@pytest.mark.parametrize("pooling", ["last", "mean", "first"])
def test_right_padding_does_not_change_logits(make_config, dna_ids, pooling):
    torch.manual_seed(0)
    model = MambaForSequenceClassification(make_config(num_labels=3, pooling=pooling)).eval()
    padded = torch.cat([dna_ids, torch.full((2, 5), PAD)], 1)
    padded[1, 9:12] = PAD  # row 1 is shorter
    with torch.no_grad():
        logits = model(padded).logits
        row0 = model(dna_ids[:1]).logits
        row1 = model(dna_ids[1:, :9]).logits
        masked = model(padded, attention_mask=padded != PAD).logits
    assert logits.shape == (2, 3)
    torch.testing.assert_close(logits, torch.cat([row0, row1]), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(masked, logits)


def test_mean_pooling_excludes_pad(make_config, dna_ids):
    torch.manual_seed(0)
    model = MambaForSequenceClassification(make_config(pooling="mean", pad_token_id=None)).eval()
    padded = torch.cat([dna_ids, torch.full((2, 5), PAD)], 1)
    with torch.no_grad():
        assert not torch.allclose(model(padded).logits, model(dna_ids).logits)  # PAD counted without a pad id
        torch.testing.assert_close(model(padded, attention_mask=padded != PAD).logits, model(dna_ids).logits)


@pytest.mark.parametrize("pooling", ["last", "mean", "first"])
def test_streaming_matches_whole_sequence(make_config, dna_ids, pooling):
    torch.manual_seed(0)
    model = MambaForSequenceClassification(make_config(num_labels=3, pooling=pooling)).eval()
    params = model.allocate_inference_cache(2, 12)
    with torch.no_grad():
        model.prefill(dna_ids[:, :5], params)
        for t in range(5, 11):
            logits, state = model.step(dna_ids[:, t], params)  # the LMs' convention: (logits, state)
            assert state is params and logits.shape == (2, 3)
        last, _ = model.prefill(dna_ids[:, 11:], params)
        whole = model(dna_ids).logits
    torch.testing.assert_close(last, whole, rtol=1e-5, atol=1e-5)


def test_cross_entropy_and_regression_losses(make_config, tiny_classifier, dna_ids):
    labels = torch.tensor([0, 2])
    out = tiny_classifier(dna_ids, labels=labels)
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits, labels))
    weight = tiny_classifier.score.weight
    (expected,) = torch.autograd.grad(F.cross_entropy(out.logits, labels), weight, retain_graph=True)
    out.loss.backward()
    torch.testing.assert_close(weight.grad, expected)  # the reference loss's gradient, not only its value
    regressor = MambaForSequenceClassification(make_config(num_labels=1))
    targets = torch.tensor([0.5, -1.0])
    out = regressor(dna_ids, labels=targets)
    torch.testing.assert_close(out.loss, F.mse_loss(out.logits.squeeze(-1), targets))


def test_score_head_init(make_config):
    torch.manual_seed(0)
    model = MambaForSequenceClassification(make_config(d_model=64, num_labels=8))
    assert model.score.bias is None
    assert abs(model.score.weight.std().item() - 0.02) < 0.003
    assert set(model.state_dict()) - {k for k in model.state_dict() if k.startswith("backbone.")} == {"score.weight"}
