import math

import numpy as np
import pytest

from mamba_bio_audio.pipelines.baselines import MarkovBaseline


def test_order0_matches_hand_computed_smoothed_frequencies():
    train = np.array([7, 7, 7, 8])  # A A A C
    model = MarkovBaseline(order=0, alpha=1.0).fit(train)
    # alphabet of 5 symbols: p(A) = (3+1)/(4+5), p(C) = (1+1)/(4+5)
    expected = -(math.log2(4 / 9) + math.log2(2 / 9)) / 2
    assert model.bits_per_base(np.array([7, 8])) == pytest.approx(expected)


def test_order1_learns_a_deterministic_cycle():
    cycle = np.tile([7, 8, 9, 10], 500)
    model = MarkovBaseline(order=1, alpha=1e-6).fit(cycle)
    assert model.bits_per_base(cycle[:100]) < 1e-3
    assert MarkovBaseline(order=0).fit(cycle).bits_per_base(cycle[:100]) == pytest.approx(2.0, abs=0.01)


def test_rejects_tokens_outside_alphabet():
    with pytest.raises(ValueError, match="alphabet"):
        MarkovBaseline(order=1).fit(np.array([7, 4, 8]))
