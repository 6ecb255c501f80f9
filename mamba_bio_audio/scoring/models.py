"""Which models the scorers take: DNA models (the 12-token HyenaDNA/Caduceus vocabulary), causal (next-token
logits, Mamba LMs carry state between windows) or masked (Caduceus: the logits of every position's own token)."""
from __future__ import annotations

import torch

from mamba_bio_audio.embedding import check_dna_model

__all__ = ["check_dna_lm", "is_causal", "device_of"]


def check_dna_lm(model: torch.nn.Module, name: str = "the model") -> None:
    """ValueError unless ``model`` is a DNA language model (causal LM or Caduceus masked LM over our DNA ids)."""
    check_dna_model(model, name)
    head = getattr(model, "head_type", None)
    if head not in ("causal_lm", "masked_lm"):
        raise ValueError(f"{name}: a {head} model gives no per-base predictions; score and vep need a causal LM or a "
                         f"masked LM (Caduceus)")


def is_causal(model: torch.nn.Module) -> bool:
    """True for next-token models (position t predicts token t + 1), False for masked LMs."""
    return getattr(model, "head_type", None) == "causal_lm"


def device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device
