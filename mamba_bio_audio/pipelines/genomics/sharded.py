"""Run a per-item computation over a list of items on one or several processes, resumably, through Lightning's
predict loop; merge the results in input order into the final output files.

    result = predict_sharded(items, compute_batch, batch_size=64, outputs={out_path: writer},
                             fingerprint={"vcf": ..., "model": ..., "window": 512}, model=model,
                             devices=2, num_nodes=1, progress_label="vep")

* ``items``: a list (regions, variants, records), the same in every process (the command builds it before
  calling: each rank runs the whole command line again under DDP, see below).
* ``compute_batch(list_of_items) -> list_of_records``: one record per item, in the same order. A record is a
  dict of str → numpy array, numpy/Python scalar (int, float, bool) or str. It runs under
  ``torch.inference_mode``; ``model`` (an ``nn.Module``, optional) is moved by Lightning to the rank's device
  before the first batch: read the device from its parameters.
* ``outputs``: {final path: writer}; ``writer(records, tmp_path)`` gets an iterator over ALL records in input
  order and writes one file at ``tmp_path`` (a temporary name beside the final path). Every output is written
  by global rank 0 under its temporary name first, then all are renamed into place: no partial file is ever
  left under a final name.
* Work folder: ``<first output>.work/`` beside the first output (or ``work_dir``). Each rank writes every
  batch it finishes as ``part-<rank>-<batch>.npz`` (the item indices and the records; written under a
  temporary name and renamed), so a killed run continues from the done items when it is started again with the
  same inputs, not from scratch. The folder's ``manifest.json`` holds a hash of ``fingerprint`` (everything
  the results depend on: input files, model, parameters; JSON-able) and of the item count: a different hash is
  refused (``ValueError`` naming the folder) unless ``restart=True``, which deletes the old work folder first
  (only one this module wrote). After the merge the work folder is removed.
* Sharding: ``devices`` processes per node (``num_nodes`` nodes) with ``strategy="ddp"`` (gloo on the CPU,
  NCCL on GPUs; on the CPU each process gets cores // devices torch threads), or the processes ``torchrun``
  started (Lightning reads its environment). Lightning's
  launcher re-runs the command line for the other local ranks. The items not yet done are split into one
  contiguous block per rank, batched in order (neighbouring items in one batch: variants sharing a window stay
  together). Rank 0 merges after every rank has finished. Part files are plain ``.npz`` read with
  ``allow_pickle=False``: loading them never runs code.
* Returns a :class:`ShardedRun` summary on global rank 0 and None on the other ranks (whose command should
  then return without printing).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mamba_bio_audio.atomic import atomic_path, folder_lock, write_text_atomic

__all__ = ["ShardedRun", "Writer", "predict_sharded", "read_parts", "work_dir_for"]

Record = dict
Writer = Callable[[Iterator[Record], Path], None]
_MANIFEST = "manifest.json"
_PART = re.compile(r"part-(\d+)-(\d+)\.npz")
_KIND = "mamba-bio-audio sharded work folder"


@dataclass(frozen=True)
class ShardedRun:
    """What a sharded run did: ``items`` in all, ``resumed`` of them done by an earlier run, ``computed`` by
    this one, in ``seconds`` (the predict loop and the merge), by ``world_size`` processes."""

    items: int
    resumed: int
    computed: int
    seconds: float
    world_size: int


def work_dir_for(output: str | Path) -> Path:
    """The default work folder of an output file: ``<output>.work`` beside it."""
    output = Path(output)
    return output.with_name(output.name + ".work")


def _hash(fingerprint: dict, n_items: int) -> str:
    text = json.dumps({"fingerprint": fingerprint, "items": n_items}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _is_launcher_zero() -> bool:
    """Whether this process is global rank 0 (before the Trainer exists): the process a user started, not a
    rank Lightning's launcher or torchrun started for another rank."""
    if os.environ.get("RANK") not in (None, "0"):
        return False
    if os.environ.get("NODE_RANK", os.environ.get("GROUP_RANK")) not in (None, "0"):
        return False
    return os.environ.get("LOCAL_RANK") in (None, "0")


def _open_work_dir(work_dir: Path, digest: str, fingerprint: dict, restart: bool) -> None:
    """Create the work folder, or check that an existing one belongs to the same inputs (rank 0 only)."""
    manifest = work_dir / _MANIFEST
    if work_dir.exists():
        try:
            old = json.loads(manifest.read_text())
        except (OSError, ValueError):
            old = None
        ours = isinstance(old, dict) and old.get("kind") == _KIND
        if not ours and next(work_dir.iterdir(), None) is not None:
            raise ValueError(f"{work_dir}: refused: it exists and is not a work folder of mamba-bio-audio (no "
                             f"{_MANIFEST} of ours); move it away or choose another output (nothing was changed)")
        if ours and old.get("hash") != digest:
            if not restart:
                raise ValueError(f"{work_dir}: refused: it holds the partial results of a run with other inputs "
                                 f"or parameters ({old.get('fingerprint')}); run again with the same ones to "
                                 f"resume, or with --restart to discard them (nothing was changed)")
            shutil.rmtree(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    if not manifest.exists():
        write_text_atomic(manifest, json.dumps({"kind": _KIND, "hash": digest, "fingerprint": fingerprint},
                                               sort_keys=True, default=str, indent=1) + "\n")


def _part_indices(path: Path) -> np.ndarray:
    with np.load(path, allow_pickle=False) as npz:
        return npz["__index__"]


def _done(work_dir: Path) -> dict[int, Path]:
    """Item index → the part file holding its record, over every complete part file of the folder."""
    done: dict[int, Path] = {}
    for path in sorted(work_dir.iterdir()):
        if _PART.fullmatch(path.name):
            for i in _part_indices(path).tolist():
                done.setdefault(int(i), path)
    return done


def _record_arrays(j: int, record: Record) -> dict[str, np.ndarray]:
    arrays = {}
    for key, value in record.items():
        if not isinstance(key, str) or "/" in key:
            raise ValueError(f"record fields must be strings without '/'; got {key!r}")
        array = np.asarray(value)
        if array.dtype == object:
            raise ValueError(f"record field {key!r} is not a number, string or numeric/string array: {value!r:.80}")
        arrays[f"{j}/{key}"] = array
    return arrays


def _write_part(path: Path, indices: Sequence[int], records: Sequence[Record]) -> None:
    arrays = {"__index__": np.asarray(indices, dtype=np.int64)}
    for j, record in enumerate(records):
        arrays.update(_record_arrays(j, record))
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def _unpack(npz, j: int) -> Record:
    prefix = f"{j}/"
    record = {}
    for name in npz.files:
        if name.startswith(prefix):
            value = npz[name]
            record[name[len(prefix):]] = value.item() if value.ndim == 0 else value
    return record


def read_parts(work_dir: str | Path, n_items: int, cache: int = 32) -> Iterator[Record]:
    """Every record of a work folder in input order (0 .. n_items - 1); a missing index is a RuntimeError.

    Part files are opened lazily and at most ``cache`` at a time, so memory holds a few batches, not all."""
    done = _done(Path(work_dir))
    missing = [i for i in range(n_items) if i not in done]
    if missing:
        raise RuntimeError(f"{work_dir}: {len(missing)} of {n_items} items have no result (first: {missing[:5]})")
    opened: OrderedDict[Path, tuple] = OrderedDict()
    try:
        for i in range(n_items):
            path = done[i]
            if path not in opened:
                npz = np.load(path, allow_pickle=False)
                where = {int(k): j for j, k in enumerate(npz["__index__"].tolist())}
                opened[path] = (npz, where)
                if len(opened) > cache:
                    opened.popitem(last=False)[1][0].close()
            opened.move_to_end(path)
            npz, where = opened[path]
            yield _unpack(npz, where[i])
    finally:
        for npz, _ in opened.values():
            npz.close()


def _lightning_parts(items: Sequence, compute_batch: Callable, batch_size: int, work_dir: Path,
                     model: torch.nn.Module | None):
    """The LightningModule and DataModule of one sharded run (Lightning imported only here)."""
    import lightning.pytorch as pl
    from torch.utils.data import DataLoader

    class _Compute(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = model if model is not None else torch.nn.Identity()
            self.computed = 0

        def predict_step(self, batch, batch_idx, dataloader_idx=0):
            indices = [int(i) for i in batch]
            records = compute_batch([items[i] for i in indices])
            if len(records) != len(indices):
                raise RuntimeError(f"compute_batch returned {len(records)} records for {len(indices)} items")
            _write_part(work_dir / f"part-{self.global_rank:05d}-{indices[0]:09d}.npz", indices, records)
            self.computed += len(indices)
            return len(indices)

        def on_predict_end(self):
            self.trainer.strategy.barrier("sharded-merge")

    class _Shards(pl.LightningDataModule):
        def __init__(self):
            super().__init__()
            self.todo: list[int] = []

        def setup(self, stage: str) -> None:
            # rank 0 reads the done set once the process group exists, before any rank writes a part
            done = _done(work_dir) if self.trainer.is_global_zero else None
            done = self.trainer.strategy.broadcast(done, src=0)
            self.todo = [i for i in range(len(items)) if i not in done]

        def predict_dataloader(self):
            rank, world, todo = self.trainer.global_rank, self.trainer.world_size, self.todo
            lo, hi = rank * len(todo) // world, (rank + 1) * len(todo) // world
            return DataLoader(todo[lo:hi], batch_size=batch_size, shuffle=False, collate_fn=list)

    return _Compute(), _Shards()


def _progress(label: str, enabled: bool):
    from lightning.pytorch.callbacks import RichProgressBar

    from mamba_bio_audio.pipelines.training.callbacks.progress import stdout_is_terminal

    class _Bar(RichProgressBar):
        @property
        def predict_description(self) -> str:
            return label

    return [_Bar()] if enabled and stdout_is_terminal() else []


@contextlib.contextmanager
def _quiet_lightning():
    """Lightning's banner lines (accelerators found, tips) and its pytree deprecation note are not the user's
    business here: only warnings and errors pass."""
    names = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
             "lightning.pytorch.accelerators.cuda")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*LeafSpec.*")
            warnings.filterwarnings("ignore", message=".*Total length of `DataLoader` across ranks is zero.*")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def predict_sharded(items: Sequence, compute_batch: Callable[[list], list[Record]], *, batch_size: int,
                    outputs: dict[str | Path, Writer], fingerprint: dict, model: torch.nn.Module | None = None,
                    work_dir: str | Path | None = None, devices: int = 1, num_nodes: int = 1,
                    accelerator: str = "cpu", progress_label: str = "Scoring", progress: bool = True,
                    restart: bool = False, keep_work: bool = False) -> ShardedRun | None:
    """See the module docstring. ``accelerator``: Lightning's ("cpu", "gpu", "auto")."""
    import lightning.pytorch as pl

    if batch_size < 1 or devices < 1 or num_nodes < 1:
        raise ValueError(f"batch_size, devices and num_nodes must be >= 1; got {batch_size}, {devices}, {num_nodes}")
    if not outputs:
        raise ValueError("predict_sharded needs at least one output")
    finals = [Path(p) for p in outputs]
    work_dir = Path(work_dir) if work_dir is not None else work_dir_for(finals[0])
    digest = _hash(fingerprint, len(items))
    started = time.perf_counter()
    zero = _is_launcher_zero()
    lock = folder_lock(work_dir) if zero else contextlib.nullcontext()
    with lock:
        if zero:
            _open_work_dir(work_dir, digest, fingerprint, restart)
        world = devices * num_nodes
        multi = world > 1 or "TORCHELASTIC_RUN_ID" in os.environ
        if accelerator == "cpu" and devices > 1:  # the node's cores shared out, not oversubscribed
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // devices))
        strategy = "auto"
        if multi:
            from lightning.pytorch.strategies import DDPStrategy

            strategy = DDPStrategy(process_group_backend="gloo" if accelerator == "cpu" else None)
        bar = _progress(progress_label, progress)
        with _quiet_lightning():
            trainer = pl.Trainer(accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy=strategy,
                                 logger=False, enable_checkpointing=False, enable_model_summary=False,
                                 use_distributed_sampler=False, callbacks=bar, enable_progress_bar=bool(bar),
                                 default_root_dir=str(work_dir))
        module, data = _lightning_parts(items, compute_batch, batch_size, work_dir, model)
        with _quiet_lightning():
            trainer.predict(module, datamodule=data, return_predictions=False)
        if not trainer.is_global_zero:
            return None
        _merge(work_dir, len(items), outputs)
        if not keep_work:
            shutil.rmtree(work_dir)
    todo = len(data.todo)
    return ShardedRun(items=len(items), resumed=len(items) - todo, computed=todo,
                      seconds=time.perf_counter() - started, world_size=trainer.world_size)


def _merge(work_dir: Path, n_items: int, outputs: dict[str | Path, Writer]) -> None:
    """Write every output under a temporary name from the part files in input order, then rename them all."""
    with contextlib.ExitStack() as stack:
        for final, writer in outputs.items():
            tmp = stack.enter_context(atomic_path(Path(final)))
            writer(read_parts(work_dir, n_items), tmp)

