"""Lightning DataModules of the synthetic tasks (:mod:`mamba_bio_audio.data_prep.synthetic`): no files, every
item drawn by a generator seeded with (seed, split, index), so the data is the same in every run, a resumed
run sees the batches an uninterrupted one would (:class:`~.datamodules.ResumableLoader`), and the three splits
never share a draw.

Batches: ``(input_ids, targets)`` int64 (batch, seq_len) each, ``targets`` aligned to the positions and -100
except at the answers, which the causal-LM task (``targets=``) and its loss alone count.
"""
from __future__ import annotations

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from mamba_bio_audio.data_prep.synthetic import induction_heads, selective_copying
from mamba_bio_audio.pipelines.training.datamodules import EpochSampler, ResumableLoader, worker_init

__all__ = ["InductionHeadsDataModule", "SelectiveCopyingDataModule", "SyntheticDataset"]

SPLITS = {"train": 0, "valid": 1, "test": 2}


class SyntheticDataset(Dataset):
    """``items`` sequences of ``seq_len`` tokens; item i is ``draw(np.random.default_rng((seed, split, i)), 1,
    seq_len)`` as two int64 tensors (seq_len,)."""

    def __init__(self, draw, split: str, items: int, seq_len: int, seed: int, **options):
        self.draw, self.split, self.items, self.seq_len, self.seed = draw, SPLITS[split], items, seq_len, seed
        self.options = options

    def __len__(self) -> int:
        return self.items

    def __getitem__(self, index: int):
        if not 0 <= index < self.items:
            raise IndexError(index)
        rng = np.random.default_rng((self.seed, self.split, index))
        inputs, targets = self.draw(rng, 1, self.seq_len, **self.options)
        return torch.from_numpy(inputs[0]), torch.from_numpy(targets[0])


class SyntheticDataModule(pl.LightningDataModule):
    """Base of the synthetic tasks' DataModules.

    Args:
        seq_len: tokens per sequence (training and evaluation).
        batch_size: sequences per training batch (per device); eval_batch_size: per evaluation batch (default
            batch_size).
        train_items: sequences per training epoch (fresh ones every epoch: the epoch enters the seed).
        eval_items: sequences of the validation and of the test split.
        num_workers: DataLoader worker processes.
        seed: seed of every draw and of the training order.
    """

    vocab_size = 16
    draw = None  # set by subclasses: a generator of mamba_bio_audio.data_prep.synthetic

    def __init__(self, seq_len: int, batch_size: int, eval_batch_size: int | None = None, train_items: int = 8192,
                 eval_items: int = 256, num_workers: int = 0, seed: int = 0):
        super().__init__()
        for name, value in (("seq_len", seq_len), ("batch_size", batch_size), ("train_items", train_items),
                            ("eval_items", eval_items)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"data.{name} must be a positive integer; got {value!r}")
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"data.seed must be an integer >= 0 (it seeds numpy's generators); got {seed!r}")
        if eval_batch_size is not None and eval_batch_size <= 0:
            raise ValueError(f"data.eval_batch_size must be > 0, or null for data.batch_size; got {eval_batch_size}")
        self.seq_len, self.batch_size = seq_len, batch_size
        self.eval_batch_size = batch_size if eval_batch_size is None else eval_batch_size
        self.train_items, self.eval_items, self.num_workers, self.seed = train_items, eval_items, num_workers, seed

    def options(self) -> dict:
        """Keyword arguments of ``draw`` beyond (rng, batch, length)."""
        return {}

    def check(self, vocab_size: int | None = None) -> None:
        """ValueError when the net's vocabulary (``vocab_size``) cannot hold the task's tokens."""
        if vocab_size is not None and vocab_size < self.vocab_size:
            raise ValueError(f"{type(self).__name__} needs net.config.vocab_size >= {self.vocab_size} (the task's "
                             f"tokens); got {vocab_size}")
        type(self).draw(np.random.default_rng(0), 1, self.seq_len, **self.options())  # its own length checks

    def dataset(self, split: str, items: int, seed: int) -> SyntheticDataset:
        return SyntheticDataset(type(self).draw, split, items, self.seq_len, seed, **self.options())

    def train_dataloader(self) -> DataLoader:
        dataset = _EpochDraws(self)
        rank, world_size = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        sampler = EpochSampler(dataset, self.seed, rank=rank, world_size=world_size)
        return ResumableLoader(dataset, batch_size=self.batch_size, sampler=sampler, num_workers=self.num_workers,
                               drop_last=True, generator=torch.Generator().manual_seed(self.seed),
                               worker_init_fn=worker_init)

    def _eval_loader(self, split: str) -> DataLoader:
        return DataLoader(self.dataset(split, self.eval_items, self.seed), batch_size=self.eval_batch_size,
                          shuffle=False, num_workers=self.num_workers, worker_init_fn=worker_init)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("valid")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")


class _EpochDraws(Dataset):
    """The training split: ``train_items`` fresh sequences per epoch (the sampler forwards the epoch)."""

    def __init__(self, module: SyntheticDataModule):
        self.module, self.epoch = module, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.module.train_items

    def __getitem__(self, index: int):
        seed = self.module.seed * 1_000_003 + self.epoch
        return self.module.dataset("train", self.module.train_items, seed)[index]


class SelectiveCopyingDataModule(SyntheticDataModule):
    """Selective copying (:mod:`~mamba_bio_audio.data_prep.synthetic.selective_copying`): ``n_tokens`` data
    tokens among noise in sequences of ``seq_len`` (the paper: 16 in 4096)."""

    draw = staticmethod(selective_copying.selective_copying)

    def __init__(self, *args, n_tokens: int = 16, **kwargs):
        super().__init__(*args, **kwargs)
        self.n_tokens = n_tokens

    def options(self) -> dict:
        return {"n_tokens": self.n_tokens}


class InductionHeadsDataModule(SyntheticDataModule):
    """Induction heads (:mod:`~mamba_bio_audio.data_prep.synthetic.induction_heads`): the answer at the last
    position of each sequence of ``seq_len`` (the paper trains at 256)."""

    draw = staticmethod(induction_heads.induction_heads)
