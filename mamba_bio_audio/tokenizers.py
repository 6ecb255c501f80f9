"""Tokenizers for DNA, bytes and audio (stdlib, numpy and torch only).

Three vocabularies, all fast enough for whole genomes / hours of audio (vectorised numpy lookups, no Python
loop per symbol):

:class:`NucleotideTokenizer`
    Character-level DNA with the HyenaDNA / Caduceus ids::

        [CLS] 0  [SEP] 1  [BOS] 2  [MASK] 3  [PAD] 4  [RESERVED] 5  [UNK] 6  A 7  C 8  G 9  T 10  N 11

    ``vocab_size`` is 12; models pad the embedding to 16 (``pad_vocab_size_multiple=8``, see
    :meth:`NucleotideTokenizer.padded_vocab_size`).  ``add_eos`` appends ``[SEP]`` (id 1) as HyenaDNA's
    ``HG38Dataset`` does; ``add_bos`` prepends ``[BOS]`` (id 2).  Input policies:

    * ``case="upper"`` (default): soft-masked (lowercase, repeat) bases are upper-cased; ``case="strict"``:
      a lowercase letter that would otherwise be valid raises :class:`ValueError`.
    * ``iupac="n"`` (default): the IUPAC ambiguity codes ``R Y S W K M B D H V`` become ``N``; ``"unk"``: they
      become ``[UNK]``; ``"error"``: :class:`ValueError`.
    * ``u_to_t=False`` (default): RNA ``U`` is *not* a DNA symbol and goes through the ``unknown`` policy;
      ``u_to_t=True`` reads ``U``/``u`` as ``T``.
    * ``unknown="error"`` (default): any other character (gap ``-``, ``*``, digits, whitespace, newline,
      non-ASCII, ...) raises :class:`ValueError` naming the 0-based position and the character (and the
      ``source`` / ``line`` passed to :meth:`~NucleotideTokenizer.encode`); ``"unk"`` maps it to ``[UNK]``;
      ``"n"`` maps it to ``N``.

    Complement map A<->T, C<->G, N->N, specials (and any id outside the vocabulary) to themselves.

:class:`ByteTokenizer`
    Byte-level text or arbitrary files.  Layout: **byte value b is id b** (0..255), so a ``uint8`` token
    memmap is literally the file's bytes; the specials come after: ``[PAD] 256  [BOS] 257  [EOS] 258``;
    ``vocab_size`` 259 (pad the embedding to 264 with multiple 8).

Mu-law / linear 8-bit audio (SaShiMi's quantisation, ``state-spaces/s4`` ``src/dataloaders/audio.py``)
    :func:`mu_law_encode`, :func:`mu_law_decode`, :func:`linear_encode`, :func:`linear_decode` for numpy arrays
    and torch tensors (same container type out as in), :data:`MU_LAW_START_TOKEN` = 128, and the
    :class:`MuLawTokenizer` bundle (``vocab_size`` 256, ``start_token_id`` 128).
"""
from __future__ import annotations

import math
import os
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

__all__ = [
    "NucleotideTokenizer",
    "ByteTokenizer",
    "MuLawTokenizer",
    "mu_law_encode",
    "mu_law_decode",
    "linear_encode",
    "linear_decode",
    "MU_LAW_START_TOKEN",
    "DNA_SPECIAL_TOKENS",
    "DNA_VOCAB",
    "tokenizer_from_config",
]

ArrayLike = Union[np.ndarray, torch.Tensor, Sequence[int]]

# --------------------------------------------------------------------------------------------------------------
# shared helpers
# --------------------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------------------
# DNA
# --------------------------------------------------------------------------------------------------------------

DNA_SPECIAL_TOKENS: Tuple[str, ...] = ("[CLS]", "[SEP]", "[BOS]", "[MASK]", "[PAD]", "[RESERVED]", "[UNK]")
DNA_CHARACTERS: Tuple[str, ...] = ("A", "C", "G", "T", "N")
DNA_VOCAB: Dict[str, int] = {tok: i for i, tok in enumerate(DNA_SPECIAL_TOKENS + DNA_CHARACTERS)}
IUPAC_AMBIGUITY = "RYSWKMBDHV"
# complement of upper- and lowercase IUPAC DNA (and U -> A); anything else unchanged
_DNA_COMPLEMENT_PAIRS = {"A": "T", "T": "A", "C": "G", "G": "C", "N": "N", "U": "A",
                         "R": "Y", "Y": "R", "S": "S", "W": "W", "K": "M", "M": "K",
                         "B": "V", "V": "B", "D": "H", "H": "D"}
_STR_COMPLEMENT_TABLE = str.maketrans(
    {**{k: v for k, v in _DNA_COMPLEMENT_PAIRS.items()},
     **{k.lower(): v.lower() for k, v in _DNA_COMPLEMENT_PAIRS.items()}}
)
_BYTES_COMPLEMENT_TABLE = bytes.maketrans(
    "".join(list(_DNA_COMPLEMENT_PAIRS) + [k.lower() for k in _DNA_COMPLEMENT_PAIRS]).encode(),
    "".join(list(_DNA_COMPLEMENT_PAIRS.values()) + [v.lower() for v in _DNA_COMPLEMENT_PAIRS.values()]).encode(),
)

# codes of the encode lookup table that are not token ids (all >= 128 so one max() finds them)
_BAD = 255
_BAD_KIND_UNKNOWN, _BAD_KIND_LOWER, _BAD_KIND_IUPAC = "unknown", "lowercase", "iupac"


class NucleotideTokenizer(_BatchMixin):
    """Character tokenizer for DNA with the HyenaDNA / Caduceus ids (see the module docstring).

    Args:
        case: ``"upper"`` (soft-masked lowercase read as uppercase) or ``"strict"`` (lowercase is an error).
        iupac: ``"n"`` (ambiguity codes R Y S W K M B D H V -> N), ``"unk"`` (-> [UNK]) or ``"error"``.
        unknown: ``"error"`` (ValueError with position and character), ``"unk"`` (-> [UNK]) or ``"n"`` (-> N).
        u_to_t: read RNA ``U`` as ``T``; when False ``U`` is an unknown character.
        padding_side: ``"left"`` (HyenaDNA default) or ``"right"``.
        truncation_side: ``"right"`` (keep the start) or ``"left"`` (keep the end).
        model_max_length: informational, as in the HuggingFace tokenizers.

    ``encode`` returns a numpy array (``dtype`` int64 by default; pass ``dtype=np.uint8`` to write token
    memmaps without the widening copy).  ``encode`` of 10 Mbp of ASCII text takes about 10 ms to uint8 and
    30 ms to int64 on one CPU core (~1000 / ~300 Mbp/s; ``tests/test_tokenizers.py::test_encode_throughput``).
    """

    cls_token, sep_token, bos_token, mask_token, pad_token, reserved_token, unk_token = DNA_SPECIAL_TOKENS
    eos_token = sep_token
    cls_token_id, sep_token_id, bos_token_id, mask_token_id, pad_token_id, reserved_token_id, unk_token_id = range(7)
    eos_token_id = sep_token_id
    a_token_id, c_token_id, g_token_id, t_token_id, n_token_id = 7, 8, 9, 10, 11
    vocab_size = 12
    special_token_ids: Tuple[int, ...] = tuple(range(7))

    _CASES = ("upper", "strict")
    _IUPAC = ("n", "unk", "error")
    _UNKNOWN = ("error", "unk", "n")

    def __init__(
        self,
        case: str = "upper",
        iupac: str = "n",
        unknown: str = "error",
        u_to_t: bool = False,
        padding_side: str = "left",
        truncation_side: str = "right",
        model_max_length: Optional[int] = None,
    ) -> None:
        if case not in self._CASES:
            raise ValueError(f"case must be one of {self._CASES}, got {case!r}")
        if iupac not in self._IUPAC:
            raise ValueError(f"iupac must be one of {self._IUPAC}, got {iupac!r}")
        if unknown not in self._UNKNOWN:
            raise ValueError(f"unknown must be one of {self._UNKNOWN}, got {unknown!r}")
        self.case = case
        self.iupac = iupac
        self.unknown = unknown
        self.u_to_t = bool(u_to_t)
        self.padding_side = _check_side("padding_side", padding_side)
        self.truncation_side = _check_side("truncation_side", truncation_side)
        self.model_max_length = model_max_length
        self._lut, self._bad_kind = self._build_lut()
        self._lut_bytes = self._lut.tobytes()
        # id -> ASCII byte for decode (specials -> 0, filtered or rendered separately)
        self._id_to_byte = np.zeros(self.vocab_size, dtype=np.uint8)
        for ch in DNA_CHARACTERS:
            self._id_to_byte[DNA_VOCAB[ch]] = ord(ch)
        self._id_to_token = np.array(DNA_SPECIAL_TOKENS + DNA_CHARACTERS, dtype=object)
        comp = np.arange(self.vocab_size, dtype=np.int64)
        for a, b in (("A", "T"), ("C", "G"), ("G", "C"), ("T", "A"), ("N", "N")):
            comp[DNA_VOCAB[a]] = DNA_VOCAB[b]
        self._complement = comp
        self._complement.setflags(write=False)
        self._complement_t = torch.tensor(comp.tolist(), dtype=torch.long)

    # ---------------------------------------------------------------------------------------------- vocabulary
    def _build_lut(self) -> Tuple[np.ndarray, Dict[int, str]]:
        lut = np.full(256, _BAD, dtype=np.uint8)
        kind: Dict[int, str] = {b: _BAD_KIND_UNKNOWN for b in range(256)}

        def put(ch: str, tid: Optional[int], bad_kind: str) -> None:
            for c, is_lower in ((ch, False), (ch.lower(), True)):
                b = ord(c)
                if is_lower and self.case == "strict":
                    lut[b], kind[b] = _BAD, _BAD_KIND_LOWER
                elif tid is None:
                    lut[b], kind[b] = _BAD, bad_kind
                else:
                    lut[b] = tid

        for ch in DNA_CHARACTERS:
            put(ch, DNA_VOCAB[ch], _BAD_KIND_UNKNOWN)
        iupac_id = {"n": self.n_token_id, "unk": self.unk_token_id, "error": None}[self.iupac]
        for ch in IUPAC_AMBIGUITY:
            put(ch, iupac_id, _BAD_KIND_IUPAC)
        if self.u_to_t:
            put("U", self.t_token_id, _BAD_KIND_UNKNOWN)
        unknown_id = {"unk": self.unk_token_id, "n": self.n_token_id, "error": None}[self.unknown]
        if unknown_id is not None:
            for b in range(256):
                if lut[b] == _BAD and kind[b] == _BAD_KIND_UNKNOWN:
                    lut[b] = unknown_id
        lut.setflags(write=False)
        return lut, kind

    def __len__(self) -> int:
        return self.vocab_size

    def padded_vocab_size(self, multiple: int = 8) -> int:
        """Embedding size the models use: ``vocab_size`` rounded up to ``multiple`` (16 for 8)."""
        return _round_up(self.vocab_size, multiple)

    def get_vocab(self) -> Dict[str, int]:
        return dict(DNA_VOCAB)

    def token_to_id(self, token: str) -> int:
        return DNA_VOCAB[token]

    def id_to_token(self, tid: int) -> str:
        return str(self._id_to_token[int(tid)])

    def config(self) -> Dict[str, Any]:
        """JSON-able description (for dataset manifests); :func:`tokenizer_from_config` rebuilds it."""
        return {"type": "nucleotide", "vocab": self.get_vocab(), "case": self.case, "iupac": self.iupac,
                "unknown": self.unknown, "u_to_t": self.u_to_t, "padding_side": self.padding_side,
                "truncation_side": self.truncation_side}

    def __repr__(self) -> str:
        return (f"NucleotideTokenizer(case={self.case!r}, iupac={self.iupac!r}, unknown={self.unknown!r}, "
                f"u_to_t={self.u_to_t}, padding_side={self.padding_side!r})")

    # ---------------------------------------------------------------------------------------------- encode
    @staticmethod
    def _to_codes(seq: Any) -> Union[bytes, np.ndarray]:
        """Sequence -> one uint8 code per character: ``bytes`` on the fast paths, else a uint8 array
        (non-ASCII characters -> 0xFF, which is always an unknown character)."""
        if isinstance(seq, str):
            if seq.isascii():
                return seq.encode("ascii")
            cp = np.frombuffer(seq.encode("utf-32-le"), dtype="<u4")
            return np.minimum(cp, 0xFF).astype(np.uint8)
        if isinstance(seq, bytes):
            return seq
        if isinstance(seq, (bytearray, memoryview)):
            return bytes(seq)
        if isinstance(seq, np.ndarray) and seq.dtype == np.uint8:
            return seq.reshape(-1).tobytes()
        raise TypeError(f"encode expects str, bytes or a uint8 numpy array, got {type(seq).__name__}")

    def encode(
        self,
        seq: Union[str, bytes, bytearray, memoryview, np.ndarray],
        add_bos: bool = False,
        add_eos: bool = False,
        *,
        dtype: Any = np.int64,
        source: Optional[str] = None,
        line: Optional[int] = None,
    ) -> np.ndarray:
        """DNA text -> ids (numpy array of ``dtype``).  ``add_bos`` prepends [BOS]=2, ``add_eos`` appends
        [SEP]=1.  ``source`` / ``line`` only decorate error messages (e.g. ``source="chr1.fa", line=12``)."""
        codes = self._to_codes(seq)
        # byte -> id lookup; bytes.translate runs at ~1 GB/s, several times faster than numpy fancy indexing
        if isinstance(codes, bytes):
            ids = np.frombuffer(codes.translate(self._lut_bytes), dtype=np.uint8)
            codes = np.frombuffer(codes, dtype=np.uint8)
        else:
            ids = self._lut.take(codes)
        if ids.size and int(ids.max()) == _BAD:  # invalid characters map to _BAD
            self._raise_bad(seq, codes, ids, source, line)
        if not (add_bos or add_eos):
            return ids.astype(dtype, copy=True)  # always a fresh, writable array
        out = np.empty(ids.size + int(add_bos) + int(add_eos), dtype=dtype)
        if add_bos:
            out[0] = self.bos_token_id
        out[int(add_bos):int(add_bos) + ids.size] = ids
        if add_eos:
            out[-1] = self.eos_token_id
        return out

    def _raise_bad(self, seq: Any, codes: np.ndarray, ids: np.ndarray, source: Optional[str],
                   line: Optional[int]) -> None:
        bad = np.flatnonzero(ids == _BAD)
        pos = int(bad[0])
        if isinstance(seq, str):
            ch = seq[pos]
        else:
            ch = chr(int(codes[pos])) if codes[pos] < 0x80 else f"\\x{int(codes[pos]):02x}"
        kind = self._bad_kind[int(codes[pos])] if int(codes[pos]) < 0x80 else _BAD_KIND_UNKNOWN
        where = ""
        if source is not None and line is not None:
            where = f"{source}, line {line}: "
        elif source is not None:
            where = f"{source}: "
        elif line is not None:
            where = f"line {line}: "
        more = f" ({len(bad) - 1} more invalid characters follow)" if len(bad) > 1 else ""
        if kind == _BAD_KIND_LOWER:
            what = f"lowercase (soft-masked) character {ch!r} at position {pos} (0-based) with case='strict'; " \
                   f"use case='upper' to read it as uppercase"
        elif kind == _BAD_KIND_IUPAC:
            what = f"IUPAC ambiguity code {ch!r} at position {pos} (0-based) with iupac='error'; " \
                   f"use iupac='n' to map it to N"
        else:
            what = f"unknown character {ch!r} at position {pos} (0-based); " \
                   f"use unknown='unk' or unknown='n' to map such characters"
        raise ValueError(where + what + more)

    def __call__(self, seqs: Any, **kwargs: Any) -> Any:
        """``str``/bytes -> :meth:`encode`; a list of them -> :meth:`batch_encode`."""
        if isinstance(seqs, (str, bytes, bytearray, memoryview, np.ndarray)):
            return self.encode(seqs, **kwargs)
        return self.batch_encode(seqs, **kwargs)

    # ---------------------------------------------------------------------------------------------- decode
    def decode(self, ids: ArrayLike, skip_special_tokens: bool = True) -> str:
        """ids -> string.  Special tokens are dropped, or rendered as ``[PAD]`` etc. when
        ``skip_special_tokens=False``.  An id outside 0..11 raises ValueError."""
        arr = _as_int_array(ids).reshape(-1)
        if arr.size == 0:
            return ""
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi >= self.vocab_size:
            bad = int(np.flatnonzero((arr < 0) | (arr >= self.vocab_size))[0])
            raise ValueError(f"id {int(arr[bad])} at position {bad} is outside the vocabulary 0..{self.vocab_size - 1}")
        is_char = arr >= self.a_token_id
        if skip_special_tokens:
            return self._id_to_byte.take(arr[is_char]).tobytes().decode("ascii")
        if bool(is_char.all()):
            return self._id_to_byte.take(arr).tobytes().decode("ascii")
        return "".join(self._id_to_token.take(arr).tolist())

    # ---------------------------------------------------------------------------------------------- complement
    @property
    def complement_map(self) -> Dict[int, int]:
        """id -> complement id: A<->T, C<->G, N->N, specials to themselves (Caduceus' ``complement_map``)."""
        return {i: int(c) for i, c in enumerate(self._complement)}

    def complement_array(self, size: Optional[int] = None) -> np.ndarray:
        """Complement lookup as an int64 numpy array of ``size`` entries (default ``vocab_size``; the extra
        entries of a padded vocabulary map to themselves, as Caduceus pads its ``complement_map``)."""
        size = self.vocab_size if size is None else int(size)
        if size < self.vocab_size:
            raise ValueError(f"size must be >= vocab_size={self.vocab_size}")
        out = np.arange(size, dtype=np.int64)
        out[: self.vocab_size] = self._complement
        return out

    def complement_tensor(self, size: Optional[int] = None, device: Any = None) -> torch.Tensor:
        """:meth:`complement_array` as a ``torch.long`` tensor (for ``RCPSEmbedding`` / ``RCPSLMHead``)."""
        return torch.as_tensor(self.complement_array(size), dtype=torch.long, device=device)

    def complement(self, ids: Any) -> Any:
        """Complement ids element-wise (no flip).  Ids outside the vocabulary (e.g. -100 labels, ids 12..15 of
        a padded vocabulary) are left unchanged."""
        n = self.vocab_size
        if isinstance(ids, torch.Tensor):
            if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
                raise TypeError(f"ids must be an integer tensor, got {ids.dtype}")
            lut = self._complement_t.to(device=ids.device, dtype=ids.dtype)
            inside = (ids >= 0) & (ids < n)
            return torch.where(inside, lut[ids.clamp(0, n - 1).long()], ids)
        was_list = not isinstance(ids, np.ndarray)
        arr = _as_int_array(ids)
        inside = (arr >= 0) & (arr < n)
        out = np.where(inside, self._complement.take(np.clip(arr, 0, n - 1)), arr).astype(arr.dtype, copy=False)
        return out.tolist() if was_list else out

    def reverse_complement(self, ids: Any) -> Any:
        """Reverse complement of ids: flip along the last axis, then complement.  Works on lists, numpy arrays
        and torch tensors, 1-D or batched ``(..., L)``; returns the same kind.  Note that flipping a padded batch
        moves the padding to the other side (flip the attention mask too)."""
        if isinstance(ids, torch.Tensor):
            return self.complement(torch.flip(ids, dims=(-1,)))
        if isinstance(ids, np.ndarray):
            return self.complement(np.flip(ids, axis=-1))
        arr = _as_int_array(ids)
        return self.complement(np.flip(arr, axis=-1)).tolist()

    @staticmethod
    def reverse_complement_str(seq: Union[str, bytes]) -> Union[str, bytes]:
        """Reverse complement of DNA text.  Case is preserved (soft-masking survives), IUPAC codes are
        complemented (R<->Y, K<->M, B<->V, D<->H, S, W, N themselves), U -> A, anything else unchanged."""
        if isinstance(seq, (bytes, bytearray)):
            return bytes(seq).translate(_BYTES_COMPLEMENT_TABLE)[::-1]
        return seq.translate(_STR_COMPLEMENT_TABLE)[::-1]


# --------------------------------------------------------------------------------------------------------------
# bytes
# --------------------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------------------
# audio: mu-law and linear quantisation (SaShiMi)
# --------------------------------------------------------------------------------------------------------------

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


def tokenizer_from_config(cfg: Dict[str, Any]) -> Union[NucleotideTokenizer, ByteTokenizer, MuLawTokenizer]:
    """Rebuild a tokenizer from its ``config()`` dict (as stored in a dataset manifest)."""
    kind = cfg.get("type")
    if kind == "nucleotide":
        vocab = cfg.get("vocab")
        if vocab is not None and dict(vocab) != DNA_VOCAB:
            raise ValueError("manifest vocabulary differs from the HyenaDNA/Caduceus ids of this version")
        return NucleotideTokenizer(case=cfg.get("case", "upper"), iupac=cfg.get("iupac", "n"),
                                   unknown=cfg.get("unknown", "error"), u_to_t=cfg.get("u_to_t", False),
                                   padding_side=cfg.get("padding_side", "left"),
                                   truncation_side=cfg.get("truncation_side", "right"))
    if kind == "byte":
        return ByteTokenizer(encoding=cfg.get("encoding", "utf-8"), padding_side=cfg.get("padding_side", "right"),
                             truncation_side=cfg.get("truncation_side", "right"))
    if kind in ("mu-law", "linear"):
        return MuLawTokenizer(bits=cfg.get("bits", 8), quantization=cfg.get("quantization", kind),
                              normalize=cfg.get("normalize", "minmax"))
    raise ValueError(f"unknown tokenizer type {kind!r}")
