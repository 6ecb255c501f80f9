"""Torch datasets of (input_ids, targets) windows over a prepared DNA dataset, for causal LM training.

Item ``i`` is a window of ``seq_len`` positions at (record, start) (see :mod:`.windows`): ``input_ids`` are the
tokens at ``start .. start + seq_len - 1``, ``targets`` the tokens one position later, both int64 (seq_len,).
Positions past the record's end are [PAD] (id 4) in both; the LM loss ignores PAD targets, so a short record or
the last tile of a record costs nothing. With ``ignore_n_targets`` N targets become PAD too (Caduceus).

Windows with no base other than N, or with more than ``max_n_fraction`` N among their bases, are never
returned: fixed schemes drop them when the dataset is built, ``uniform`` draws again. Reverse-complement
augmentation flips a window with probability ``rc_prob`` (before padding, so padding stays at the end).
Every random choice comes from a generator seeded by (seed, index), plus the epoch for ``train``: evaluation
windows are identical run to run, and :meth:`set_epoch` gives training fresh draws each epoch.
"""
from __future__ import annotations

import os

import numpy as np
import torch
from torch.utils.data import Dataset

from mamba_bio_audio.data_prep.datasets.dna_layout import load_intervals, load_nindex
from mamba_bio_audio.data_prep.datasets.prepared import PreparedDataset
from mamba_bio_audio.data_prep.datasets.windows import (
    CADUCEUS_SPAN, PAPER_TILE_MAX, SCHEMES, caduceus_windows, mamba_windows, uniform_window,
)
from mamba_bio_audio.tokenizers import NucleotideTokenizer

PAD_ID = NucleotideTokenizer.pad_token_id
N_ID = NucleotideTokenizer.n_token_id
_MAX_DRAWS = 1000


class DnaWindowDataset(Dataset):
    """``(input_ids, targets)`` windows of one split; see the module docstring.

    Args:
        path: prepared dataset folder (kind ``dna``; a ``species`` dataset works too, labels unused).
        split: split name, e.g. ``"train"``.
        seq_len: positions per window.
        scheme: ``"mamba"`` (default), ``"caduceus"`` or ``"uniform"``.
        num_windows: windows per epoch for ``uniform`` (default: split tokens // seq_len).
        tile_max, span: the ``mamba`` and ``caduceus`` scheme constants (2^17, 2^20).
        seed: base seed of every draw.
        rc_prob: probability of reverse-complementing a window.
        max_n_fraction: drop windows with a larger fraction of N among their bases (all-N windows always go).
        ignore_n_targets: make N targets PAD (ignored by the loss).
        per_epoch: draws change with :meth:`set_epoch` (default: only for ``train``).
    """

    def __init__(self, path, split: str, seq_len: int, scheme: str = "mamba", *, num_windows: int | None = None,
                 tile_max: int = PAPER_TILE_MAX, span: int = CADUCEUS_SPAN, seed: int = 0, rc_prob: float = 0.0,
                 max_n_fraction: float = 1.0, ignore_n_targets: bool = False, per_epoch: bool | None = None):
        if scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {SCHEMES}; got {scheme!r}")
        if seq_len <= 0:
            raise ValueError(f"seq_len must be > 0; got {seq_len}")
        if not 0.0 <= rc_prob <= 1.0 or not 0.0 <= max_n_fraction <= 1.0:
            raise ValueError("rc_prob and max_n_fraction must lie in [0, 1]")
        self.split = PreparedDataset(path).split(split)
        self.seq_len, self.scheme, self.seed = seq_len, scheme, seed
        self.rc_prob, self.max_n_fraction, self.ignore_n_targets = rc_prob, max_n_fraction, ignore_n_targets
        self.per_epoch = split == "train" if per_epoch is None else per_epoch
        self.epoch = 0
        self.offsets = self.split.records[:, 0].copy()
        self.lengths = self.split.records[:, 1].copy()
        self.intervals = load_intervals(self.split)
        self._nindex, self._nindex_pid = None, None
        self._complement = NucleotideTokenizer().complement_array(256).astype(np.uint8)
        if scheme == "uniform":
            self.cum = np.cumsum(self.intervals[:, 2] - self.intervals[:, 1])
            if not self.cum.size or self.cum[-1] == 0:
                raise ValueError(f"split {split!r} of {path} has no bases to draw windows from")
            self.num_windows = int(num_windows if num_windows is not None else max(1, self.cum[-1] // seq_len))
        else:
            make = mamba_windows if scheme == "mamba" else caduceus_windows
            windows = make(self.intervals, self.lengths, seq_len, tile_max if scheme == "mamba" else span)
            self.windows = windows[self._acceptable(windows)]
            self.num_windows = len(self.windows)
            self._nindex = None  # not needed again: keep the pickled dataset small

    @property
    def nindex(self):
        if self._nindex is None or self._nindex_pid != os.getpid():
            self._nindex, self._nindex_pid = load_nindex(self.split), os.getpid()
        return self._nindex

    def __getstate__(self):
        return {**self.__dict__, "_nindex": None, "_nindex_pid": None}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_windows

    def _acceptable(self, windows: np.ndarray) -> np.ndarray:
        """Boolean mask of windows (m, 2) that hold a base other than N and at most ``max_n_fraction`` N."""
        rec, start = windows[:, 0], windows[:, 1]
        bases = np.minimum(self.seq_len, self.lengths[rec] - start)
        a = self.offsets[rec] + start
        n = self.nindex.count(a, a + bases)
        return (n < bases) & (n <= self.max_n_fraction * bases)

    def window(self, index: int) -> tuple[int, int, np.random.Generator]:
        """(record, start, generator for the rest of the item's random choices) of item ``index``."""
        if not 0 <= index < self.num_windows:
            raise IndexError(f"window {index} out of range (0..{self.num_windows - 1})")
        rng = np.random.default_rng([self.seed, self.epoch, index] if self.per_epoch else [self.seed, index])
        if self.scheme != "uniform":
            rec, start = self.windows[index]
            return int(rec), int(start), rng
        for _ in range(_MAX_DRAWS):
            rec, start = uniform_window(rng, self.intervals, self.cum, self.lengths, self.seq_len)
            if self._acceptable(np.array([[rec, start]]))[0]:
                return rec, start, rng
        raise ValueError(f"no acceptable window in {_MAX_DRAWS} draws: the split is (almost) all N for "
                         f"max_n_fraction={self.max_n_fraction}")

    def window_tokens(self, rec: int, start: int, rc: bool = False) -> np.ndarray:
        """uint8 tokens ``record[start : start + seq_len + 1]`` as far as the record goes, reverse-complemented
        when ``rc``."""
        stop = min(start + self.seq_len + 1, int(self.lengths[rec]))
        tokens = self.split.read(int(self.offsets[rec]) + start, stop - start)
        return self._complement.take(tokens[::-1]) if rc else tokens

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rec, start, rng = self.window(index)
        rc = self.rc_prob > 0 and rng.random() < self.rc_prob
        tokens = self.window_tokens(rec, start, rc)
        if tokens.size < self.seq_len + 1:
            tokens = np.concatenate([tokens, np.full(self.seq_len + 1 - tokens.size, PAD_ID, np.uint8)])
        targets = tokens[1:].astype(np.int64)  # widening from uint8 is the fastest way to int64 tensors
        if self.ignore_n_targets:
            targets[targets == N_ID] = PAD_ID
        return torch.from_numpy(tokens[:-1].astype(np.int64)), torch.from_numpy(targets)
