"""SC09 metrics (pipelines/evaluation/audio_metrics.py) on sets whose answers are known in closed form."""
import math

import numpy as np
import pytest

from mamba_bio_audio.pipelines.evaluation.audio_metrics import (
    am_score, fid, frechet_distance, inception_score, modified_inception_score, set_metrics,
)

K = 10


def log_softmax(logits):
    logits = np.asarray(logits, np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def one_hot_log_probs(labels, k=K):
    with np.errstate(divide="ignore"):
        return np.log(np.eye(k)[labels])


def with_moments(n, mean, cov, seed=0):
    """(n, d) samples whose sample mean and unbiased covariance are exactly ``mean`` and ``cov``."""
    z = np.random.default_rng(seed).standard_normal((n, len(mean)))
    z -= z.mean(axis=0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T  # sample covariance I
    return z @ np.linalg.cholesky(cov).T + mean


def random_cov(d, seed):
    a = np.random.default_rng(seed).standard_normal((d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_uniform_predictions_give_is_and_mis_one():
    uniform = np.full((64, K), -math.log(K))
    assert inception_score(uniform) == pytest.approx(1.0, abs=1e-12)
    assert modified_inception_score(uniform) == pytest.approx(1.0, abs=1e-12)


def test_confident_predictions_spread_evenly_give_is_k():
    labels = np.arange(200) % K
    assert inception_score(one_hot_log_probs(labels)) == pytest.approx(K, rel=1e-12)
    assert inception_score(one_hot_log_probs(np.zeros(50, int))) == pytest.approx(1.0, abs=1e-12)
    # disjoint supports between clips: KL(p_x || p_x') = inf for x != x'
    assert modified_inception_score(one_hot_log_probs(labels)) == math.inf
    assert modified_inception_score(one_hot_log_probs(np.full(7, 3))) == pytest.approx(1.0, abs=1e-12)


def test_mis_is_the_mean_kl_over_all_ordered_pairs():
    log_probs = log_softmax(np.random.default_rng(1).normal(size=(9, K)) * 2)
    p = np.exp(log_probs)
    kl = (p[:, None, :] * (log_probs[:, None, :] - log_probs[None, :, :])).sum(axis=2)  # (n, n), x = x' included
    assert modified_inception_score(log_probs) == pytest.approx(math.exp(kl.mean()), rel=1e-12)
    marginal = p.mean(axis=0)
    kl_is = (p * (log_probs - np.log(marginal))).sum(axis=1)
    assert inception_score(log_probs) == pytest.approx(math.exp(kl_is.mean()), rel=1e-12)


def test_am_score_is_marginal_kl_plus_mean_entropy():
    uniform = np.full((20, K), -math.log(K))
    assert am_score(uniform, uniform) == pytest.approx(math.log(K), rel=1e-12)  # KL 0, entropy log K
    labels = np.arange(100) % K
    assert am_score(one_hot_log_probs(labels), one_hot_log_probs(labels)) == pytest.approx(0.0, abs=1e-12)
    # all samples confidently "zero" against a balanced reference: KL(uniform || one-hot) = inf
    assert am_score(one_hot_log_probs(labels), one_hot_log_probs(np.zeros(5, int))) == math.inf
    # balanced reference, uniform predictions: 0 + log K
    assert am_score(one_hot_log_probs(labels), uniform) == pytest.approx(math.log(K), rel=1e-12)


def test_identical_feature_sets_give_fid_zero():
    feats = np.random.default_rng(2).normal(size=(300, 32)) @ np.random.default_rng(3).normal(size=(32, 32))
    scale = np.trace(np.cov(feats, rowvar=False))
    assert abs(fid(feats, feats)) <= 1e-6 * scale
    assert abs(fid(feats, feats[::-1].copy())) <= 1e-6 * scale


def test_frechet_distance_of_gaussians_in_closed_form():
    # commuting covariances (shared eigenvectors): |dmu|^2 + sum (sqrt(l1) - sqrt(l2))^2
    q, _ = np.linalg.qr(np.random.default_rng(4).normal(size=(5, 5)))
    l1, l2 = np.array([1.0, 2.0, 3.0, 0.5, 4.0]), np.array([2.0, 2.0, 1.0, 0.25, 9.0])
    mu1, mu2 = np.arange(5.0), np.arange(5.0)[::-1]
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(l1) - np.sqrt(l2)) ** 2)
    got = frechet_distance(mu1, q @ np.diag(l1) @ q.T, mu2, q @ np.diag(l2) @ q.T)
    assert got == pytest.approx(expected, rel=1e-10)
    assert frechet_distance([0.0], [[4.0]], [3.0], [[1.0]]) == pytest.approx(9.0 + 1.0)
    # general covariances: tr((S1 S2)^(1/2)) is the sum of the square roots of the eigenvalues of S1 S2
    s1, s2 = random_cov(6, 5), random_cov(6, 6)
    trace_sqrt = np.sqrt(np.linalg.eigvals(s1 @ s2).real).sum()
    expected = np.trace(s1) + np.trace(s2) - 2 * trace_sqrt
    assert frechet_distance(np.zeros(6), s1, np.zeros(6), s2) == pytest.approx(expected, rel=1e-9)


def test_fid_fits_gaussians_to_the_features():
    mu1, mu2 = np.zeros(4), np.array([1.0, -1.0, 0.5, 0.0])
    s1, s2 = random_cov(4, 7), random_cov(4, 8)
    got = fid(with_moments(50, mu1, s1, seed=1), with_moments(80, mu2, s2, seed=2))
    assert got == pytest.approx(frechet_distance(mu1, s1, mu2, s2), rel=1e-9)


def test_set_metrics_reports_every_field():
    labels = np.arange(40) % K
    lp = one_hot_log_probs(labels)
    feats = np.random.default_rng(0).normal(size=(40, 8))
    out = set_metrics(lp, feats, lp, feats)
    assert out["n"] == 40 and out["predicted"] == [4] * K
    assert out["fid"] == pytest.approx(0.0, abs=1e-9) and out["is"] == pytest.approx(K)
    assert out["am"] == pytest.approx(0.0, abs=1e-12) and out["confidence"] == pytest.approx(1.0)
    assert out["class_entropy_nats"] == pytest.approx(math.log(K))


@pytest.mark.parametrize("bad, message", [
    (np.zeros((3, K)), "sums to"),
    (np.zeros((0, K)), "n >= 1"),
    (np.full((2, K), np.nan), "NaN"),
])
def test_bad_log_probs_are_named(bad, message):
    with pytest.raises(ValueError, match=message):
        inception_score(bad)


def test_bad_features_are_named():
    with pytest.raises(ValueError, match="features_reference must be"):
        fid(np.zeros((1, 3)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="widths differ"):
        fid(np.zeros((4, 3)), np.zeros((5, 2)))
