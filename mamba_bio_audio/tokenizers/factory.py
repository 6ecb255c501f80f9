"""Rebuild a tokenizer from the ``config()`` dict stored in a dataset manifest."""
from __future__ import annotations

from typing import Any, Dict, Union

from mamba_bio_audio.tokenizers.byte import ByteTokenizer
from mamba_bio_audio.tokenizers.mu_law import MuLawTokenizer
from mamba_bio_audio.tokenizers.nucleotide import DNA_VOCAB, NucleotideTokenizer


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
