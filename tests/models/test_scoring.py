"""Zero-shot scores (mamba_bio_audio.scoring) against independent oracles: full forward passes of the model.

* windowed causal scoring (state carried) equals one pass, to 1e-5 fp32;
* the masked marginal equals a forward pass with the base masked;
* strand averaging equals the mean of the two strands scored separately;
* prefix-reuse variant scores equal naive full-window rescoring (written here from the definition), SNVs and
  indels, variants sharing windows, multi-allelic sites, both strands.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mamba_bio_audio import MambaLMHeadModel
from mamba_bio_audio.models import CaduceusConfig, CaduceusForMaskedLM
from mamba_bio_audio.scoring import (Variant, causal_scores, check_dna_lm, masked_scores, rc_average,
                                     reverse_complement_ids, score_variants, variant_window)

BASES = "ACGT"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def lm(make_mamba_config):
    torch.manual_seed(0)
    return MambaLMHeadModel(make_mamba_config()).eval()


@pytest.fixture(scope="module")
def mlm():
    torch.manual_seed(1)
    return CaduceusForMaskedLM(CaduceusConfig(d_model=8, n_layer=2, ssm_cfg={"d_state": 4},
                                              complement_map="dna")).eval()


def _seq(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(7, 11, n)


def _full_logp(model, ids) -> torch.Tensor:
    with torch.no_grad():
        return torch.log_softmax(model(torch.as_tensor(ids)[None].long()).logits[0].float(), -1)


def test_windowed_causal_scores_equal_one_pass(lm):
    ids = _seq(300)
    logp = _full_logp(lm, ids)
    expected_ll = logp[:-1].gather(-1, torch.as_tensor(ids[1:])[:, None].long())[:, 0].numpy()
    expected_entropy = -(logp.exp() * logp).sum(-1)[:-1].numpy()
    for window in (300, 64, 37):
        ll, entropy = causal_scores(lm, ids, window=window)
        assert np.isnan(ll[0]) and np.isnan(entropy[0])  # the first base has no context
        np.testing.assert_allclose(ll[1:], expected_ll, rtol=0, atol=1e-5)
        np.testing.assert_allclose(entropy[1:], expected_entropy, rtol=0, atol=1e-5)


def test_masked_scores_are_the_masked_marginal(mlm):
    ids = _seq(40, seed=2)
    ll, _ = masked_scores(mlm, ids, window=16, batch_size=7)
    for pos in (0, 5, 20, 39):
        start = min(max(0, pos - 8), 40 - 16)
        tokens = ids[start:start + 16].copy()
        tokens[pos - start] = 3  # [MASK]
        expected = _full_logp(mlm, tokens)[pos - start, ids[pos]].item()
        assert ll[pos] == pytest.approx(expected, abs=1e-5)


def test_rc_average_is_the_mean_of_the_strands_scored_separately(lm):
    ids = _seq(120, seed=3)
    rc_ids = np.array([{7: 10, 8: 9, 9: 8, 10: 7}[int(i)] for i in ids[::-1]])
    np.testing.assert_array_equal(reverse_complement_ids(ids), rc_ids)
    forward, _ = causal_scores(lm, ids, window=50)
    reverse, _ = causal_scores(lm, rc_ids, window=50)
    averaged = rc_average(forward, reverse, per_base=True)
    np.testing.assert_allclose(averaged[1:-1], (forward[1:-1] + reverse[::-1][1:-1]) / 2, rtol=0, atol=1e-6)
    assert np.isnan(averaged[0]) and np.isnan(averaged[-1])


def _window_ll(model, ids: np.ndarray) -> float:
    logp = _full_logp(model, ids).double()
    return float(logp[:-1].gather(-1, torch.as_tensor(ids[1:])[:, None].long()).sum())


def _naive(model, seq: np.ndarray, v: Variant, window: int, rc: bool) -> float:
    """LL(alt window) - LL(ref window), each window in one full forward pass (the definition)."""
    start, end = variant_window(v.pos, window, len(seq))
    ref = seq[start:end]
    alt = np.concatenate([seq[start:v.pos], [7 + BASES.index(b) for b in v.alt], seq[v.pos + len(v.ref):end]])
    if rc:
        ref, alt = reverse_complement_ids(ref), reverse_complement_ids(alt)
    return _window_ll(model, alt) - _window_ll(model, ref)


def _variants(seq: np.ndarray) -> list[Variant]:
    base = lambda p, n=1: "".join(BASES[i - 7] for i in seq[p:p + n])  # noqa: E731
    other = lambda p, k=1: BASES[(seq[p] - 7 + k) % 4]  # noqa: E731
    return [Variant(20, base(20), other(20)), Variant(20, base(20), other(20, 2)),  # multi-allelic, split
            Variant(33, base(33, 3), base(33)),                                     # deletion, same window
            Variant(40, base(40), base(40) + "GA"),                                 # insertion
            Variant(47, base(47), other(47)), Variant(130, base(130), other(130)),  # other windows
            Variant(131, base(131, 2), other(131) + base(132)),                     # MNV
            Variant(198, base(198), other(198))]                                    # near the end


@pytest.mark.parametrize(("rc", "min_piece"), [(False, 1), (True, 20)])
def test_prefix_reuse_equals_naive_full_window_rescoring(lm, rc, min_piece):
    # min_piece 1: a state at every variant; 20: variants between kept states re-run reference bases first
    seq = _seq(200, seed=4)
    variants = _variants(seq)
    scores = score_variants(lm, seq, variants, 64, rc=rc, batch_size=3, chunk=32, min_piece=min_piece)
    forward = [_naive(lm, seq, v, 64, False) for v in variants]
    np.testing.assert_allclose(scores.forward, forward, rtol=0, atol=1e-5)
    if rc:
        reverse = [_naive(lm, seq, v, 64, True) for v in variants]
        np.testing.assert_allclose(scores.reverse, reverse, rtol=0, atol=1e-5)
        np.testing.assert_allclose(scores.llr, (np.array(forward) + reverse) / 2, rtol=0, atol=1e-5)
    assert np.all(np.abs(scores.forward[2:4]) > 1e-3)  # indels change the window: a score that can fail


def test_masked_model_scores_snvs_by_the_masked_marginal(mlm):
    seq = _seq(100, seed=5)
    v = Variant(50, BASES[seq[50] - 7], BASES[(seq[50] - 6) % 4])
    start, end = variant_window(50, 32, 100)
    tokens = seq[start:end].copy()
    tokens[50 - start] = 3
    logp = _full_logp(mlm, tokens)[50 - start]
    expected = (logp[7 + BASES.index(v.alt)] - logp[seq[50]]).item()
    assert score_variants(mlm, seq, [v], 32).llr[0] == pytest.approx(expected, abs=1e-5)
    with pytest.raises(ValueError, match="indel: a masked model scores SNVs only"):
        score_variants(mlm, seq, [Variant(50, v.ref, v.ref + "A")], 32)


def test_a_model_that_is_not_dna_is_refused(make_mamba_config):
    audio = MambaLMHeadModel(make_mamba_config(vocab_size=256, pad_token_id=None))
    with pytest.raises(ValueError, match="is not a DNA model: its vocabulary has 256 tokens"):
        check_dna_lm(audio, "piano_lm")
