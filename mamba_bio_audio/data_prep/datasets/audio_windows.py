"""Torch datasets over a prepared audio dataset: next-sample prediction pairs (SaShiMi's autoregressive form).

Every item is ``x``, ``y``: int64 tensors of one length, ``y`` the tokens and ``x`` the same tokens shifted right
by one with the start token 128 in front (``x[0] = 128, x[t] = y[t-1]``). Positions past the end of a record are
padding: ``x`` holds 128 there and ``y`` holds the ignore index -100, so the loss skips them.

:class:`AudioWindowDataset` (``long`` datasets): windows of ``seq_len`` tokens. ``scheme="tiles"`` (default)
tiles every record with non-overlapping windows, the last one padded, so each token is scored exactly once and
validation / test are identical from run to run. ``scheme="uniform"`` draws ``num_windows`` windows per epoch,
records in proportion to their length, start uniform, each from a generator seeded by (seed, epoch, index): the
same in every worker and every run; :meth:`AudioWindowDataset.set_epoch` gives fresh windows each epoch.

:class:`AudioClipDataset` (``clips`` datasets): one item per clip, padded to the dataset's clip length, with its
label.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from mamba_bio_audio.data_prep.datasets.prepared import PreparedDataset, PreparedSplit
from mamba_bio_audio.tokenizers import MU_LAW_START_TOKEN
from mamba_bio_audio.targets import IGNORE_INDEX

SCHEMES = ("tiles", "uniform")


def autoregressive_pair(tokens: np.ndarray, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """tokens uint8 (n,), n <= length -> x, y int64 (length,) as described in the module docstring."""
    n = tokens.shape[0]
    y = torch.full((length,), IGNORE_INDEX, dtype=torch.long)
    x = torch.full((length,), MU_LAW_START_TOKEN, dtype=torch.long)
    values = torch.from_numpy(np.asarray(tokens, dtype=np.int64))
    y[:n] = values
    x[1 : n + 1] = values[: length - 1]
    return x, y


def _open_split(dataset: str | Path | PreparedDataset, split: str, mode: str) -> tuple[PreparedDataset, PreparedSplit]:
    ds = dataset if isinstance(dataset, PreparedDataset) else PreparedDataset(dataset)
    if ds.kind != "audio" or ds.manifest.get("audio", {}).get("mode") != mode:
        raise ValueError(f"{ds.path} is not a prepared audio dataset in {mode!r} mode")
    return ds, ds.split(split)


class AudioWindowDataset(Dataset):
    """Windows of ``seq_len`` tokens over the records of a ``long`` audio dataset split.

    Items: ``(x, y)`` int64 (seq_len,) each. ``num_windows`` (``uniform`` scheme) defaults to the split's
    tokens // seq_len (at least 1).
    """

    def __init__(self, dataset: str | Path | PreparedDataset, split: str, seq_len: int, scheme: str = "tiles", *,
                 num_windows: int | None = None, seed: int = 0):
        if seq_len < 1:
            raise ValueError(f"seq_len must be positive; got {seq_len}")
        if scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {SCHEMES}; got {scheme!r}")
        _, self.split = _open_split(dataset, split, "long")
        self.seq_len = int(seq_len)
        self.scheme = scheme
        self.seed = int(seed)
        self.epoch = 0
        lengths = self.split.records[:, 1]
        if scheme == "uniform":
            total = int(lengths.sum())
            if total == 0:
                raise ValueError(f"split {split!r} holds no tokens to draw windows from")
            self.num_windows = int(num_windows or max(1, total // self.seq_len))
            self._weights = lengths / total
        else:
            counts = -(-lengths // self.seq_len)  # ceil: the last partial window is kept, padded
            record = np.repeat(np.arange(len(lengths)), counts)
            first = np.repeat(np.cumsum(counts) - counts, counts)
            self._tiles = np.stack([record, (np.arange(record.size) - first) * self.seq_len], axis=1)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_windows if self.scheme == "uniform" else int(self._tiles.shape[0])

    def window(self, index: int) -> tuple[int, int]:
        """(record, start) of item ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(f"window {index} out of range 0..{len(self) - 1}")
        if self.scheme == "tiles":
            return int(self._tiles[index, 0]), int(self._tiles[index, 1])
        rng = np.random.default_rng([self.seed, self.epoch, index])
        record = int(rng.choice(len(self._weights), p=self._weights))
        length = int(self.split.records[record, 1])
        return record, int(rng.integers(0, max(length - self.seq_len, 0) + 1))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        record, start = self.window(index)
        tokens = self.split.record(record)[start : start + self.seq_len]
        return autoregressive_pair(tokens, self.seq_len)


class AudioClipDataset(Dataset):
    """Clips of a ``clips`` audio dataset split. Items: ``(x, y, label)``: x, y int64 (clip_len,), label an
    int64 scalar; ``clip_len`` defaults to the dataset's clip length. ``labels`` names the classes."""

    def __init__(self, dataset: str | Path | PreparedDataset, split: str, clip_len: int | None = None):
        ds, self.split = _open_split(dataset, split, "clips")
        self.labels: list[str] = ds.manifest["audio"]["labels"]
        self.clip_len = int(clip_len or ds.manifest["audio"]["clip_samples"])
        longest = int(self.split.records[:, 1].max()) if len(self.split) else 0
        if longest > self.clip_len:
            raise ValueError(f"clip_len {self.clip_len} is shorter than the longest clip ({longest} samples)")

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, y = autoregressive_pair(self.split.record(index), self.clip_len)
        return x, y, torch.tensor(self.split.label(index), dtype=torch.long)
