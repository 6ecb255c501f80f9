import itertools
import math
from collections import Counter

import numpy as np
import pytest

from mamba_bio_audio.pipelines.evaluation.baselines import KmerSpeciesBaseline, MarkovBaseline, best_markov
from mamba_bio_audio.tokenizers import BASE_IDS


def test_order0_matches_hand_computed_smoothed_frequencies():
    train = np.array([7, 7, 7, 8])  # A A A C
    model = MarkovBaseline(order=0, alpha=1.0).fit(train)
    # alphabet of 5 symbols: p(A) = (3+1)/(4+5), p(C) = (1+1)/(4+5)
    expected = -(math.log2(4 / 9) + math.log2(2 / 9)) / 2
    assert model.bits_per_base(np.array([7, 8])) == pytest.approx(expected)


def test_order1_learns_a_deterministic_cycle():
    cycle = np.tile(BASE_IDS, 500)
    model = MarkovBaseline(order=1, alpha=1e-6).fit(cycle)
    assert model.bits_per_base(cycle[:100]) < 1e-3
    assert MarkovBaseline(order=0).fit(cycle).bits_per_base(cycle[:100]) == pytest.approx(2.0, abs=0.01)


def test_rejects_tokens_outside_alphabet():
    with pytest.raises(ValueError, match="alphabet"):
        MarkovBaseline(order=1).fit(np.array([7, 4, 8]))


def _naive_kmer_frequencies(window, k, bases=BASE_IDS):
    letters = {b: "ACGT"[i] for i, b in enumerate(bases)}
    text = "".join(letters.get(int(t), "N") for t in window)
    kmers = [text[i:i + k] for i in range(len(text) - k + 1) if "N" not in text[i:i + k]]
    counts = Counter(kmers)
    total = max(len(kmers), 1)
    names = ["".join(p) for p in itertools.product("ACGT", repeat=k)]
    return np.array([counts[n] / total for n in names])


def test_kmer_features_match_a_string_count():
    rng = np.random.default_rng(0)
    windows = rng.choice([7, 8, 9, 10, 11, 4], size=(5, 60), p=[0.24, 0.24, 0.24, 0.24, 0.02, 0.02])
    windows[4] = 11  # no clean k-mer at all: all-zero rows
    feats = KmerSpeciesBaseline(k_max=3).features(windows)
    for i, window in enumerate(windows):
        expected = np.concatenate([_naive_kmer_frequencies(window, k) for k in (1, 2, 3)])
        np.testing.assert_allclose(feats[i], expected)


def _species_windows(gc_by_class, n_per_class, length, seed):
    rng = np.random.default_rng(seed)
    windows, labels = [], []
    for label, gc in enumerate(gc_by_class):
        p = [(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2]
        windows.append(rng.choice(BASE_IDS, size=(n_per_class, length), p=p))
        labels += [label] * n_per_class
    return np.concatenate(windows), np.array(labels)


def test_kmer_baseline_separates_species_by_composition_and_not_without_it():
    x, y = _species_windows([0.35, 0.45, 0.55, 0.65], 100, 300, seed=1)
    xt, yt = _species_windows([0.35, 0.45, 0.55, 0.65], 100, 300, seed=2)
    assert KmerSpeciesBaseline(k_max=2).fit(x, y).accuracy(xt, yt) > 0.9
    x, y = _species_windows([0.5] * 4, 100, 300, seed=3)
    xt, yt = _species_windows([0.5] * 4, 200, 300, seed=4)
    assert KmerSpeciesBaseline(k_max=2).fit(x, y).accuracy(xt, yt) < 0.33  # chance is 0.25; 800 test windows


def test_kmer_baseline_rejects_bad_arguments():
    with pytest.raises(ValueError, match="k_max"):
        KmerSpeciesBaseline(k_max=0)
    with pytest.raises(ValueError, match="windows"):
        KmerSpeciesBaseline(k_max=4).features(np.zeros((2, 3), dtype=np.int64))
    with pytest.raises(RuntimeError, match="fit"):
        KmerSpeciesBaseline().predict(np.full((1, 10), 7))


def test_high_order_markov_is_sparse_and_finds_the_right_order():
    rng = np.random.default_rng(0)
    motif = rng.choice(BASE_IDS, size=12)
    train = np.tile(motif, 3000)  # period 12: order 1 cannot predict it, order >= 11 can (almost) exactly
    noisy = train.copy()
    flips = rng.random(noisy.size) < 0.01
    noisy[flips] = rng.choice(BASE_IDS, size=int(flips.sum()))
    model = MarkovBaseline(order=10, alpha=0.1).fit(noisy)  # dense counts would need 5^11 floats
    assert model.bits_per_base(train[:2000]) < 0.3
    best, choice = best_markov(noisy[:30000], noisy[30000:], orders=range(0, 11))
    assert choice["order"] >= 6 and best.bits_per_base(train[:2000]) < 0.3
    assert choice["select_bits"]["0/1"] > 1.9  # the unigram of a uniform motif: about 2 bits
