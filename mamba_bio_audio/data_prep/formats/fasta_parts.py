"""Tokenise FASTA files into temporary token "parts", in parallel across sequences.

A part is a uint8 file holding the tokens of one or more consecutive FASTA records plus their table
(:class:`SequenceInfo`). Plain files are cut into tasks at header lines (groups of whole sequences of about
``TASK_BYTES``) that run in worker processes; a compressed file is one task (gzip cannot be entered in the
middle) whose decompression runs in a thread beside the tokenisation. Parts come back in file order, at most
``workers`` tasks ahead of the consumer, so temporary disk stays bounded by a few tasks' tokens.
"""
from __future__ import annotations

import contextlib
import itertools
import mmap
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from mamba_bio_audio.data_prep.formats.fasta_stream import compression, tokenize_fasta
from mamba_bio_audio.data_prep.datasets.parallel import default_workers, ordered_map
from mamba_bio_audio.tokenizers import tokenizer_from_config

TASK_BYTES = 1 << 26
PART_BYTES = 1 << 26
SERIAL_BYTES = 1 << 24  # below this much input, worker processes cost more than they save


@dataclass
class SequenceInfo:
    """One FASTA record inside a part: tokens ``part[offset : offset + length]``."""

    name: str
    description: str
    source: int
    header_offset: int
    offset: int
    length: int = 0


@dataclass
class Part:
    path: Path
    sequences: list[SequenceInfo] = field(default_factory=list)

    def tokens(self) -> np.ndarray:
        """All tokens of the part: a read-only uint8 memmap (an empty array for an empty part)."""
        if self.path.stat().st_size == 0:
            return np.zeros(0, np.uint8)
        return np.memmap(self.path, dtype=np.uint8, mode="r")


class PartWriter:
    """A :class:`~mamba_bio_audio.data_prep.formats.fasta_stream.TokenSink` writing parts of about ``rotate_bytes``."""

    def __init__(self, folder: Path, prefix: str, source: int, rotate_bytes: int = PART_BYTES):
        self.folder, self.prefix, self.source, self.rotate_bytes = folder, prefix, source, rotate_bytes
        self.finished: list[Part] = []
        self._part: Part | None = None
        self._fh = None
        self._size = 0
        self._count = itertools.count()

    def begin(self, name: str, description: str, header_offset: int) -> None:
        if self._part is None:
            self._part = Part(self.folder / f"{self.prefix}-{next(self._count)}.u8")
            self._fh = open(self._part.path, "wb")
            self._size = 0
        self._part.sequences.append(SequenceInfo(name, description, self.source, header_offset, self._size))

    def write(self, tokens: np.ndarray) -> None:
        self._fh.write(memoryview(tokens))
        self._size += tokens.size
        self._part.sequences[-1].length += tokens.size

    def end(self) -> None:
        if self._size >= self.rotate_bytes:
            self.close()

    def close(self) -> None:
        if self._part is not None:
            self._fh.close()
            self.finished.append(self._part)
            self._part, self._fh = None, None

    def discard(self) -> None:
        if self._fh is not None:
            self._fh.close()
        for part in self.finished + ([self._part] if self._part else []):
            part.path.unlink(missing_ok=True)


@dataclass(frozen=True)
class TokenizeJob:
    source: int
    path: Path
    start: int
    end: int | None
    raw_bytes: int  # file bytes covered, for progress


def header_offsets(path: Path) -> list[int]:
    """Byte offsets of the ``>`` of every header line of an uncompressed FASTA file (one mmap scan)."""
    size = path.stat().st_size
    if size == 0:
        return []
    offsets = []
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        pos = mm.find(b">")  # one-byte searches run at memchr speed, much faster than looking for "\n>"
        while pos >= 0:
            if pos == 0 or mm[pos - 1] == 0x0A:
                offsets.append(pos)
            pos = mm.find(b">", pos + 1)
    return offsets


def plan_tasks(paths: list[Path], task_bytes: int = TASK_BYTES) -> list[TokenizeJob]:
    """Tasks in file order: plain files cut at headers into groups of whole sequences, compressed files whole."""
    tasks = []
    for source, path in enumerate(paths):
        size = path.stat().st_size
        if compression(path) != "plain":
            tasks.append(TokenizeJob(source, path, 0, None, size))
            continue
        cuts = [0] + [o for o in header_offsets(path) if o > 0] + [size]
        start = 0
        for stop in cuts[1:]:
            if stop - start >= task_bytes or stop == size:
                tasks.append(TokenizeJob(source, path, start, stop, stop - start))
                start = stop
    return tasks


def _run_task(task: TokenizeJob, tokenizer_config: dict, folder: Path, prefix: str, part_bytes: int,
              on_raw_bytes: Callable[[int], None] | None = None) -> Iterator[Part]:
    """Tokenise one task, yielding its parts as they fill (the last one when the task ends)."""
    writer = PartWriter(folder, prefix, task.source, part_bytes)
    try:
        for _ in tokenize_fasta(task.path, tokenizer_from_config(tokenizer_config), writer, task.start, task.end,
                                on_raw_bytes=on_raw_bytes):
            while writer.finished:
                yield writer.finished.pop(0)
        writer.close()
        yield from writer.finished
    except BaseException:
        writer.discard()
        raise


def _run_task_in_worker(item: tuple[int, TokenizeJob], tokenizer_config: dict, folder: Path, part_bytes: int) -> list[Part]:
    i, task = item
    return list(_run_task(task, tokenizer_config, folder, f"t{i}", part_bytes))


def iter_parts(paths: list[Path], tokenizer_config: dict, folder: Path, workers: int = 0,
               on_raw_bytes: Callable[[int], None] | None = None, task_bytes: int | None = None,
               part_bytes: int | None = None) -> Iterator[Part]:
    """Tokenise ``paths`` into parts under ``folder``, yielded in file order. The consumer deletes each part.

    ``tokenizer_config``: a ``NucleotideTokenizer.config()`` (workers rebuild the tokenizer from it).
    ``workers``: processes (0: up to 4 of the usable cores; 1: everything in this process). ``task_bytes``
    and ``part_bytes`` default to :data:`TASK_BYTES` and :data:`PART_BYTES`.
    """
    tasks = plan_tasks(paths, task_bytes or TASK_BYTES)
    part_bytes = part_bytes or PART_BYTES
    workers = workers or min(4, default_workers())
    if workers <= 1 or len(tasks) == 1 or sum(t.raw_bytes for t in tasks) < SERIAL_BYTES:
        for i, task in enumerate(tasks):
            yield from _run_task(task, tokenizer_config, folder, f"t{i}", part_bytes, on_raw_bytes)
        return
    run = partial(_run_task_in_worker, tokenizer_config=tokenizer_config, folder=folder, part_bytes=part_bytes)
    results = ordered_map(run, enumerate(tasks), min(workers, len(tasks)), in_flight_per_worker=1)
    with contextlib.closing(results):  # an early exit cancels queued tasks and waits for running ones
        for task, parts in zip(tasks, results):
            if on_raw_bytes is not None:
                on_raw_bytes(task.raw_bytes)
            yield from parts
