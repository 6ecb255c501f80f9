"""SC09 sample-quality metrics from a classifier's outputs: FID, IS, modified IS and AM score.

The definitions are those of SaShiMi's ``sc09_classifier/test_speech_commands.py`` (Goel et al. 2022), which the
Mamba paper's Table 4 uses, computed in float64 numpy:

* **FID** (Heusel et al. 2017): Fréchet distance between Gaussians fitted (mean, unbiased covariance) to the
  classifier's penultimate features of the reference set (the real training clips) and of the evaluated set,
  ``|mu_r - mu_g|^2 + tr(S_r + S_g - 2 (S_r S_g)^(1/2))``. Lower is better.
* **IS** (Salimans et al. 2016): ``exp(E_x KL(p(y|x) || p(y)))``, ``p(y)`` the mean prediction over the set.
  SaShiMi estimates ``p(y)`` from one random half of the set and the KL on the other; here the whole set serves
  for both, which is the textbook definition (uniform predictions give 1, confident ones spread evenly over K
  classes give K). Higher is better.
* **mIS** (Gurumurthy et al. 2017): ``exp(E_{x,x'} KL(p(y|x) || p(y|x')))`` over all ordered pairs, ``x = x'``
  included (SaShiMi draws 10,000 such pairs with replacement; the mean over all pairs is computed exactly here).
  Higher is better.
* **AM** (Zhou et al. 2018): ``KL(p_ref(y) || p(y)) + E_x H(p(y|x))``, ``p_ref(y)`` the mean prediction on the
  reference set. Lower is better.

Inputs are log-probabilities (log-softmax of the logits) so very confident predictions keep their precision.
"""
from __future__ import annotations

import numpy as np

__all__ = ["frechet_distance", "fid", "inception_score", "modified_inception_score", "am_score", "set_metrics"]


def _log_probs(log_probs, name: str = "log_probs") -> np.ndarray:
    """(n, K) float log-probabilities, rows summing to 1 in probability, n >= 1 → float64 array."""
    array = np.asarray(log_probs, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 2:
        raise ValueError(f"{name} must be (n >= 1, classes >= 2); got shape {array.shape}")
    if np.isnan(array).any() or np.isposinf(array).any():
        raise ValueError(f"{name} holds NaN or +inf")
    sums = np.exp(array).sum(axis=1)
    if not np.allclose(sums, 1.0, atol=1e-6):
        worst = int(np.argmax(np.abs(sums - 1.0)))
        raise ValueError(f"{name} row {worst} sums to {sums[worst]:.6g} in probability, not 1 (pass log-softmax)")
    return array


def _plogp_minus(p: np.ndarray, log_p: np.ndarray, log_q: np.ndarray) -> np.ndarray:
    """Elementwise p (log p - log q) with 0 where p == 0 (so -inf logs of empty classes stay harmless)."""
    with np.errstate(invalid="ignore"):
        return np.where(p > 0, p * (log_p - log_q), 0.0)


def _entropy(p: np.ndarray, log_p: np.ndarray) -> np.ndarray:
    """Entropy in nats along the last axis."""
    return -_plogp_minus(p, log_p, 0.0).sum(axis=-1)


def _marginal(log_probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(p(y), log p(y)), (K,) each, of the mean prediction."""
    p = np.exp(log_probs).mean(axis=0)
    with np.errstate(divide="ignore"):
        return p, np.log(p)


def inception_score(log_probs) -> float:
    """IS of one set: log_probs (n, K) float → float in [1, K]."""
    log_probs = _log_probs(log_probs)
    p = np.exp(log_probs)
    _, log_marginal = _marginal(log_probs)
    kl = _plogp_minus(p, log_probs, log_marginal[None, :]).sum(axis=1)
    return float(np.exp(kl.mean()))


def modified_inception_score(log_probs) -> float:
    """mIS of one set: log_probs (n, K) float → float >= 1 (inf when two predictions have disjoint support).

    ``E_{x,x'} KL(p_x || p_x') = -E_x H(p_x) - sum_y p(y) E_x' log p_x'(y)``: exact over all n^2 pairs in O(n K).
    """
    log_probs = _log_probs(log_probs)
    p = np.exp(log_probs)
    mean_entropy = _entropy(p, log_probs).mean()
    marginal, _ = _marginal(log_probs)
    cross = _plogp_minus(marginal, 0.0, log_probs.mean(axis=0)).sum()  # -sum_y p(y) E_x' log p_x'(y)
    return float(np.exp(cross - mean_entropy))


def am_score(log_probs_reference, log_probs) -> float:
    """AM score of a set against the reference set's class marginal: (n_ref, K), (n, K) float → float >= 0."""
    reference, log_probs = _log_probs(log_probs_reference, "log_probs_reference"), _log_probs(log_probs)
    if reference.shape[1] != log_probs.shape[1]:
        raise ValueError(f"reference has {reference.shape[1]} classes, the set {log_probs.shape[1]}")
    p_ref, log_p_ref = _marginal(reference)
    _, log_p = _marginal(log_probs)
    return float(_plogp_minus(p_ref, log_p_ref, log_p).sum() + _entropy(np.exp(log_probs), log_probs).mean())


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix (negative rounding eigenvalues → 0)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(mu1, cov1, mu2, cov2) -> float:
    """Fréchet distance of N(mu1, cov1) and N(mu2, cov2): means (d,), covariances (d, d) float → float >= 0.

    ``tr((S1 S2)^(1/2)) = tr((S1^(1/2) S2 S1^(1/2))^(1/2))``, the sum of the square roots of the eigenvalues of
    a symmetric PSD matrix, so no general matrix square root (scipy's ``sqrtm``) is needed.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    cov1, cov2 = np.atleast_2d(np.asarray(cov1, np.float64)), np.atleast_2d(np.asarray(cov2, np.float64))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or cov1.shape != (d, d) or cov2.shape != (d, d):
        raise ValueError(f"need means (d,) and covariances (d, d) of one d; got {mu1.shape}, {cov1.shape}, "
                         f"{mu2.shape}, {cov2.shape}")
    root1 = _psd_sqrt(cov1)
    middle = root1 @ cov2 @ root1
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0.0, None)).sum()
    value = float(np.sum((mu1 - mu2) ** 2) + np.trace(cov1) + np.trace(cov2) - 2.0 * trace_sqrt)
    return max(value, 0.0)


def fid(features_reference, features) -> float:
    """FID between two feature sets (n_ref, d) and (n, d) float, n_ref, n >= 2 → float >= 0."""
    moments = []
    for name, feats in (("features_reference", features_reference), ("features", features)):
        feats = np.asarray(feats, dtype=np.float64)
        if feats.ndim != 2 or feats.shape[0] < 2:
            raise ValueError(f"{name} must be (n >= 2, d); got shape {feats.shape}")
        if not np.isfinite(feats).all():
            raise ValueError(f"{name} holds NaN or inf")
        moments.append((feats.mean(axis=0), np.cov(feats, rowvar=False).reshape(feats.shape[1], feats.shape[1])))
    if moments[0][0].shape != moments[1][0].shape:
        raise ValueError(f"feature widths differ: {moments[0][0].shape[0]} and {moments[1][0].shape[0]}")
    return frechet_distance(*moments[0], *moments[1])


def set_metrics(reference_log_probs, reference_features, log_probs, features) -> dict:
    """Every metric of one evaluated set against the reference set, plus what the predictions look like:

    ``fid``, ``is``, ``mis``, ``am``; ``confidence`` (mean top probability; chance is 1/K); ``class_entropy_nats``
    (entropy of the mean prediction; log K when the classes are balanced); ``predicted`` (count per class of the
    top prediction); ``n``. Shapes as :func:`fid` and :func:`am_score`.
    """
    log_probs = _log_probs(log_probs)
    marginal, log_marginal = _marginal(log_probs)
    return {
        "n": int(log_probs.shape[0]),
        "fid": fid(reference_features, features),
        "is": inception_score(log_probs),
        "mis": modified_inception_score(log_probs),
        "am": am_score(reference_log_probs, log_probs),
        "confidence": float(np.exp(log_probs.max(axis=1)).mean()),
        "class_entropy_nats": float(_entropy(marginal, log_marginal)),
        "predicted": np.bincount(log_probs.argmax(axis=1), minlength=log_probs.shape[1]).tolist(),
    }
