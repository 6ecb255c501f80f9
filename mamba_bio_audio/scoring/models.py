"""Which models the scorers take: DNA models (the 12-token HyenaDNA/Caduceus vocabulary), causal (next-token
logits, Mamba LMs carry state between windows) or masked (Caduceus: the logits of every position's own token)."""
from __future__ import annotations

import torch

from mamba_bio_audio.tokenizers.nucleotide import DNA_VOCAB

__all__ = ["check_dna_model", "is_causal", "device_of"]


def check_dna_model(model: torch.nn.Module, name: str = "the model") -> None:
    """ValueError unless ``model`` is a DNA language model (causal LM or Caduceus masked LM over our DNA ids)."""
    config = getattr(model, "config", None)
    vocab = getattr(config, "vocab_size", None)
    if vocab not in range(len(DNA_VOCAB), 17):  # 12 DNA ids, padded up to 16 by some published folders
        raise ValueError(f"{name}: its tokenizer is not DNA (vocabulary of {vocab} tokens, not the {len(DNA_VOCAB)} "
                         f"DNA tokens [CLS] ... A C G T N): score and vep need a DNA language model")
    head = getattr(model, "head_type", None)
    if head not in ("causal_lm", "masked_lm"):
        raise ValueError(f"{name}: a {head} model gives no per-base predictions; score and vep need a causal LM or a "
                         f"masked LM (Caduceus)")


def is_causal(model: torch.nn.Module) -> bool:
    """True for next-token models (position t predicts token t + 1), False for masked LMs."""
    return getattr(model, "head_type", None) == "causal_lm"


def device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device
