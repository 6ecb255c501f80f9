"""The model class a config describes: Mamba or Transformer++, causal LM or classifier.

So that a training or evaluation pipeline swaps the backbone by swapping the config (a preset name, a
``config.json``) and nothing else.
"""
from __future__ import annotations

from mamba_bio_audio.config import MambaConfig, TransformerConfig
from mamba_bio_audio.models.classification import MambaForSequenceClassification
from mamba_bio_audio.models.lm import MambaLMHeadModel
from mamba_bio_audio.models.transformer import TransformerForSequenceClassification, TransformerLMHeadModel

__all__ = ["TASKS", "model_class"]

TASKS = ("causal_lm", "classification")
_CLASSES = {
    ("mamba", "causal_lm"): MambaLMHeadModel,
    ("mamba", "classification"): MambaForSequenceClassification,
    ("transformer", "causal_lm"): TransformerLMHeadModel,
    ("transformer", "classification"): TransformerForSequenceClassification,
}


def model_class(config: MambaConfig | TransformerConfig, task: str = "causal_lm") -> type:
    """The class to build ``config`` for ``task`` ("causal_lm" or "classification"): ``model_class(config)(config)``,
    ``model_class(config).from_pretrained(folder)``."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}; got {task!r}")
    return _CLASSES[(config.architecture, task)]
