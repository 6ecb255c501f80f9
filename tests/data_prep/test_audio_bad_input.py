"""Bad input: a clear error naming the file and no dataset (nor a damaged old one), or a documented handling."""
import re

import numpy as np
import pytest

from mamba_bio_audio.data_prep.datasets.prepare_audio import prepare_audio
from mamba_bio_audio.data_prep.datasets.prepared import PreparedDataset


def _bad_files(tmp_path, audio):
    """name -> (path, expected message)."""
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "empty.wav").write_bytes(b"")
    (folder / "text.wav").write_text("hello, I am a text file\n" * 10)
    good = audio.write(folder / "good.wav", audio.sine(1.0, 16000), 16000)
    (folder / "truncated.wav").write_bytes(good.read_bytes()[:20000])
    noise = (0.3 * np.random.default_rng(0).standard_normal(48000)).astype(np.float32)
    flac = audio.write(tmp_path / "whole.flac", noise, 16000)
    (folder / "truncated.flac").write_bytes(flac.read_bytes()[: flac.stat().st_size // 2])
    nan = np.zeros(8000, np.float32)
    nan[4000] = np.nan
    audio.write(folder / "nan.wav", nan, 16000, "FLOAT")
    good.unlink()
    return {
        "empty.wav": r"empty\.wav: empty file \(0 bytes\)",
        "text.wav": r"text\.wav: not an audio file libsndfile can read",
        "truncated.wav": r"truncated\.wav: truncated: the header declares 32000 data bytes",
        "truncated.flac": r"truncated\.flac: decoding failed .*truncated or corrupt",
        "nan.wav": r"nan\.wav: NaN or inf sample at frame 4000",
    }


@pytest.mark.parametrize("name", ["empty.wav", "text.wav", "truncated.wav", "truncated.flac", "nan.wav"])
def test_each_bad_file_stops_the_run_and_leaves_the_old_dataset(tmp_path, audio, name):
    messages = _bad_files(tmp_path, audio)
    good = audio.noise_files(tmp_path / "good", 3)
    prepare_audio([tmp_path / "good"], tmp_path / "ds", workers=1)
    before = {p.name: p.read_bytes() for p in (tmp_path / "ds").iterdir()}
    with pytest.raises(ValueError, match=messages[name]):
        prepare_audio(good + [tmp_path / "bad" / name], tmp_path / "ds", workers=2)
    assert {p.name: p.read_bytes() for p in (tmp_path / "ds").iterdir()} == before
    with pytest.raises(ValueError, match=messages[name]):
        prepare_audio([tmp_path / "bad" / name], tmp_path / "new", workers=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad", "ds", "good", "whole.flac"]  # no temporary folder


def test_skip_bad_records_the_reasons(tmp_path, audio):
    messages = _bad_files(tmp_path, audio)
    audio.noise_files(tmp_path / "bad", 2, name="ok{i}")
    result = prepare_audio([tmp_path / "bad"], tmp_path / "ds", skip_bad=True, workers=1)
    assert len(result.skipped) == 5
    manifest = PreparedDataset(tmp_path / "ds").manifest
    skipped = {f["key"]: f["skipped"] for f in manifest["files"] if "skipped" in f}
    assert set(skipped) == set(messages)
    for name, message in messages.items():
        assert re.search(message, skipped[name])
    assert manifest["audio"]["stats"]["skipped"] == 5
    assert sum(counts["records"] for counts in result.splits.values()) == 2
    with pytest.raises(ValueError, match="every input file was bad"):
        prepare_audio([tmp_path / "bad" / "nan.wav"], tmp_path / "none", skip_bad=True, workers=1)
    assert not (tmp_path / "none").exists()


def test_float_and_24_bit_wavs(tmp_path, audio):
    rng = np.random.default_rng(2)
    loud = (1.5 * rng.standard_normal(8000)).astype(np.float32)
    audio.write(tmp_path / "in" / "loud.wav", loud, 16000, "FLOAT")
    audio.write(tmp_path / "in" / "deep.wav", (0.5 * rng.standard_normal(8000)).astype(np.float32), 16000, "PCM_24")
    result = prepare_audio([tmp_path / "in"], tmp_path / "ds", split="100,0,0", workers=1)
    assert result.splits["train"]["records"] == 2
    peak = f"{np.abs(loud).max():.4g}"
    with pytest.raises(ValueError, match=rf"loud\.wav: samples reach {peak}, beyond full scale.*--normalize peak"):
        prepare_audio([tmp_path / "in"], tmp_path / "ds2", normalize="none", workers=1)
    files = PreparedDataset(tmp_path / "ds").manifest["files"]
    assert [f["subtype"] for f in files] == ["PCM_24", "FLOAT"]


def test_multichannel_and_silent_clip_under_minmax(tmp_path, audio):
    s = audio.sine(0.5, 16000)[:, 0]
    audio.write(tmp_path / "in" / "quad.wav", np.stack([s, s, s, s], axis=1), 16000)
    audio.write(tmp_path / "in" / "silent.wav", np.zeros((8000, 2), np.float32), 16000)
    prepare_audio([tmp_path / "in"], tmp_path / "ds", split="100,0,0", workers=1)
    ds = PreparedDataset(tmp_path / "ds")
    files = {f["key"]: f for f in ds.manifest["files"]}
    train = ds.split("train")
    assert files["quad.wav"]["channels"] == 4 and not files["quad.wav"]["silent"]
    assert train.record(files["quad.wav"]["record"]).max() == 255
    assert files["silent.wav"]["silent"] and (train.record(files["silent.wav"]["record"]) == 128).all()
    assert ds.manifest["audio"]["stats"]["silent_records"] == 1


def test_unsupported_rate_request_writes_nothing(tmp_path, audio):
    audio.noise_files(tmp_path / "in", 2)
    for rate in (0, 500, 1_000_000, 22050.5):
        with pytest.raises(ValueError, match="unsupported target sample rate"):
            prepare_audio([tmp_path / "in"], tmp_path / "ds", rate=rate, workers=1)
    assert not (tmp_path / "ds").exists()
