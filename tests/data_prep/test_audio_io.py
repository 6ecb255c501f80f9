"""Decoding, down-mix and resampling (data_prep/formats/audio_io.py)."""
import numpy as np
import pytest
import soundfile as sf

from mamba_bio_audio.data_prep.formats.audio_io import check_rate, load_mono, probe


@pytest.mark.parametrize("rate_in, freq, subtype", [(44100, 997.0, "PCM_16"), (48000, 3001.0, "PCM_24"),
                                                    (8000, 440.0, "FLOAT")])
def test_resampled_sine_keeps_frequency_and_level(tmp_path, audio, rate_in, freq, subtype):
    path = audio.write(tmp_path / "sine.wav", audio.sine(2.0, rate_in, freq, amp=0.5, channels=2), rate_in, subtype)
    out = load_mono(path, 16000).samples
    assert out.dtype == np.float32 and abs(out.size - 32000) <= 1
    body = out[1600:-1600]  # away from the filter's edge transients
    spectrum = np.abs(np.fft.rfft(body * np.hanning(body.size)))
    bin_hz = 16000 / body.size
    assert abs(np.argmax(spectrum) * bin_hz - freq) <= bin_hz
    assert np.sqrt(np.mean(body.astype(np.float64) ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.01)


def test_same_rate_is_not_resampled(tmp_path, audio):
    data = audio.sine(0.5, 16000, channels=1)
    path = audio.write(tmp_path / "a.flac", data, 16000)
    np.testing.assert_allclose(load_mono(path, 16000).samples, data[:, 0], atol=1 / 32768)


def test_24_bit_and_float_wav_decode_in_full(tmp_path, audio):
    rng = np.random.default_rng(0)
    ints = rng.integers(-(2**23), 2**23, 4000)
    path = audio.write(tmp_path / "pcm24.wav", (ints << 8).astype(np.int32), 16000, "PCM_24")
    assert probe(path).subtype == "PCM_24"
    np.testing.assert_array_equal(load_mono(path, 16000).samples, (ints / 2**23).astype(np.float32))
    loud = (1.7 * rng.standard_normal(4000)).astype(np.float32)  # float files may exceed full scale
    path = audio.write(tmp_path / "float.wav", loud, 16000, "FLOAT")
    decoded = load_mono(path, 16000)
    np.testing.assert_array_equal(decoded.samples, loud)
    assert decoded.input_peak == pytest.approx(np.abs(loud).max())


def test_multichannel_is_averaged(tmp_path, audio):
    s = audio.sine(0.25, 16000)[:, 0]
    same = audio.write(tmp_path / "six.wav", np.stack([s] * 6, axis=1), 16000, "FLOAT")
    np.testing.assert_allclose(load_mono(same, 16000).samples, s, atol=1e-6)
    opposite = audio.write(tmp_path / "opposite.wav", np.stack([s, -s], axis=1), 16000, "FLOAT")
    assert np.abs(load_mono(opposite, 16000).samples).max() == 0.0
    assert probe(same).channels == 6


@pytest.mark.parametrize("rate", [0, -16000, 999, 400000, 16000.5, float("nan"), True, "fast", None])
def test_unsupported_rate(rate):
    with pytest.raises(ValueError, match="unsupported target sample rate"):
        check_rate(rate)
    assert check_rate(16000.0) == 16000


def test_bad_files_name_the_file(tmp_path, audio):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio\n" * 20)
    full = audio.write(tmp_path / "full.wav", audio.sine(1.0, 16000), 16000)
    cut = tmp_path / "cut.wav"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    noise = (0.3 * np.random.default_rng(1).standard_normal(48000)).astype(np.float32)
    flac = audio.write(tmp_path / "full.flac", noise, 16000)
    cut_flac = tmp_path / "cut.flac"
    cut_flac.write_bytes(flac.read_bytes()[: flac.stat().st_size // 2])
    nothing = audio.write(tmp_path / "nothing.wav", np.zeros((0, 1), np.float32), 16000)
    with pytest.raises(ValueError, match=r"empty\.wav: empty file \(0 bytes\)"):
        probe(empty)
    with pytest.raises(ValueError, match=r"notes\.wav: not an audio file libsndfile can read \(Format not recognised"):
        probe(text)
    with pytest.raises(ValueError, match=r"cut\.wav: truncated: the header declares 32000 data bytes"):
        probe(cut)
    with pytest.raises(ValueError, match=r"cut\.flac: decoding failed .* truncated or corrupt"):
        load_mono(cut_flac, 16000)
    with pytest.raises(ValueError, match=r"nothing\.wav: no audio frames"):
        probe(nothing)
    with pytest.raises(FileNotFoundError, match="missing.wav"):
        probe(tmp_path / "missing.wav")


def test_nan_in_float_wav(tmp_path, audio):
    data = np.zeros((20000, 2), np.float32)
    data[12345, 1] = np.nan
    path = audio.write(tmp_path / "nan.wav", data, 16000, "FLOAT")
    with pytest.raises(ValueError, match=r"nan\.wav: NaN or inf sample at frame 12345 \(0\.772 s\)"):
        load_mono(path, 16000)
    data[12345, 1] = np.inf
    path = audio.write(tmp_path / "inf.wav", data, 16000, "DOUBLE")
    with pytest.raises(ValueError, match=r"inf\.wav: NaN or inf sample at frame 12345"):
        load_mono(path, 16000)


def test_mp3_round_trip(tmp_path, audio):
    path = audio.write(tmp_path / "a.mp3", audio.sine(1.0, 44100, 440.0, 0.4), 44100, "MPEG_LAYER_III", "MP3")
    out = load_mono(path, 16000).samples
    assert abs(out.size - 16000) < 1200 and 0.3 < np.abs(out).max() < 0.5
    assert sf.info(str(path)).format == "MP3"
