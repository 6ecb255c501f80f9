"""Lightning DataModules over prepared datasets (DNA windows, species windows, audio windows and clips).

Every module is cheap to build (nothing is read until :meth:`setup`), so configs instantiate without data.
Batches: ``(input_ids, targets)`` int64 (batch, seq_len) each for LMs (audio clips add a label), and
``(input_ids (batch, seq_len), label (batch,))`` int64 for species classification.

Training order comes from :class:`EpochSampler`, a permutation seeded by (seed, epoch): the same in every
run; it shards itself across data-parallel ranks (the trainer configs set ``use_distributed_sampler: false``).
The training loader, a :class:`ResumableLoader`, keeps its place in the checkpoint (Lightning's stateful
DataLoader protocol), so a run resumed from any step, mid-epoch included, sees the batches an uninterrupted run
would. Every loader has its own seeded generator: no loader draws from torch's global RNG. Evaluation uses
``eval_items`` evenly spaced items of each split, identical run to run.
"""
from __future__ import annotations

import signal
from pathlib import Path
from typing import Callable

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.fabric.utilities.seed import pl_worker_init_function
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
        self.start = 0  # items of this rank's share skipped by the next pass (a resumed epoch); see ResumableLoader

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
        mine = order[self.rank : len(self) * self.world_size : self.world_size]
        start, self.start = self.start, 0
        return iter(mine[start:])


class ResumableLoader(DataLoader):
    """A DataLoader over an :class:`EpochSampler` (``drop_last`` batches) that keeps its place.

    :meth:`state_dict` is ``{"epoch": int, "items": int}``: the sampler's epoch and the items of that epoch
    the training loop has taken, over all ranks (batches yielded × batch_size × world_size); Lightning's fit
    loop saves it in the checkpoint (``loops.fit_loop.state_dict.combined_loader``) and hands it back to
    :meth:`load_state_dict` when it resumes, before the first pass. That pass, if its epoch is the saved one,
    skips the items already taken; ``len`` stays the whole epoch's, as Lightning's batch counters expect.
    Batches are counted as this loader's iterator yields them: Lightning does not prefetch from a loader
    with a length, and worker processes' prefetching happens behind the iterator.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._resume: tuple[int, int] | None = None  # (epoch, items of this rank to skip)
        self._epoch, self._taken = 0, 0  # the current (or last) pass: epoch, items of this rank yielded

    def __iter__(self):
        return self._batches()

    def _batches(self):  # a generator: runs from the first next(), after Lightning's set_epoch
        sampler = self.sampler  # another sampler (Lightning's overfit_batches swaps one in) does not resume
        self._epoch, self._taken = getattr(sampler, "epoch", 0), 0
        if self._resume is not None and self._resume[0] == self._epoch and isinstance(sampler, EpochSampler):
            self._taken = sampler.start = self._resume[1]
        self._resume = None
        for batch in super().__iter__():
            self._taken += self.batch_size
            yield batch

    def state_dict(self) -> dict:
        return {"epoch": self._epoch, "items": self._taken * self._world_size}

    def load_state_dict(self, state: dict) -> None:
        epoch, items = int(state["epoch"]), int(state["items"])
        self._resume = (epoch, items // self._world_size)
        self._epoch, self._taken = self._resume

    @property
    def _world_size(self) -> int:
        return getattr(self.sampler, "world_size", 1)


def worker_init(worker_id: int) -> None:
    """DataLoader workers ignore SIGTERM, SIGINT and SIGUSR1: a signal to the whole process group (a terminal's
    Ctrl-C, SLURM) reaches them too, and a worker killed by it would fail the next batch before the main
    process stops at its step boundary and saves (callbacks/interrupt.py); the main process shuts them down.
    Then Lightning's worker seeding (``seed_everything(workers=True)``), which this replaces."""
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
        signal.signal(signum, signal.SIG_IGN)
    pl_worker_init_function(worker_id)


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
        if eval_batch_size is not None and eval_batch_size <= 0:
            raise ValueError(f"data.eval_batch_size must be > 0, or null for data.batch_size; got {eval_batch_size}")
        self.seq_len, self.batch_size = seq_len, batch_size
        self.eval_batch_size = batch_size if eval_batch_size is None else eval_batch_size
        self.eval_items, self.num_workers, self.seed = eval_items, num_workers, seed
        # epoch -> (seq_len, batch_size) of training; set by the SeqLenWarmup callback
        self.schedule: Callable[[int], tuple[int, int]] | None = None
        self.datasets: dict[str, Dataset] = {}
        self._train_seq_len: int | None = None

    def check(self, vocab_size: int | None = None, kinds: tuple[str, ...] | None = None) -> None:
        """Raise FileNotFoundError naming the command that makes the dataset when it is missing; ValueError when
        it is damaged (:class:`PreparedDataset` checks it against its manifest), not of one of ``kinds`` (what
        this module reads), or holds token ids past ``vocab_size`` (default: the net's, once a trainer with the
        model is attached, as in :meth:`setup`)."""
        if not (self.path / MANIFEST).is_file():
            raise FileNotFoundError(f"no prepared dataset at {self.path}: make it with `{self.prepare_hint}` "
                                    f"(or point data.path at one)")
        if vocab_size is None:
            net = getattr(getattr(self.trainer, "lightning_module", None), "net", None)
            vocab_size = getattr(getattr(net, "config", None), "vocab_size", None)
        PreparedDataset(self.path).check_fits(kinds, type(self).__name__, vocab_size)

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
        return ResumableLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=self.num_workers,
                               drop_last=True, generator=self._generator(), worker_init_fn=worker_init)

    def _generator(self) -> torch.Generator:
        # the loader draws its workers' base seed from this, not from torch's global RNG (which a resumed
        # run restores: see callbacks/rng_state.py)
        return torch.Generator().manual_seed(self.seed)

    def _eval_loader(self, split: str) -> DataLoader:
        return DataLoader(self.datasets[split], batch_size=self.eval_batch_size, shuffle=False,
                          num_workers=self.num_workers, generator=self._generator(), worker_init_fn=worker_init)

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

    def check(self, vocab_size: int | None = None) -> None:
        super().check(vocab_size, kinds=("dna", "species"))

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

    def check(self, vocab_size: int | None = None) -> None:
        super().check(vocab_size, kinds=("species",))
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

    def check(self, vocab_size: int | None = None) -> None:
        super().check(vocab_size, kinds=("audio",))
        audio = PreparedDataset(self.path).manifest.get("audio", {})
        mode, rate = audio.get("mode"), audio.get("rate")
        if mode != self.mode:
            raise ValueError(f"{self.path} holds {mode!r} audio, but data.mode is {self.mode!r}: point data.path at "
                             f"a {self.mode!r} dataset or set data.mode={mode}")
        if rate is not None and rate != self.sample_rate:  # WAVs written from samples play at the data's rate
            raise ValueError(f"{self.path} holds audio at {rate} Hz, but data.sample_rate is {self.sample_rate}: set "
                             f"data.sample_rate={rate} or point data.path at a dataset prepared at "
                             f"{self.sample_rate} Hz (prepare-audio --rate {self.sample_rate})")

    def make_dataset(self, split: str, seq_len: int) -> Dataset:
        from mamba_bio_audio.data_prep.datasets.audio_windows import AudioClipDataset, AudioWindowDataset

        if self.mode == "clips":
            return AudioClipDataset(self.path, split, clip_len=seq_len)
        if split == "train":
            return AudioWindowDataset(self.path, split, seq_len, self.scheme, num_windows=self.train_windows,
                                      seed=self.seed)
        return AudioWindowDataset(self.path, split, seq_len, "tiles", seed=self.seed)
