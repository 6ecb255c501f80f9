"""Normalisation policies and tokenisation of a record (data_prep/formats/audio_encode.py); the mu-law closed form and
its round-trip bound are tested with the tokenizer in tests/tokenizers/test_tokenizers.py."""
import numpy as np
import pytest

from mamba_bio_audio.data_prep.formats.audio_encode import encode_audio
from mamba_bio_audio.tokenizers import linear_encode, mu_law_encode


@pytest.mark.parametrize("quantization, fn", [("mu-law", mu_law_encode), ("linear", linear_encode)])
@pytest.mark.parametrize("normalize", ["minmax", "peak", "none"])
def test_chunked_encoding_equals_the_tokenizer_on_the_whole_record(quantization, fn, normalize):
    rng = np.random.default_rng(3)
    x = (0.4 * rng.standard_normal(100_003) + 0.05).clip(-1, 1).astype(np.float32)  # spans several chunks
    out = encode_audio(x, normalize, quantization)
    assert out.tokens.dtype == np.uint8 and out.tokens.shape == x.shape and not out.silent
    np.testing.assert_array_equal(out.tokens, fn(x, normalize=normalize))


def test_minmax_spans_the_codes_and_peak_keeps_zero():
    x = np.array([-0.25, 0.0, 0.5], np.float32)
    assert encode_audio(x, "minmax").tokens[[0, -1]].tolist() == [0, 255]
    assert encode_audio(x, "peak").tokens.tolist() == [mu_law_encode(np.array([-0.5]))[0], 128, 255]


@pytest.mark.parametrize("normalize", ["minmax", "peak"])
@pytest.mark.parametrize("value", [0.0, 0.3])
def test_constant_record_is_silence(normalize, value):
    out = encode_audio(np.full(1000, value, np.float32), normalize)
    assert out.silent and (out.tokens == 128).all()  # SaShiMi's min-max formula would give all 0


def test_none_clips_overshoot_and_counts_it():
    out = encode_audio(np.array([0.0, 1.04, -1.2, 0.5], np.float32), "none")
    assert out.clipped == 2 and out.tokens.tolist() == [128, 255, 0, mu_law_encode(np.array([0.5]))[0]]


def test_bad_arguments():
    with pytest.raises(ValueError, match="normalize"):
        encode_audio(np.zeros(3), "rms")
    with pytest.raises(ValueError, match="quantization"):
        encode_audio(np.zeros(3), "minmax", "a-law")
    with pytest.raises(ValueError, match="1-D"):
        encode_audio(np.zeros((2, 3)))
