"""Torch dataset of (input_ids, label) windows for species classification (Mamba paper §4.3.3, after HyenaDNA's
``SpeciesDataset``, without its global random state).

Item ``i``: a species drawn uniformly (among those with bases in the split), then one of its records with
probability proportional to its length, then a start uniform in ``[0, length - seq_len]``. A record shorter
than ``seq_len`` fills the window's end and [PAD] (id 4) its start, so the last position, which a
last-token classifier reads, is a base. Windows with no base other than N, or with more than
``max_n_fraction`` N, are drawn again. Draws come from a generator seeded by (seed, index) for evaluation
splits, identical run to run, and by (seed, epoch, index) for ``train`` (see :meth:`set_epoch`).
"""
from __future__ import annotations

import os

import numpy as np
import torch
from torch.utils.data import Dataset

from mamba_bio_audio.data_prep.datasets.dna_layout import load_nindex
from mamba_bio_audio.data_prep.datasets.dna_windows import PAD_ID
from mamba_bio_audio.data_prep.datasets.prepared import PreparedDataset
from mamba_bio_audio.tokenizers import NucleotideTokenizer

_MAX_DRAWS = 1000


class SpeciesWindowDataset(Dataset):
    """``(input_ids (seq_len,) int64, label () int64)`` windows of one split of a ``species`` dataset.

    Args:
        path: prepared species dataset folder.
        split: split name.
        seq_len: tokens per window.
        num_samples: items per epoch.
        seed: base seed.
        rc_prob: probability of reverse-complementing a window.
        max_n_fraction: drop windows with a larger fraction of N (all-N windows always go).
        per_epoch: draws change with :meth:`set_epoch` (default: only for ``train``).
    """

    def __init__(self, path, split: str, seq_len: int, num_samples: int, *, seed: int = 0, rc_prob: float = 0.0,
                 max_n_fraction: float = 1.0, per_epoch: bool | None = None):
        dataset = PreparedDataset(path)
        if dataset.kind != "species":
            raise ValueError(f"{path} is a {dataset.kind!r} dataset, not a species dataset")
        if seq_len <= 0 or num_samples <= 0:
            raise ValueError("seq_len and num_samples must be > 0")
        self.species = list(dataset.manifest["species"])
        self._files = {}  # species -> its source files, for error messages
        for source in dataset.manifest.get("sources", []):
            role = source.get("role", "")
            if role.startswith("genome:"):
                self._files.setdefault(role[len("genome:"):], []).append(source.get("path", "?"))
        self.split = dataset.split(split)
        self.seq_len, self.num_samples, self.seed = seq_len, num_samples, seed
        self.rc_prob, self.max_n_fraction = rc_prob, max_n_fraction
        self.per_epoch = split == "train" if per_epoch is None else per_epoch
        self.epoch = 0
        records = self.split.records
        self.offsets, self.lengths, self.labels = records[:, 0], records[:, 1], records[:, 2]
        self.by_species = []  # (label, record indices, cumulative lengths) of species with bases here
        for label in range(len(self.species)):
            idx = np.flatnonzero((self.labels == label) & (self.lengths > 0))
            if idx.size:
                self.by_species.append((label, idx, np.cumsum(self.lengths[idx])))
        if not self.by_species:
            raise ValueError(f"split {split!r} of {path} has no bases")
        self._complement = NucleotideTokenizer().complement_array(256).astype(np.uint8)
        self._nindex, self._nindex_pid = None, None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_samples

    def __getstate__(self):
        return {**self.__dict__, "_nindex": None, "_nindex_pid": None}

    def _n_ok(self, rec: int, start: int, bases: int) -> bool:
        if self._nindex is None or self._nindex_pid != os.getpid():
            self._nindex, self._nindex_pid = load_nindex(self.split), os.getpid()
        a = int(self.offsets[rec]) + start
        n = int(self._nindex.count(np.array([a]), np.array([a + bases]))[0])
        return n < bases and n <= self.max_n_fraction * bases

    def draw(self, index: int) -> tuple[int, int, int, bool]:
        """(label, record, start, reverse-complement?) of item ``index``."""
        if not 0 <= index < self.num_samples:
            raise IndexError(f"sample {index} out of range (0..{self.num_samples - 1})")
        key = [self.seed, self.epoch, index] if self.per_epoch else [self.seed, index]
        rng = np.random.default_rng(key)
        label, idx, cum = self.by_species[int(rng.integers(len(self.by_species)))]
        for _ in range(_MAX_DRAWS):
            rec = int(idx[np.searchsorted(cum, rng.integers(cum[-1]), side="right")])
            length = int(self.lengths[rec])
            start = int(rng.integers(max(length - self.seq_len, 0) + 1))
            if self._n_ok(rec, start, min(self.seq_len, length)):
                return label, rec, start, bool(self.rc_prob > 0 and rng.random() < self.rc_prob)
        files = self._files.get(self.species[label])
        raise ValueError(f"species {self.species[label]}" + (f" ({', '.join(files)})" if files else "") +
                         f": no window of {self.seq_len} bases in split {self.split.name!r} with a base other than N "
                         f"and at most {self.max_n_fraction:.0%} N in {_MAX_DRAWS} draws; its sequence there is N "
                         f"almost everywhere (raise data.max_n_fraction or hold out another region)")

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        label, rec, start, rc = self.draw(index)
        n = min(self.seq_len, int(self.lengths[rec]) - start)
        tokens = self.split.read(int(self.offsets[rec]) + start, n)
        if rc:
            tokens = self._complement.take(tokens[::-1])
        if n < self.seq_len:
            tokens = np.concatenate([np.full(self.seq_len - n, PAD_ID, np.uint8), tokens])
        return torch.from_numpy(tokens.astype(np.int64)), torch.tensor(label, dtype=torch.long)
