"""The synthetic tasks' generators against what each sequence must hold: the copied tokens are the data tokens
of the noise region in order; the induction answer is the token after the first trigger; only answers count."""
import numpy as np
import pytest

from mamba_bio_audio.data_prep.synthetic.induction_heads import TRIGGER, induction_heads
from mamba_bio_audio.data_prep.synthetic.selective_copying import MARKER, NOISE, selective_copying
from mamba_bio_audio.targets import IGNORE_INDEX


def test_selective_copying_answers_are_the_scattered_tokens_in_order():
    inputs, targets = selective_copying(np.random.default_rng(0), batch=64, length=96, n_tokens=16)
    assert inputs.shape == targets.shape == (64, 96) and inputs.dtype == targets.dtype == np.int64
    for row, target in zip(inputs, targets):
        region = row[:80]
        data = region[region != NOISE]
        assert len(data) == 16 and set(data) <= set(range(1, MARKER))
        assert (row[80:] == MARKER).all()
        np.testing.assert_array_equal(target[80:], data)
        assert (target[:80] == IGNORE_INDEX).all()
    # the places spread over the whole region, not a fixed pattern
    assert len({tuple(np.flatnonzero(row[:80])) for row in inputs}) == 64


def test_induction_answer_follows_the_first_trigger():
    inputs, targets = induction_heads(np.random.default_rng(1), batch=256, length=64)
    for row, target in zip(inputs, targets):
        triggers = np.flatnonzero(row == TRIGGER)
        assert len(triggers) == 2 and triggers[1] == 63 and triggers[0] <= 61
        assert target[-1] == row[triggers[0] + 1] != TRIGGER
        assert (target[:-1] == IGNORE_INDEX).all()
    first = [np.flatnonzero(row == TRIGGER)[0] for row in inputs]
    assert min(first) < 8 and max(first) > 54  # anywhere in the sequence
    long_inputs, _ = induction_heads(np.random.default_rng(2), batch=1, length=2**20)
    assert (long_inputs == TRIGGER).sum() == 2


def test_same_seed_same_sequences():
    for draw in (lambda rng: selective_copying(rng, 4, 64, 8), lambda rng: induction_heads(rng, 4, 64)):
        a, b, c = draw(np.random.default_rng(5)), draw(np.random.default_rng(5)), draw(np.random.default_rng(6))
        np.testing.assert_array_equal(a[0], b[0])
        assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("call, message", [
    (lambda: selective_copying(np.random.default_rng(0), 2, 20, 16), "length >= 2 \\* n_tokens"),
    (lambda: selective_copying(np.random.default_rng(0), 0, 64, 4), "batch must be >= 1"),
    (lambda: induction_heads(np.random.default_rng(0), 2, 2), "length >= 3"),
])
def test_bad_sizes_are_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()
