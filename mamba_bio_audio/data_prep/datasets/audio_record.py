"""One audio file to the tokens of one record, in bounded memory whatever the length of the file.

Two passes, because ``minmax`` and ``peak`` scale by the extremes of the whole record:

1. decode, down-mix and resample block by block (:class:`~mamba_bio_audio.data_prep.formats.audio_io.MonoStream`),
   keep the samples (cut to ``clip_samples``) and their :class:`~mamba_bio_audio.data_prep.formats.audio_encode.Levels`;
2. encode them block by block (:func:`~mamba_bio_audio.data_prep.formats.audio_encode.encode_block`).

A record of up to ``MEMORY_SAMPLES`` samples stays in memory (a clip, a short take: no file is written). A longer
one spills its float32 samples to a temporary file in ``spill_dir`` and writes its tokens to another, which the
caller appends to the dataset and removes: memory holds a few blocks (a few MB), so a 3-hour 48 kHz recording
prepares under a 2 GiB address-space limit. The tokens equal
``encode_audio(load_mono(path, rate).samples[:clip_samples], ...)`` bit for bit.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mamba_bio_audio.data_prep.formats.audio_encode import Levels, check_policy, encode_block
from mamba_bio_audio.data_prep.formats.audio_io import AudioInfo, MonoStream

MEMORY_SAMPLES = 1 << 22  # 4M samples: 16 MB of float32, 4.4 minutes at 16 kHz
_READ_SAMPLES = 1 << 20  # block size of the second pass over a spilled record


@dataclass
class RecordTokens:
    """One record: ``size`` tokens, in ``tokens`` (uint8 (size,)) or, for a long record, in the temporary file
    ``path`` (raw uint8, the caller removes it). ``input_peak``: max |sample| of the input before down-mix;
    ``silent``: the record is constant; ``clipped``: samples clipped under ``normalize="none"``; ``cut``: the
    file was longer than ``clip_samples``."""

    size: int
    input_peak: float
    silent: bool
    clipped: int
    cut: bool
    tokens: np.ndarray | None = None
    path: str | None = None

    def array(self) -> np.ndarray:
        """The tokens, uint8 (size,): in memory, or mapped read-only from ``path`` (pages the kernel may drop)."""
        if self.path is None:
            return self.tokens
        return np.memmap(self.path, np.uint8, mode="r") if self.size else np.zeros(0, np.uint8)

    def discard(self) -> None:
        """Remove the temporary token file, if any."""
        if self.path is not None:
            _unlink(self.path)


class _Samples:
    """float32 samples appended block by block: kept in memory up to ``limit``, then in a temporary file."""

    def __init__(self, spill_dir: str | Path | None, limit: int):
        self.spill_dir, self.limit = spill_dir, limit
        self.blocks: list[np.ndarray] = []
        self.size = 0
        self.file = None

    def append(self, block: np.ndarray) -> None:
        self.size += block.size
        if self.file is None and self.size > self.limit:
            self.file = _temporary(self.spill_dir, ".f32")
            for kept in self.blocks:
                self.file.write(memoryview(kept))
            self.blocks = []
        if self.file is None:
            self.blocks.append(block)
        else:
            self.file.write(memoryview(np.ascontiguousarray(block, np.float32)))

    def read(self):
        """The samples again, as float32 blocks in order."""
        if self.file is None:
            yield from self.blocks
            return
        self.file.flush()
        self.file.seek(0)
        while True:
            block = np.empty(_READ_SAMPLES, np.float32)
            size = self.file.readinto(memoryview(block).cast("B")) // block.itemsize
            if size == 0:
                return
            yield block[:size]

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            _unlink(self.file.name)
            self.file = None
        self.blocks = []


def encode_file(path: str | Path, rate: int, normalize: str = "minmax", quantization: str = "mu-law", *,
                info: AudioInfo | None = None, clip_samples: int | None = None, spill_dir: str | Path | None = None,
                memory_samples: int | None = None) -> RecordTokens:
    """Decode ``path`` to mono at ``rate``, keep the first ``clip_samples`` (all when None) and encode them.

    Records longer than ``memory_samples`` (default ``MEMORY_SAMPLES``) go through temporary files in
    ``spill_dir`` (the system temporary folder when None). Raises ValueError naming the file for what
    :class:`MonoStream` refuses.
    """
    check_policy(normalize, quantization)
    stream = MonoStream(path, rate, info)
    samples = _Samples(spill_dir, MEMORY_SAMPLES if memory_samples is None else memory_samples)
    levels = Levels()
    cut = False
    try:
        for block in stream:
            if clip_samples is not None and samples.size + block.size > clip_samples:
                cut = True
                block = block[: max(0, clip_samples - samples.size)]  # the rest is decoded only to be checked
            if block.size:
                samples.append(block)
                levels.update(block)
        record = RecordTokens(samples.size, stream.input_peak, levels.silent, levels.clipped(normalize), cut)
        if samples.file is None:
            pieces = [encode_block(b, levels, normalize, quantization) for b in samples.read()]
            record.tokens = np.concatenate(pieces) if pieces else np.zeros(0, np.uint8)
            return record
        with _temporary(spill_dir, ".u8") as out:
            record.path = out.name
            try:
                for block in samples.read():
                    out.write(memoryview(encode_block(block, levels, normalize, quantization)))
            except BaseException:
                record.discard()
                raise
        return record
    finally:
        samples.close()


def _temporary(folder: str | Path | None, suffix: str):
    """A new binary file ``.record-*<suffix>`` in ``folder``, open for reading and writing (``.name`` its path)."""
    fd, name = tempfile.mkstemp(suffix=suffix, prefix=".record-", dir=folder)
    os.close(fd)
    return open(name, "w+b")


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
