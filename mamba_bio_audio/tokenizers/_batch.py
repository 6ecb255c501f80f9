"""Helpers shared by the sequence tokenizers: id-array coercion, rounding, padding / truncation / batching
(:class:`_BatchMixin`) and the ``padding_side`` / ``truncation_side`` check."""
from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Sequence, Union

import numpy as np
import torch

ArrayLike = Union[np.ndarray, torch.Tensor, Sequence[int]]


def _as_int_array(ids: Any, name: str = "ids") -> np.ndarray:
    """ids (list / tuple / numpy / torch) -> integer numpy array (no copy where possible)."""
    if isinstance(ids, torch.Tensor):
        arr = ids.detach().cpu().numpy()
    else:
        arr = np.asarray(ids)
    if arr.size == 0:
        return arr.astype(np.int64).reshape(arr.shape)
    if not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise TypeError(f"{name} must be integers, got dtype {arr.dtype}")
    return arr


def _round_up(n: int, multiple: int) -> int:
    return ((n + multiple - 1) // multiple) * multiple


class _BatchMixin:
    """Padding / truncation / batching shared by the sequence tokenizers.

    Subclasses provide ``encode(x, add_bos, add_eos, dtype=...) -> np.ndarray``, ``decode``, ``pad_token_id``,
    ``padding_side`` and ``truncation_side``.
    """

    pad_token_id: int
    padding_side: str
    truncation_side: str

    def batch_encode(
        self,
        seqs: Iterable[Any],
        max_length: Optional[int] = None,
        padding: Union[bool, str] = True,
        truncation: bool = False,
        return_tensors: Optional[str] = "pt",
        add_bos: bool = False,
        add_eos: bool = False,
        pad_to_multiple_of: Optional[int] = None,
        **encode_kwargs: Any,
    ) -> Dict[str, Any]:
        """Encode several sequences; returns ``{"input_ids", "attention_mask"}``.

        padding: ``True`` / ``"longest"`` pads to the longest sequence (capped by ``max_length``),
        ``"max_length"`` pads to ``max_length``, ``False`` / ``"do_not_pad"`` leaves lengths ragged (only with
        ``return_tensors=None``).  PAD goes on ``self.padding_side`` and the attention mask is 0 there.
        truncation: with ``max_length``, cut longer sequences on ``self.truncation_side`` (special tokens
        included in the count); without it a longer sequence raises :class:`ValueError`.
        return_tensors: ``"pt"`` (torch.long), ``"np"`` (int64) or ``None`` (lists of ints).
        ``encode_kwargs`` go to :meth:`encode` (e.g. ``source=``).
        """
        if return_tensors not in ("pt", "np", None):
            raise ValueError(f"return_tensors must be 'pt', 'np' or None, got {return_tensors!r}")
        if padding is True:
            padding = "longest"
        elif padding is False:
            padding = "do_not_pad"
        if padding not in ("longest", "max_length", "do_not_pad"):
            raise ValueError(f"padding must be True, False, 'longest', 'max_length' or 'do_not_pad', got {padding!r}")
        if padding == "max_length" and max_length is None:
            raise ValueError("padding='max_length' needs max_length")
        if max_length is not None and max_length < 0:
            raise ValueError(f"max_length must be >= 0, got {max_length}")

        encoded: List[np.ndarray] = []
        for i, s in enumerate(seqs):
            ids = self.encode(s, add_bos=add_bos, add_eos=add_eos, dtype=np.int64, **encode_kwargs)  # type: ignore[attr-defined]
            if max_length is not None and len(ids) > max_length:
                if not truncation:
                    raise ValueError(
                        f"sequence {i} has {len(ids)} tokens > max_length={max_length}; pass truncation=True"
                    )
                ids = ids[:max_length] if self.truncation_side == "right" else ids[len(ids) - max_length:]
            encoded.append(ids)

        if padding == "do_not_pad":
            if return_tensors is not None and len({len(e) for e in encoded}) > 1:
                raise ValueError("sequences have different lengths: use padding=True or return_tensors=None")
            target = None
        elif padding == "max_length":
            target = int(max_length)  # type: ignore[arg-type]
        else:
            target = max((len(e) for e in encoded), default=0)
        if target is not None and pad_to_multiple_of:
            target = _round_up(target, pad_to_multiple_of)

        if target is None:
            ids_list = [e.tolist() for e in encoded]
            masks = [[1] * len(e) for e in encoded]
            if return_tensors is None:
                return {"input_ids": ids_list, "attention_mask": masks}
            input_ids = np.stack(encoded) if encoded else np.zeros((0, 0), np.int64)
            attention = np.ones_like(input_ids)
        else:
            n = len(encoded)
            input_ids = np.full((n, target), self.pad_token_id, dtype=np.int64)
            attention = np.zeros((n, target), dtype=np.int64)
            for i, e in enumerate(encoded):
                L = len(e)
                if L == 0:
                    continue
                if self.padding_side == "left":
                    input_ids[i, target - L:] = e
                    attention[i, target - L:] = 1
                else:
                    input_ids[i, :L] = e
                    attention[i, :L] = 1
            if return_tensors is None:
                return {"input_ids": input_ids.tolist(), "attention_mask": attention.tolist()}
        if return_tensors == "pt":
            return {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(attention)}
        return {"input_ids": input_ids, "attention_mask": attention}

    def batch_decode(self, batch: Any, skip_special_tokens: bool = True, **kwargs: Any) -> List[Any]:
        """Decode each row of a 2-D array / tensor or each item of a list of sequences."""
        if isinstance(batch, torch.Tensor):
            batch = batch.detach().cpu().numpy()
        if isinstance(batch, np.ndarray):
            if batch.ndim != 2:
                raise ValueError(f"batch_decode expects a 2-D batch, got shape {batch.shape}")
            rows: Iterable[Any] = list(batch)
        else:
            rows = batch
        return [self.decode(r, skip_special_tokens=skip_special_tokens, **kwargs) for r in rows]  # type: ignore[attr-defined]


def _check_side(name: str, value: str) -> str:
    if value not in ("left", "right"):
        raise ValueError(f"{name} must be 'left' or 'right', got {value!r}")
    return value
