"""MambaLMHeadModel: tied padded head, recurrent decoding equals the parallel forward, the loss."""
import math

import pytest
import torch
import torch.nn.functional as F

from mamba_bio_audio import MambaLMHeadModel
from mamba_bio_audio.generation import InferenceParams
from mamba_bio_audio.losses import token_loss


def test_padded_vocab_and_tied_head(tiny_lm, make_config):
    assert tiny_lm.lm_head.weight is tiny_lm.backbone.embedding.weight
    assert tiny_lm.lm_head.weight.shape == (16, 16)
    untied = MambaLMHeadModel(make_config(tie_embeddings=False))
    assert untied.lm_head.weight is not untied.backbone.embedding.weight


def test_step_after_prefix_matches_forward(tiny_lm, dna_ids):
    """Prompt (parallel), a chunk continuing from the state (parallel), then one token at a time."""
    params = tiny_lm.allocate_inference_cache(2)
    with torch.no_grad():
        full = tiny_lm(dna_ids).logits
        first, _ = tiny_lm.prefill(dna_ids[:, :4], params)
        second, _ = tiny_lm.prefill(dna_ids[:, 4:7], params)
        steps = [tiny_lm.step(dna_ids[:, t], params)[0] for t in range(7, 12)]
    assert params.seqlen_offset == 12
    torch.testing.assert_close(torch.cat([first, second], 1), full[:, :7], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(torch.stack(steps, 1), full[:, 7:], rtol=1e-5, atol=1e-5)


def test_reset_cache_starts_a_new_sequence(tiny_lm, dna_ids):
    params = InferenceParams(max_seqlen=12, max_batch_size=2)
    first, _ = tiny_lm.prefill(dna_ids[:, :5], params)
    tiny_lm.step(dna_ids[:, 5], params)
    params.reset(12, 2)
    torch.testing.assert_close(tiny_lm.prefill(dna_ids[:, :5], params)[0], first, rtol=0, atol=0)


def test_num_last_tokens(tiny_lm, dna_ids):
    with torch.no_grad():
        full = tiny_lm(dna_ids).logits
        last = tiny_lm(dna_ids, num_last_tokens=3).logits
    assert full.shape == (2, 12, 16) and last.shape == (2, 3, 16)
    torch.testing.assert_close(last, full[:, -3:])


def test_loss_ignores_pad_and_matches_cross_entropy(tiny_lm, dna_ids):
    inputs, labels = dna_ids[:, :-1], dna_ids[:, 1:].clone()
    labels[0, -3:] = 4  # [PAD]
    out = tiny_lm(inputs, targets=labels)
    keep = labels != 4
    expected = F.cross_entropy(out.logits[keep], labels[keep])
    torch.testing.assert_close(out.loss, expected)
    assert 0.5 * math.log(16) < out.loss.item() < 1.5 * math.log(16)  # near uniform at init


def test_all_ignored_targets_give_zero_not_nan(tiny_lm, dna_ids):
    labels = torch.full_like(dna_ids, 4)
    loss = tiny_lm(dna_ids, labels=labels).loss
    assert loss.item() == 0.0
    loss.backward()
    assert torch.count_nonzero(tiny_lm.lm_head.weight.grad) == 0


def test_loss_helper_accepts_minus_100():
    logits = torch.randn(1, 3, 5)
    labels = torch.tensor([[1, -100, 2]])
    expected = F.cross_entropy(logits[0, [0, 2]], torch.tensor([1, 2]))
    torch.testing.assert_close(token_loss(logits, labels), expected)


def test_labels_are_shifted_inside_as_in_transformers(tiny_lm, dna_ids):
    """model(ids, labels=ids): position t is trained on ids[t + 1], the last position on nothing, -100 skipped."""
    labels = dna_ids.clone()
    labels[1, 5] = -100
    out = tiny_lm(dna_ids, labels=labels)
    logits, shifted = out.logits[:, :-1], labels[:, 1:]
    keep = shifted != -100
    torch.testing.assert_close(out.loss, F.cross_entropy(logits[keep], shifted[keep]))
    torch.testing.assert_close(tiny_lm(dna_ids[:, :-1], targets=labels[:, 1:]).loss, out.loss)
    with pytest.raises(ValueError, match="labels .* or targets"):
        tiny_lm(dna_ids, labels=labels, targets=labels)


def test_position_ids_are_accepted(tiny_lm, dna_ids):
    positions = torch.arange(12).expand(2, 12)
    with torch.no_grad():
        torch.testing.assert_close(tiny_lm(dna_ids, position_ids=positions).logits, tiny_lm(dna_ids).logits)


def test_cache_batch_mismatch_is_refused(tiny_lm, dna_ids):
    params = tiny_lm.allocate_inference_cache(3, 12)
    with pytest.raises(ValueError, match="batch"):
        tiny_lm.prefill(dna_ids, params)
