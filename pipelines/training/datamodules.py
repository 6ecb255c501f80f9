"""Lightning DataModules over prepared datasets (DNA windows, species windows, audio windows and clips).

Every module is cheap to build (nothing is read until :meth:`setup`), so configs instantiate without data.
Batches: ``(input_ids, targets)`` int64 (batch, seq_len) each for LMs (audio clips add a label), and
``(input_ids (batch, seq_len), label (batch,))`` int64 for species classification.

Training order comes from :class:`EpochSampler`, a permutation seeded by (seed, epoch): the same in every
run, so a run resumed from an end-of-epoch checkpoint sees the batches an uninterrupted run would; it shards
itself across data-parallel ranks (the trainer configs set ``use_distributed_sampler: false``). Evaluation
uses ``eval_items`` evenly spaced items of each split, identical run to run.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, Subset

from mamba_bio_audio.data_prep.datasets.prepared import MANIFEST, PreparedDataset



class EpochSampler(Sampler[int]):
    """Indices 0 .. n-1, shuffled by a generator seeded with (seed, epoch) when ``shuffle``; with
    ``world_size`` > 1, rank ``rank`` takes every ``world_size``-th of them (as many on every rank), so the
    ranks' first batches together are the single-process first batch. Lightning calls :meth:`set_epoch`
    before each epoch; it also forwards the epoch to the dataset (fresh random windows)."""

    def __init__(self, dataset: Dataset, seed: int = 0, shuffle: bool = True, rank: int = 0, world_size: int = 1):
        self.dataset, self.seed, self.shuffle, self.epoch = dataset, seed, shuffle, 0
        self.rank, self.world_size = rank, world_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.dataset) // self.world_size

    def __iter__(self):
        order = list(range(len(self.dataset)))
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(len(self.dataset), generator=generator).tolist()
        return iter(order[self.rank : len(self) * self.world_size : self.world_size])


def evenly_spaced(dataset: Dataset, n: int | None) -> Dataset:
    """At most ``n`` items spread evenly over ``dataset`` (all when ``n`` is None or larger)."""
    if n is None or n >= len(dataset):
        return dataset
    return Subset(dataset, np.linspace(0, len(dataset) - 1, n).round().astype(int).tolist())


class PreparedDataModule(pl.LightningDataModule):
    """Base: a prepared dataset folder, train / valid / test loaders.

    Args:
        path: prepared dataset folder.
        prepare_hint: the command that makes the dataset, named when it is missing.
        seq_len: tokens per training item (evaluation uses the same length).
        batch_size: items per training batch (per device).
        eval_batch_size: items per evaluation batch (default: batch_size).
        eval_items: items of each evaluation split used (None: all).
        num_workers: DataLoader worker processes.
        seed: seed of the training order and of the datasets' draws.
    """

    splits = {"fit": ("train", "valid"), "validate": ("valid",), "test": ("test",)}

    def __init__(self, path: str, prepare_hint: str, seq_len: int, batch_size: int,
                 eval_batch_size: int | None = None, eval_items: int | None = None, num_workers: int = 0,
                 seed: int = 0):
        super().__init__()
        if seq_len <= 0 or batch_size <= 0:
            raise ValueError(f"seq_len and batch_size must be > 0; got {seq_len} and {batch_size}")
        self.path, self.prepare_hint = Path(path), prepare_hint
        self.seq_len, self.batch_size = seq_len, batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.eval_items, self.num_workers, self.seed = eval_items, num_workers, seed
        # epoch -> (seq_len, batch_size) of training; set by the SeqLenWarmup callback
        self.schedule: Callable[[int], tuple[int, int]] | None = None
        self.datasets: dict[str, Dataset] = {}
        self._train_seq_len: int | None = None

    def check(self) -> None:
        """Raise FileNotFoundError naming the command that makes the dataset when it is missing."""
        if not (self.path / MANIFEST).is_file():
            raise FileNotFoundError(f"no prepared dataset at {self.path}: make it with `{self.prepare_hint}` "
                                    f"(or point data.path at one)")

    def make_dataset(self, split: str, seq_len: int) -> Dataset:
        raise NotImplementedError

    def _eval_dataset(self, split: str) -> Dataset:
        dataset = self.make_dataset(split, self.seq_len)
        if len(dataset) == 0:
            raise ValueError(f"split {split!r} of {self.path} is empty: prepare the dataset with more data "
                             f"(or other split percentages)")
        return evenly_spaced(dataset, self.eval_items)

    def setup(self, stage: str | None = None) -> None:
        self.check()
        for split in self.splits.get(stage or "fit", ("train", "valid", "test")):
            if split not in self.datasets and split != "train":
                self.datasets[split] = self._eval_dataset(split)

    def train_shape(self) -> tuple[int, int]:
        """(seq_len, batch_size) of the current training epoch."""
        if self.schedule is None or self.trainer is None:
            return self.seq_len, self.batch_size
        return self.schedule(self.trainer.current_epoch)

    def train_dataloader(self) -> DataLoader:
        seq_len, batch_size = self.train_shape()
        if self._train_seq_len != seq_len:
            self.datasets["train"] = self.make_dataset("train", seq_len)
            self._train_seq_len = seq_len
        dataset = self.datasets["train"]
        rank, world_size = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        sampler = EpochSampler(dataset, self.seed, rank=rank, world_size=world_size)
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=self.num_workers,
                          drop_last=True)

    def _eval_loader(self, split: str) -> DataLoader:
        return DataLoader(self.datasets[split], batch_size=self.eval_batch_size, shuffle=False,
                          num_workers=self.num_workers)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("valid")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")


class DnaDataModule(PreparedDataModule):
    """Causal-LM windows of a prepared ``dna`` dataset (:class:`~mamba_bio_audio.data_prep.datasets.dna_windows.DnaWindowDataset`).

    scheme: ``mamba`` | ``caduceus`` | ``uniform`` (training); evaluation tiles with ``mamba``. train_windows:
    windows per epoch for ``uniform``. rc_prob, max_n_fraction, ignore_n_targets: as the dataset."""

    def __init__(self, *args, scheme: str = "mamba", train_windows: int | None = None, rc_prob: float = 0.0,
                 max_n_fraction: float = 1.0, ignore_n_targets: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.scheme, self.train_windows = scheme, train_windows
        self.options = dict(rc_prob=rc_prob, max_n_fraction=max_n_fraction, ignore_n_targets=ignore_n_targets)

    def make_dataset(self, split: str, seq_len: int) -> Dataset:
        from mamba_bio_audio.data_prep.datasets.dna_windows import DnaWindowDataset

        if split == "train":
            return DnaWindowDataset(self.path, split, seq_len, self.scheme, num_windows=self.train_windows,
                                    seed=self.seed, **self.options)
        return DnaWindowDataset(self.path, split, seq_len, "mamba", seed=self.seed,
                                max_n_fraction=self.options["max_n_fraction"])


class SpeciesDataModule(PreparedDataModule):
    """Species-classification windows of a prepared ``species`` dataset; ``train_items`` windows per
    training epoch (the paper: 1024 steps of 64), ``eval_items`` per evaluation split; ``num_classes`` must
    match the dataset's species count (the classifier head is built from it)."""

    def __init__(self, *args, num_classes: int, train_items: int = 1024, rc_prob: float = 0.0,
                 max_n_fraction: float = 1.0, **kwargs):
        kwargs.setdefault("eval_items", 512)
        super().__init__(*args, **kwargs)
        self.num_classes, self.train_items = num_classes, train_items
        self.rc_prob, self.max_n_fraction = rc_prob, max_n_fraction

    def check(self) -> None:
        super().check()
        if len(self.class_names) != self.num_classes:
            raise ValueError(f"{self.path} has {len(self.class_names)} species ({', '.join(self.class_names)}); "
                             f"data.num_classes is {self.num_classes}")

    @property
    def class_names(self) -> list[str]:
        return list(PreparedDataset(self.path).manifest["species"])

    def make_dataset(self, split: str, seq_len: int) -> Dataset:
        from mamba_bio_audio.data_prep.datasets.species_windows import SpeciesWindowDataset

        if split == "train":
            return SpeciesWindowDataset(self.path, split, seq_len, self.train_items, seed=self.seed,
                                        rc_prob=self.rc_prob, max_n_fraction=self.max_n_fraction)
        return SpeciesWindowDataset(self.path, split, seq_len, self.eval_items, seed=self.seed + 1,
                                    max_n_fraction=self.max_n_fraction)

    def _eval_dataset(self, split: str) -> Dataset:
        return self.make_dataset(split, self.seq_len)  # eval_items windows drawn per split


class AudioDataModule(PreparedDataModule):
    """Next-sample pairs of a prepared audio dataset: ``long`` recordings cut into windows
    (``scheme`` ``uniform`` for training with ``train_windows`` per epoch, tiles for evaluation) or ``clips``
    (SC09-like, one item per clip padded to ``seq_len``). ``sample_rate`` is the data's, for the WAV files
    written from samples."""

    def __init__(self, *args, mode: str = "long", scheme: str = "uniform", train_windows: int | None = None,
                 sample_rate: int = 16000, **kwargs):
        super().__init__(*args, **kwargs)
        self.sample_rate = sample_rate
        if mode not in ("long", "clips"):
            raise ValueError(f"mode must be 'long' or 'clips'; got {mode!r}")
        self.mode, self.scheme, self.train_windows = mode, scheme, train_windows

    def make_dataset(self, split: str, seq_len: int) -> Dataset:
        from mamba_bio_audio.data_prep.datasets.audio_windows import AudioClipDataset, AudioWindowDataset

        if self.mode == "clips":
            return AudioClipDataset(self.path, split, clip_len=seq_len)
        if split == "train":
            return AudioWindowDataset(self.path, split, seq_len, self.scheme, num_windows=self.train_windows,
                                      seed=self.seed)
        return AudioWindowDataset(self.path, split, seq_len, "tiles", seed=self.seed)
