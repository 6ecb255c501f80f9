"""Mu-law / linear 8-bit audio quantisation (SaShiMi, ``state-spaces/s4`` ``src/dataloaders/audio.py``) for
numpy arrays and torch tensors, and the :class:`MuLawTokenizer` bundle."""
from __future__ import annotations

import math
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np
import torch

from mamba_bio_audio.tokenizers._batch import _as_int_array

MU_LAW_START_TOKEN = 128  #: q_zero = 2**(bits-1) for 8 bits: silence, start token and input pad (SaShiMi)
_NORMALIZE = ("none", "minmax", "peak")


def _check_bits(bits: Any) -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= int(bits) <= 16:
        raise ValueError(f"bits must be an integer in 1..16, got {bits!r}")
    return int(bits)


def _first_index(mask: np.ndarray) -> Union[int, Tuple[int, ...]]:
    flat = int(np.flatnonzero(mask.reshape(-1))[0])
    if mask.ndim <= 1:
        return flat
    return tuple(int(i) for i in np.unravel_index(flat, mask.shape))


def _audio_to_f64(x: Any) -> Tuple[Any, bool]:
    """-> (float64 array or tensor, is_torch), validated finite."""
    if isinstance(x, torch.Tensor):
        if x.is_complex():
            raise TypeError("audio must be real")
        t = x.detach().to(torch.float64)
        finite = torch.isfinite(t)
        if not bool(finite.all()):
            idx = _first_index(~finite.cpu().numpy())
            raise ValueError(f"audio contains NaN or inf at sample index {idx}")
        return t, True
    a = np.asarray(x)
    if a.dtype == object or np.issubdtype(a.dtype, np.complexfloating):
        raise TypeError(f"audio must be a real numeric array, got dtype {a.dtype}")
    a = a.astype(np.float64)
    finite = np.isfinite(a)
    if not finite.all():
        raise ValueError(f"audio contains NaN or inf at sample index {_first_index(~finite)}")
    return a, False


def _normalize(x: Any, is_torch: bool, normalize: str, axis: Optional[int], to_unit: bool) -> Any:
    """Apply the normalisation policy.  Result in [-1, 1] (``to_unit=False``) or [0, 1] (``to_unit=True``,
    linear quantisation; for ``minmax`` this is SaShiMi's ``minmax_scale(x)`` to [0, 1] directly)."""
    if normalize not in _NORMALIZE:
        raise ValueError(f"normalize must be one of {_NORMALIZE}, got {normalize!r}")
    if normalize == "none":
        out_of_range = (x.abs() > 1) if is_torch else (np.abs(x) > 1)
        if bool(out_of_range.any()):
            m = out_of_range.cpu().numpy() if is_torch else out_of_range
            idx = _first_index(m)
            val = float(x[idx] if not isinstance(idx, int) else x.reshape(-1)[idx])
            raise ValueError(f"audio sample {val!r} at sample index {idx} is outside [-1, 1]; scale it first or "
                             f"pass normalize='minmax' or 'peak'")
        return (x + 1) / 2 if to_unit else x
    if (x.numel() if is_torch else x.size) == 0:
        return (x + 1) / 2 if to_unit else x
    if normalize == "minmax":
        if is_torch:
            dims = tuple(range(x.ndim)) if axis is None else (axis,)
            lo = torch.amin(x, dim=dims, keepdim=True)
            hi = torch.amax(x, dim=dims, keepdim=True)
        else:
            lo = np.min(x, axis=axis, keepdims=True)
            hi = np.max(x, axis=axis, keepdims=True)
        unit = (x - lo) / (hi - lo + 1e-6)
        return unit if to_unit else -1 + 2 * unit
    # peak
    if is_torch:
        dims = tuple(range(x.ndim)) if axis is None else (axis,)
        peak = torch.amax(x.abs(), dim=dims, keepdim=True)
        peak = torch.where(peak > 0, peak, torch.ones_like(peak))
    else:
        peak = np.max(np.abs(x), axis=axis, keepdims=True)
        peak = np.where(peak > 0, peak, 1.0)
    y = x / peak
    return (y + 1) / 2 if to_unit else y


def _quantize(unit: Any, bits: int, is_torch: bool) -> Any:
    """SaShiMi ``quantize``: x in [0, 1] -> floor(x * (2**bits - 0.01) + 0.005) as int64."""
    q = unit * ((1 << bits) - 0.01) + 0.005
    if is_torch:
        return torch.floor(q).to(torch.long)
    return np.floor(q).astype(np.int64)


def _check_codes(q: Any, bits: int) -> Tuple[Any, bool]:
    levels = 1 << bits
    if isinstance(q, torch.Tensor):
        if q.is_floating_point() or q.is_complex() or q.dtype == torch.bool:
            raise TypeError(f"codes must be an integer tensor, got {q.dtype}")
        bad = (q < 0) | (q >= levels)
        if bool(bad.any()):
            idx = _first_index(bad.cpu().numpy())
            raise ValueError(f"code at index {idx} is outside 0..{levels - 1}")
        return q.to(torch.float64), True
    a = _as_int_array(q, "codes")
    bad = (a < 0) | (a >= levels)
    if bad.any():
        raise ValueError(f"code at index {_first_index(bad)} is outside 0..{levels - 1}")
    return a.astype(np.float64), False


def _out_float(x: Any, is_torch: bool, dtype: Any) -> Any:
    if is_torch:
        return x.to(torch.float32 if dtype is None else dtype)
    return x.astype(np.float32 if dtype is None else dtype)


def mu_law_encode(x: Any, bits: int = 8, normalize: str = "none", axis: Optional[int] = None) -> Any:
    """Mu-law companding + quantisation to ``2**bits`` classes (mu = ``2**bits - 1``, 255 for 8 bits).

    Steps (SaShiMi, ``state-spaces/s4`` ``src/dataloaders/audio.py``), computed in float64:

    1. normalise: ``"none"`` requires x in [-1, 1] (ValueError naming the first sample index otherwise);
       ``"minmax"`` is SaShiMi's per-example scaling ``-1 + 2 (x - min) / (max - min + 1e-6)`` (it changes the
       loudness, and a constant clip becomes all -1 -> code 0); ``"peak"`` divides by ``max |x|`` (keeps 0
       at 0).  ``axis=None`` normalises over the whole array, ``axis=-1`` per row of a batch.
    2. ``y = sign(x) log1p(mu |x|) / log1p(mu)``; 3. ``u = (y + 1) / 2``;
    4. ``q = floor(u (2**bits - 0.01) + 0.005)`` in 0..2**bits-1.

    SaShiMi's code adds 1e-8 inside ``|x|`` and computes in float32; this implementation follows the closed
    form above in float64, so a sample lying within ~1e-7 of a class boundary can land in the neighbouring
    class.  0 -> 128, -1 -> 0, +1 -> 255 (8 bits).  Returns int64: a numpy array for numpy / list input, a
    ``torch.long`` tensor on the input's device for a tensor.  NaN / inf raise ValueError.
    """
    bits = _check_bits(bits)
    xf, is_torch = _audio_to_f64(x)
    xf = _normalize(xf, is_torch, normalize, axis, to_unit=False)
    mu = float((1 << bits) - 1)
    if is_torch:
        y = torch.sign(xf) * torch.log1p(mu * xf.abs()) / math.log1p(mu)
    else:
        y = np.sign(xf) * np.log1p(mu * np.abs(xf)) / math.log1p(mu)
    return _quantize((y + 1) / 2, bits, is_torch)


def mu_law_decode(q: Any, bits: int = 8, dtype: Any = None) -> Any:
    """Inverse of :func:`mu_law_encode` (up to quantisation): ``y = q / 2**(bits-1) - 1`` in [-1, 1), then
    ``sign(y) ((1 + mu)**|y| - 1) / mu``.  Returns float32 (or ``dtype``), numpy for numpy, torch for torch."""
    bits = _check_bits(bits)
    qf, is_torch = _check_codes(q, bits)
    mu = float((1 << bits) - 1)
    y = qf / (1 << (bits - 1)) - 1
    if is_torch:
        x = torch.sign(y) * (torch.pow(1 + mu, y.abs()) - 1) / mu
    else:
        x = np.sign(y) * (np.power(1 + mu, np.abs(y)) - 1) / mu
    return _out_float(x, is_torch, dtype)


def linear_encode(x: Any, bits: int = 8, normalize: str = "none", axis: Optional[int] = None) -> Any:
    """Linear quantisation to ``2**bits`` classes: ``q = floor(u (2**bits - 0.01) + 0.005)`` with
    ``u = (x + 1) / 2`` (``"none"``, x in [-1, 1]), SaShiMi's ``(x - min) / (max - min + 1e-6)``
    (``"minmax"``) or ``(x / max|x| + 1) / 2`` (``"peak"``).  0 -> 128 for 8 bits."""
    bits = _check_bits(bits)
    xf, is_torch = _audio_to_f64(x)
    unit = _normalize(xf, is_torch, normalize, axis, to_unit=True)
    return _quantize(unit, bits, is_torch)


def linear_decode(q: Any, bits: int = 8, dtype: Any = None) -> Any:
    """``q / 2**(bits-1) - 1`` in [-1, 1) as float32 (or ``dtype``)."""
    bits = _check_bits(bits)
    qf, is_torch = _check_codes(q, bits)
    return _out_float(qf / (1 << (bits - 1)) - 1, is_torch, dtype)


class MuLawTokenizer:
    """Audio samples <-> ``2**bits`` classes (SaShiMi recipe by default: 8-bit mu-law, per-clip min-max).

    Args:
        bits: 1..16 (8: 256 classes, mu = 255).
        quantization: ``"mu-law"`` or ``"linear"``.
        normalize: ``"minmax"`` (SaShiMi, default), ``"peak"`` or ``"none"`` (input must lie in [-1, 1]).

    ``start_token_id`` = ``2**(bits-1)`` (128): silence, the start token and the input pad; the
    autoregressive pair is ``(shift_right(q), q)``.
    """

    def __init__(self, bits: int = 8, quantization: str = "mu-law", normalize: str = "minmax") -> None:
        self.bits = _check_bits(bits)
        if quantization not in ("mu-law", "linear"):
            raise ValueError(f"quantization must be 'mu-law' or 'linear', got {quantization!r}")
        if normalize not in _NORMALIZE:
            raise ValueError(f"normalize must be one of {_NORMALIZE}, got {normalize!r}")
        self.quantization = quantization
        self.normalize = normalize
        self.vocab_size = 1 << self.bits
        self.start_token_id = 1 << (self.bits - 1)
        self.pad_token_id = self.start_token_id
        self.mu = self.vocab_size - 1

    def __len__(self) -> int:
        return self.vocab_size

    def config(self) -> Dict[str, Any]:
        return {"type": "mu-law" if self.quantization == "mu-law" else "linear", "bits": self.bits,
                "quantization": self.quantization, "normalize": self.normalize, "vocab_size": self.vocab_size,
                "start_token_id": self.start_token_id, "mu": self.mu}

    def __repr__(self) -> str:
        return f"MuLawTokenizer(bits={self.bits}, quantization={self.quantization!r}, normalize={self.normalize!r})"

    def encode(self, x: Any, axis: Optional[int] = None) -> Any:
        fn = mu_law_encode if self.quantization == "mu-law" else linear_encode
        return fn(x, bits=self.bits, normalize=self.normalize, axis=axis)

    def decode(self, q: Any, dtype: Any = None) -> Any:
        fn = mu_law_decode if self.quantization == "mu-law" else linear_decode
        return fn(q, bits=self.bits, dtype=dtype)

    def shift_right(self, q: Any) -> Any:
        """Model input for next-sample prediction: ``q`` shifted right by one along the last axis with the
        start token in front (SaShiMi's ``roll(q, 1); x[0] = 128``)."""
        if isinstance(q, torch.Tensor):
            out = torch.roll(q, 1, dims=-1)
            out[..., 0] = self.start_token_id
            return out
        out = np.roll(np.asarray(q), 1, axis=-1)
        out[..., 0] = self.start_token_id
        return out
