"""The N index counts exactly, whatever the positions, in its sparse and dense paths."""
import numpy as np
import pytest

from mamba_bio_audio.data_prep.datasets import nindex
from mamba_bio_audio.data_prep.datasets.nindex import N_ID, NIndex, NIndexBuilder, block_counts


def tokens_with_n(rng, n):
    tokens = rng.integers(7, 11, n).astype(np.uint8)
    for _ in range(20):
        a = int(rng.integers(n))
        tokens[a: a + int(rng.integers(1, 3 * nindex.BLOCK))] = N_ID
    return tokens


def test_builder_matches_block_counts(rng):
    tokens = tokens_with_n(rng, 50_000)
    builder = NIndexBuilder()
    cuts = np.sort(rng.integers(0, tokens.size, 30))
    for piece in np.split(tokens, cuts):
        builder.add(piece)
    cum = builder.finish()
    np.testing.assert_array_equal(cum, np.concatenate([[0], np.cumsum(block_counts(tokens))]))
    assert cum[-1] == np.count_nonzero(tokens == N_ID) and cum.size == -(-tokens.size // nindex.BLOCK) + 1


@pytest.mark.parametrize("windows, chunk", [(200, nindex.BLOCK * 4096), (3000, nindex.BLOCK * 2)])  # sparse, dense
def test_counts_are_exact(rng, monkeypatch, windows, chunk):
    monkeypatch.setattr(nindex, "_CHUNK", chunk)
    tokens = tokens_with_n(rng, 60_000)
    index = NIndex(tokens)
    starts = rng.integers(0, tokens.size, windows)
    stops = np.minimum(starts + rng.integers(0, 20_000, starts.size), tokens.size)
    prefix = np.concatenate([[0], np.cumsum(tokens == N_ID)])
    np.testing.assert_array_equal(index.count(starts, stops), prefix[stops] - prefix[starts])
    np.testing.assert_array_equal(index.before(np.array([0, tokens.size])), [0, prefix[-1]])
