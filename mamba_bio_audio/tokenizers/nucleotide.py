"""Character-level DNA tokenizer with the HyenaDNA / Caduceus ids, its vocabulary and complement tables
(see the :mod:`mamba_bio_audio.tokenizers` docstring for the ids and the input policies)."""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple, Union

import numpy as np
import torch

from mamba_bio_audio.tokenizers._batch import ArrayLike, _as_int_array, _BatchMixin, _check_side, _round_up

DNA_SPECIAL_TOKENS: Tuple[str, ...] = ("[CLS]", "[SEP]", "[BOS]", "[MASK]", "[PAD]", "[RESERVED]", "[UNK]")
DNA_CHARACTERS: Tuple[str, ...] = ("A", "C", "G", "T", "N")
DNA_VOCAB: Dict[str, int] = {tok: i for i, tok in enumerate(DNA_SPECIAL_TOKENS + DNA_CHARACTERS)}
BASE_IDS: Tuple[int, ...] = tuple(DNA_VOCAB[base] for base in "ACGT")  # the ids of A, C, G, T (7, 8, 9, 10)
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
    30 ms to int64 on one CPU core (~1000 / ~300 Mbp/s; ``tests/tokenizers/test_tokenizers.py::test_encode_throughput``).
    """

    cls_token, sep_token, bos_token, mask_token, pad_token, reserved_token, unk_token = DNA_SPECIAL_TOKENS
    eos_token = sep_token
    cls_token_id, sep_token_id, bos_token_id, mask_token_id, pad_token_id, reserved_token_id, unk_token_id = range(7)
    eos_token_id = sep_token_id
    a_token_id, c_token_id, g_token_id, t_token_id, n_token_id = (DNA_VOCAB[c] for c in DNA_CHARACTERS)
    vocab_size = 12
    special_token_ids: Tuple[int, ...] = tuple(range(7))
    rejected_byte_id = _BAD  #: :meth:`byte_lookup` entry of a byte that :meth:`encode` rejects (not a token id)

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

    def byte_lookup(self) -> np.ndarray:
        """The byte -> token id table that :meth:`encode` applies: a read-only ``(256,)`` uint8 array.

        Entry ``b`` is the id that ``encode(bytes([b]))`` returns under this tokenizer's ``case``, ``iupac``,
        ``unknown`` and ``u_to_t`` policies, or the sentinel :attr:`rejected_byte_id` (255; ids are 0..11, so
        ``table.max() == 255`` finds rejected input) where ``encode`` raises :class:`ValueError` for that byte:
        a lowercase letter with ``case="strict"``, an IUPAC ambiguity code with ``iupac="error"``, any other
        byte (bytes >= 0x80 included) with ``unknown="error"``.  For bulk conversion, e.g.
        ``data.translate(table.tobytes())``; :meth:`encode` gives the error message for a rejected byte.
        """
        return self._lut

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
