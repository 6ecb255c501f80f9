"""Audio decoding for dataset preparation: any file libsndfile reads (WAV, FLAC, OGG, MP3, AIFF, ...) to mono
float32 at a target rate.

Every failure is a ValueError that names the file: an empty file, a file libsndfile does not recognise (a text
file named ``.wav``), a truncated file, a file without frames, NaN or inf samples, an unsupported rate.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf
import soxr

# Extensions picked up when a folder is given; a file named explicitly is decoded whatever its name.
AUDIO_EXTENSIONS = frozenset({
    ".wav", ".wave", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".aif", ".aiff", ".aifc", ".au", ".snd",
    ".caf", ".w64", ".rf64", ".voc", ".sd2", ".sph", ".nist", ".htk", ".paf", ".pvf", ".xi", ".avr", ".mpc",
})
MIN_RATE, MAX_RATE = 1_000, 384_000
BLOCK_FRAMES = 1 << 18
RESAMPLER = "soxr HQ"
# libsndfile reports a WAV data chunk that runs past the end of the file as "data : 96000 (should be 47978)".
_WAV_DATA_SHORT = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
# Streaming writers put these placeholders in the header when the length is unknown: not truncation.
_UNKNOWN_LENGTH = {0, 0xFFFFFFFF, 0x7FFFFFFF}


@dataclass(frozen=True)
class AudioInfo:
    """What the header says: ``rate`` Hz, ``channels``, ``frames`` (samples per channel), libsndfile
    ``format`` (e.g. ``WAV``) and ``subtype`` (e.g. ``PCM_24``, ``FLOAT``)."""

    rate: int
    channels: int
    frames: int
    format: str
    subtype: str

    @property
    def seconds(self) -> float:
        return self.frames / self.rate


def check_rate(rate, what: str = "target sample rate") -> int:
    """``rate`` as an int in [1000, 384000] Hz, else ValueError."""
    try:
        value = float(rate)
    except (TypeError, ValueError):
        value = float("nan")
    if isinstance(rate, bool) or not value.is_integer() or not MIN_RATE <= value <= MAX_RATE:
        raise ValueError(f"unsupported {what} {rate!r}: use a whole number of Hz in {MIN_RATE}..{MAX_RATE}")
    return int(value)


def probe(path: str | Path) -> AudioInfo:
    """Read and check the header of ``path`` (no decoding)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"audio file not found: {path}")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: empty file (0 bytes)")
    try:
        info = sf.info(str(path))
    except sf.SoundFileError as err:
        raise ValueError(f"{path}: not an audio file libsndfile can read ({_reason(err)})") from None
    if info.format in ("WAV", "WAVEX", "RF64"):
        short = _WAV_DATA_SHORT.search(info.extra_info)
        if short and int(short.group(1)) not in _UNKNOWN_LENGTH and int(short.group(1)) > int(short.group(2)):
            raise ValueError(f"{path}: truncated: the header declares {short.group(1)} data bytes, "
                             f"the file holds {short.group(2)}")
    if info.frames <= 0:
        raise ValueError(f"{path}: no audio frames")
    check_rate(info.samplerate, what=f"input sample rate in {path}:")
    return AudioInfo(int(info.samplerate), int(info.channels), int(info.frames), info.format, info.subtype)


@dataclass
class Decoded:
    """``samples`` float32 (n,) mono at the target rate; ``input_peak`` max |sample| of the decoded input
    before down-mix and resampling (above 1 only for float files)."""

    samples: np.ndarray
    info: AudioInfo
    input_peak: float


class MonoStream:
    """Iterate over ``path`` as float32 (n,) mono blocks at ``rate``: decoded ``BLOCK_FRAMES`` frames at a time,
    channels averaged, resampled with one stateful soxr (HQ) stream, so the blocks joined are exactly what
    :func:`load_mono` returns and memory holds one block, whatever the length of the file.

    ``input_peak`` (max |sample| of the input before down-mix and resampling) covers the blocks read so far.
    Iterating raises ValueError naming the file for NaN / inf samples (with the first bad frame) and for files
    that end before the frame count their header declares (truncated FLAC, AIFF, ...).
    """

    def __init__(self, path: str | Path, rate: int, info: AudioInfo | None = None):
        self.path = Path(path)
        self.rate = check_rate(rate)
        self.info = info or probe(self.path)
        self.input_peak = 0.0

    def __iter__(self) -> Iterator[np.ndarray]:
        path, info = self.path, self.info
        stream = None if info.rate == self.rate else soxr.ResampleStream(info.rate, self.rate, 1, dtype="float32",
                                                                          quality="HQ")
        frame = 0
        try:
            with sf.SoundFile(str(path)) as fh:
                while True:
                    block = fh.read(BLOCK_FRAMES, dtype="float32", always_2d=True)
                    if block.shape[0] == 0:
                        break
                    block_peak = max(float(block.max()), -float(block.min()))  # NaN or inf if any sample is
                    if not np.isfinite(block_peak):
                        bad = frame + int(np.argmin(np.isfinite(block).all(axis=1)))
                        raise ValueError(f"{path}: NaN or inf sample at frame {bad} ({bad / info.rate:.3f} s)")
                    self.input_peak = max(self.input_peak, block_peak)
                    frame += block.shape[0]
                    mono = block[:, 0] if info.channels == 1 else _downmix(block)
                    del block
                    out = mono if stream is None else stream.resample_chunk(mono)
                    if out.size:
                        yield out
        except sf.SoundFileError as err:
            raise ValueError(f"{path}: decoding failed after frame {frame} ({_reason(err)}): "
                             f"the file is truncated or corrupt") from None
        if frame < info.frames:
            raise ValueError(f"{path}: truncated: the header declares {info.frames} frames, decoding gave {frame}")
        if stream is not None:
            out = stream.resample_chunk(np.zeros(0, np.float32), last=True)
            if out.size:
                yield out


def load_mono(path: str | Path, rate: int, info: AudioInfo | None = None) -> Decoded:
    """The whole of :class:`MonoStream` in memory: for short files (clips, prompts); long recordings go
    through the stream block by block (``data_prep/datasets/audio_record.py``)."""
    stream = MonoStream(path, rate, info)
    pieces = list(stream)
    samples = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
    return Decoded(np.ascontiguousarray(samples, dtype=np.float32), stream.info, stream.input_peak)


def _downmix(block: np.ndarray) -> np.ndarray:
    """(frames, channels) float32 -> (frames,) channel mean. Column sums: block.mean(axis=1) is ~20x slower
    on (frames, 2) arrays, and a BLAS product spins threads that compete with the worker processes."""
    mono = block[:, 0].copy()
    for channel in range(1, block.shape[1]):
        mono += block[:, channel]
    mono *= np.float32(1.0 / block.shape[1])
    return mono


def _reason(err: Exception) -> str:
    text = str(err)
    return text.split(": ", 1)[1] if text.startswith("Error opening") and ": " in text else text
