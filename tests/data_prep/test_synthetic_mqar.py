"""The MQAR generator against what the task is: every scored position is a query of a key from the pairs, its
target that key's value (a dictionary rebuilt from the pairs is the oracle), every key queried once; the query
gaps follow the stated power law; the DataModule serves the same task."""
from __future__ import annotations

import numpy as np
import pytest

from mamba_bio_audio.data_prep.synthetic.mqar import BLANK, mqar
from mamba_bio_audio.targets import IGNORE_INDEX


@pytest.mark.parametrize("random_non_queries", [False, True])
def test_answers_are_the_values_paired_with_the_queried_keys(random_non_queries):
    vocab, length, pairs = 40, 48, 6
    inputs, targets = mqar(np.random.default_rng(3), 64, length, vocab_size=vocab, num_pairs=pairs,
                           random_non_queries=random_non_queries)
    assert inputs.shape == targets.shape == (64, length) and inputs.dtype == targets.dtype == np.int64
    for row, target in zip(inputs, targets):
        keys, values = row[: 2 * pairs : 2], row[1 : 2 * pairs : 2]
        assert len(set(keys)) == pairs and len(set(values)) == pairs
        assert all(1 <= k < vocab // 2 for k in keys) and all(vocab // 2 <= v < vocab for v in values)
        table = dict(zip(keys.tolist(), values.tolist()))
        scored = np.flatnonzero(target != IGNORE_INDEX)
        assert sorted(row[scored].tolist()) == sorted(table)  # every key queried exactly once
        assert all(target[t] == table[row[t]] for t in scored)
        assert all(t >= 2 * pairs and (t - 2 * pairs) % 2 == 0 for t in scored)
        rest = np.setdiff1d(np.arange(2 * pairs, length), scored)
        if not random_non_queries:
            assert (row[rest] == BLANK).all()
        else:
            assert row.min() >= 0 and row.max() < vocab


def test_seeded():
    draw = lambda seed: mqar(np.random.default_rng(seed), 8, 32, vocab_size=64, num_pairs=4)  # noqa: E731
    assert all((a == b).all() for a, b in zip(draw(1), draw(1)))
    assert not (draw(1)[0] == draw(2)[0]).all()


def test_query_gaps_follow_the_power_law():
    """One pair: the query's gap g (offset 2g after the pair) has probability proportional to (g+1)^(a-1)."""
    length, power_a, n = 2 + 2 * 8, 0.3, 16_000
    inputs, targets = mqar(np.random.default_rng(0), n, length, vocab_size=16, num_pairs=1, power_a=power_a)
    gaps = (np.argmax(targets != IGNORE_INDEX, axis=1) - 2) // 2
    expected = np.arange(1, 9) ** (power_a - 1.0)
    expected /= expected.sum()
    np.testing.assert_allclose(np.bincount(gaps, minlength=8) / n, expected, atol=0.015)  # > 4 sigma


@pytest.mark.parametrize("kwargs, named", [
    (dict(length=15, num_pairs=4), "length"),          # the pairs and their queries do not fit
    (dict(length=64, num_pairs=8, vocab_size=16), "num_pairs"),  # 7 keys at most
    (dict(length=64, num_pairs=4, power_a=0.0), "power_a"),
    (dict(length=64, num_pairs=0), "num_pairs"),
])
def test_impossible_sizes_are_named(kwargs, named):
    options = {"vocab_size": 64} | kwargs
    length = options.pop("length")
    with pytest.raises(ValueError, match=named):
        mqar(np.random.default_rng(0), 2, length, **options)


def test_datamodule_batches_are_the_task():
    from mamba_bio_audio.pipelines.training.synthetic_mqar import MqarDataModule

    module = MqarDataModule(seq_len=32, batch_size=4, vocab_size=32, num_pairs=3, train_items=8, eval_items=4)
    module.check(vocab_size=32)
    with pytest.raises(ValueError, match="vocab_size"):
        module.check(vocab_size=16)
    inputs, targets = next(iter(module.train_dataloader()))
    valid_inputs, _ = next(iter(module.val_dataloader()))
    assert inputs.shape == targets.shape == (4, 32)
    for row, target in zip(inputs.numpy(), targets.numpy()):
        table = dict(zip(row[:6:2].tolist(), row[1:6:2].tolist()))
        scored = np.flatnonzero(target != IGNORE_INDEX)
        assert len(scored) == 3 and all(target[t] == table[row[t]] for t in scored)
    assert not any((v == t).all() for v in valid_inputs for t in inputs)  # the splits never share a draw
