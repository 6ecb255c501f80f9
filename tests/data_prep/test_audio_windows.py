"""Readers: windows (x shifted right with start token 128, y) and padded clips (data_prep/datasets/audio_windows.py)."""
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from mamba_bio_audio.data_prep.datasets.audio_windows import AudioClipDataset, AudioWindowDataset, autoregressive_pair
from mamba_bio_audio.data_prep.datasets.prepared import PreparedDataset, PreparedDatasetWriter


def _long_dataset(path, lengths, mode="long"):
    rng = np.random.default_rng(0)
    records = [rng.integers(0, 256, n).astype(np.uint8) for n in lengths]
    audio = {"rate": 16000, "mode": mode, "clip_samples": 16 if mode == "clips" else None,
             "labels": ["a", "b"] if mode == "clips" else None}
    with PreparedDatasetWriter(path, "audio", tokenizer={"type": "mu-law"}, sources=[], parameters={},
                               labelled=mode == "clips", extra={"audio": audio}) as w:
        for i, r in enumerate(records):
            w.split("train").add(r, i % 2 if mode == "clips" else None)
    return records


def test_autoregressive_pair():
    x, y = autoregressive_pair(np.array([5, 6, 7], np.uint8), 5)
    assert x.tolist() == [128, 5, 6, 7, 128] and y.tolist() == [5, 6, 7, -100, -100]
    x, y = autoregressive_pair(np.array([5, 6, 7], np.uint8), 3)
    assert x.tolist() == [128, 5, 6] and y.tolist() == [5, 6, 7] and x.dtype == y.dtype == torch.long


def test_tiles_score_every_token_once(tmp_path):
    records = _long_dataset(tmp_path / "ds", [10, 0, 25, 3])
    windows = AudioWindowDataset(tmp_path / "ds", "train", seq_len=8)
    assert len(windows) == 2 + 0 + 4 + 1
    scored = []
    for i in range(len(windows)):
        x, y = windows[i]
        assert x.shape == y.shape == (8,) and x[0] == 128
        real = y != -100
        assert torch.equal(x[1:][real[1:]], y[:-1][real[1:]])  # x is y shifted right
        scored.append(y[real].numpy())
    np.testing.assert_array_equal(np.concatenate(scored), np.concatenate(records))
    with pytest.raises(IndexError):
        windows[len(windows)]


def test_random_windows_are_seeded(tmp_path):
    records = _long_dataset(tmp_path / "ds", [100, 5, 300])
    a = AudioWindowDataset(tmp_path / "ds", "train", 32, "uniform", num_windows=50, seed=1)
    b = AudioWindowDataset(PreparedDataset(tmp_path / "ds"), "train", 32, "uniform", num_windows=50, seed=1)
    assert len(a) == 50 and [a.window(i) for i in range(50)] == [b.window(i) for i in range(50)]
    batches = [torch.cat([x for x, _ in DataLoader(ds, batch_size=10)]) for ds in (a, b)]
    assert torch.equal(*batches)
    first = [a.window(i) for i in range(50)]
    a.set_epoch(1)
    assert [a.window(i) for i in range(50)] != first
    for i in range(50):
        record, start = a.window(i)
        x, y = a[i]
        n = min(32, len(records[record]) - start)
        assert 0 <= start <= max(len(records[record]) - 32, 0)
        np.testing.assert_array_equal(y[:n].numpy(), records[record][start : start + n])
    assert {a.window(i)[0] for i in range(50)} >= {0, 2}
    assert len(AudioWindowDataset(tmp_path / "ds", "train", seq_len=32, scheme="uniform")) == 405 // 32


def test_clips_padded_with_ignore_index(tmp_path):
    records = _long_dataset(tmp_path / "ds", [16, 9, 1], mode="clips")
    clips = AudioClipDataset(tmp_path / "ds", "train")
    assert len(clips) == 3 and clips.labels == ["a", "b"] and clips.clip_len == 16
    x, y, label = clips[1]
    assert label.item() == 1 and x.shape == y.shape == (16,)
    assert y[:9].tolist() == records[1].tolist() and (y[9:] == -100).all()
    assert x[0] == 128 and x[1:10].tolist() == records[1].tolist() and (x[10:] == 128).all()
    xb, yb, lb = next(iter(DataLoader(clips, batch_size=3)))
    assert xb.shape == (3, 16) and lb.tolist() == [0, 1, 0]
    with pytest.raises(ValueError, match="shorter than the longest clip"):
        AudioClipDataset(tmp_path / "ds", "train", clip_len=8)
    with pytest.raises(ValueError, match="scheme must be one of"):
        AudioWindowDataset(tmp_path / "ds", "train", seq_len=4, scheme="random")
    with pytest.raises(ValueError, match="not a prepared audio dataset in 'long' mode"):
        AudioWindowDataset(tmp_path / "ds", "train", seq_len=4)
