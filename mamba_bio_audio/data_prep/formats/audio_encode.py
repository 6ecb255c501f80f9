"""Mono float audio to 8-bit tokens with a normalisation policy (per record), through the package tokenizers.

Policies (``normalize``):

``minmax``  SaShiMi's per-example scaling ``-1 + 2 (x - min) / (max - min + 1e-6)`` over the whole record (a
            clip in ``clips`` mode, a file in ``long`` mode; SaShiMi scales each training window instead).
``peak``    ``x / max|x|`` (keeps 0 at the silence code 128, keeps relative loudness inside the record).
``none``    samples as decoded; the resampler's overshoot past full scale (a few percent on full-scale input)
            is clipped to [-1, 1] and counted.

A constant record (digital silence; also a constant DC offset) becomes all 128 under ``minmax`` and ``peak``:
SaShiMi's formula would map it to all 0, the most negative code, which is a loud click, not silence.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mamba_bio_audio.tokenizers import MU_LAW_START_TOKEN, linear_encode, mu_law_encode

NORMALIZE = ("minmax", "peak", "none")
QUANTIZATION = ("mu-law", "linear")
BITS = 8
# The tokenizer works in float64 with several temporaries; chunks that fit in cache make it ~10x faster
# than one call on a long record and keep memory flat. The scaling is applied here with the tokenizer's
# own formula so that the result equals ``mu_law_encode(x, normalize=...)`` on the whole record.
_CHUNK = 1 << 14


@dataclass
class Encoded:
    """``tokens`` uint8 (n,); ``silent``: the record was constant; ``clipped``: samples clipped under ``none``."""

    tokens: np.ndarray
    silent: bool
    clipped: int


class Levels:
    """Running extremes of one record fed block by block (float (n,) arrays): ``lo``, ``hi``, ``size`` and
    ``over`` (samples with |x| > 1). What a normalisation needs to know before the first token is encoded."""

    def __init__(self) -> None:
        self.lo, self.hi, self.size, self.over = math.inf, -math.inf, 0, 0

    def update(self, x: np.ndarray) -> None:
        if x.size == 0:
            return
        self.lo = min(self.lo, float(x.min()))
        self.hi = max(self.hi, float(x.max()))
        self.size += x.size
        self.over += int(np.count_nonzero(np.abs(x) > 1))

    @property
    def silent(self) -> bool:
        """The record is constant (or empty)."""
        return self.size == 0 or self.lo == self.hi

    def clipped(self, normalize: str) -> int:
        """Samples clipped to [-1, 1] by the encoding: the overshoot under ``none``, nothing otherwise."""
        return self.over if normalize == "none" else 0


def check_policy(normalize: str, quantization: str) -> None:
    if normalize not in NORMALIZE:
        raise ValueError(f"normalize must be one of {NORMALIZE}; got {normalize!r}")
    if quantization not in QUANTIZATION:
        raise ValueError(f"quantization must be one of {QUANTIZATION}; got {quantization!r}")


def encode_block(x: np.ndarray, levels: Levels, normalize: str = "minmax", quantization: str = "mu-law") -> np.ndarray:
    """Encode one block (float (n,)) of a record whose ``levels`` cover the whole record: uint8 (n,).

    Every operation is per sample, so encoding a record block by block gives the tokens of
    :func:`encode_audio` on the whole record, bit for bit, whatever the block boundaries.
    """
    tokens = np.empty(x.size, np.uint8)
    if levels.silent and normalize != "none":
        tokens.fill(MU_LAW_START_TOKEN)
        return tokens
    lo, hi = levels.lo, levels.hi
    peak = max(abs(lo), abs(hi))
    encode = mu_law_encode if quantization == "mu-law" else linear_encode
    for start in range(0, x.size, _CHUNK):
        chunk = x[start : start + _CHUNK].astype(np.float64)
        if normalize == "minmax":
            chunk = -1 + 2 * (chunk - lo) / (hi - lo + 1e-6)
        elif normalize == "peak":
            chunk = chunk / peak
        else:
            np.clip(chunk, -1.0, 1.0, out=chunk)
        tokens[start : start + chunk.size] = encode(chunk, bits=BITS)
    return tokens


def encode_audio(samples: np.ndarray, normalize: str = "minmax", quantization: str = "mu-law") -> Encoded:
    """samples: float (n,), finite. Returns uint8 tokens (n,) in 0..255."""
    check_policy(normalize, quantization)
    x = np.asarray(samples)
    if x.ndim != 1:
        raise ValueError(f"samples must be 1-D; got shape {x.shape}")
    levels = Levels()
    levels.update(x)
    return Encoded(encode_block(x, levels, normalize, quantization), levels.silent, levels.clipped(normalize))
