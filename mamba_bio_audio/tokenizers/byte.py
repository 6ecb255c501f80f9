"""Byte-level tokenizer: byte value b is id b (0..255), specials ``[PAD] 256  [BOS] 257  [EOS] 258``."""
from __future__ import annotations

import os
from typing import Any, Dict, Tuple, Union

import numpy as np

from mamba_bio_audio.tokenizers._batch import ArrayLike, _as_int_array, _BatchMixin, _check_side, _round_up


class ByteTokenizer(_BatchMixin):
    """Byte-level tokenizer: id b is byte b (0..255); specials ``[PAD] 256``, ``[BOS] 257``, ``[EOS] 258``.

    ``encode`` takes bytes-like objects, ``str`` (encoded with ``encoding``, utf-8 by default) or a uint8
    array; :meth:`encode_file` reads a file.  ``decode`` returns ``bytes`` (exact inverse), ``decode_text``
    a ``str``.  Default padding side is ``"right"``.
    """

    pad_token, bos_token, eos_token = "[PAD]", "[BOS]", "[EOS]"
    pad_token_id, bos_token_id, eos_token_id = 256, 257, 258
    num_bytes = 256
    vocab_size = 259
    special_token_ids: Tuple[int, ...] = (256, 257, 258)

    def __init__(self, encoding: str = "utf-8", padding_side: str = "right", truncation_side: str = "right") -> None:
        self.encoding = encoding
        self.padding_side = _check_side("padding_side", padding_side)
        self.truncation_side = _check_side("truncation_side", truncation_side)

    def __len__(self) -> int:
        return self.vocab_size

    def padded_vocab_size(self, multiple: int = 8) -> int:
        return _round_up(self.vocab_size, multiple)

    def get_vocab(self) -> Dict[str, int]:
        vocab = {f"<0x{b:02X}>": b for b in range(256)}
        vocab.update({self.pad_token: 256, self.bos_token: 257, self.eos_token: 258})
        return vocab

    def config(self) -> Dict[str, Any]:
        return {"type": "byte", "encoding": self.encoding, "pad_token_id": 256, "bos_token_id": 257,
                "eos_token_id": 258, "vocab_size": 259, "padding_side": self.padding_side,
                "truncation_side": self.truncation_side}

    def __repr__(self) -> str:
        return f"ByteTokenizer(encoding={self.encoding!r}, padding_side={self.padding_side!r})"

    def encode(self, data: Union[str, bytes, bytearray, memoryview, np.ndarray], add_bos: bool = False,
               add_eos: bool = False, *, dtype: Any = np.int64) -> np.ndarray:
        """bytes / str / uint8 array -> ids.  With specials the dtype must hold 258 (not uint8)."""
        if isinstance(data, str):
            raw = np.frombuffer(data.encode(self.encoding), dtype=np.uint8)
        elif isinstance(data, (bytes, bytearray, memoryview)):
            raw = np.frombuffer(data, dtype=np.uint8)
        elif isinstance(data, np.ndarray) and data.dtype == np.uint8:
            raw = data.reshape(-1)
        else:
            raise TypeError(f"encode expects str, bytes or a uint8 numpy array, got {type(data).__name__}")
        if not (add_bos or add_eos):
            return raw.astype(dtype, copy=True)
        if np.dtype(dtype).itemsize < 2 and np.issubdtype(np.dtype(dtype), np.integer):
            raise ValueError("special tokens (ids 256..258) do not fit in a 1-byte dtype")
        out = np.empty(raw.size + int(add_bos) + int(add_eos), dtype=dtype)
        start = 0
        if add_bos:
            out[0] = self.bos_token_id
            start = 1
        out[start:start + raw.size] = raw
        if add_eos:
            out[-1] = self.eos_token_id
        return out

    def encode_file(self, path: Union[str, os.PathLike], add_bos: bool = False, add_eos: bool = False, *,
                    dtype: Any = np.int64) -> np.ndarray:
        with open(path, "rb") as f:
            return self.encode(f.read(), add_bos=add_bos, add_eos=add_eos, dtype=dtype)

    def decode(self, ids: ArrayLike, skip_special_tokens: bool = True) -> bytes:
        """ids -> bytes.  Specials are dropped; with ``skip_special_tokens=False`` a special raises ValueError
        (bytes cannot represent it).  Ids outside 0..258 raise ValueError."""
        arr = _as_int_array(ids).reshape(-1)
        if arr.size == 0:
            return b""
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi >= self.vocab_size:
            bad = int(np.flatnonzero((arr < 0) | (arr >= self.vocab_size))[0])
            raise ValueError(f"id {int(arr[bad])} at position {bad} is outside the vocabulary 0..{self.vocab_size - 1}")
        if hi >= self.num_bytes:
            special = arr >= self.num_bytes
            if not skip_special_tokens:
                bad = int(np.flatnonzero(special)[0])
                raise ValueError(f"special token id {int(arr[bad])} at position {bad} has no byte value; "
                                 f"use skip_special_tokens=True")
            arr = arr[~special]
        return arr.astype(np.uint8).tobytes()

    def decode_text(self, ids: ArrayLike, errors: str = "replace") -> str:
        """ids -> ``str`` (specials dropped, bytes decoded with ``self.encoding``)."""
        return self.decode(ids).decode(self.encoding, errors=errors)
