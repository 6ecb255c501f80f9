"""Models with ``mamba_ssm``'s names and state-dict keys: the backbone, the causal LM and the classifier."""
from mamba_bio_audio.models.classification import MambaForSequenceClassification, SequenceClassifierOutput
from mamba_bio_audio.models.lm import CausalLMOutput, MambaLMHeadModel, causal_lm_loss
from mamba_bio_audio.models.mixer_model import MixerModel, create_block, param_groups

__all__ = [
    "CausalLMOutput",
    "MambaForSequenceClassification",
    "MambaLMHeadModel",
    "MixerModel",
    "SequenceClassifierOutput",
    "causal_lm_loss",
    "create_block",
    "param_groups",
]
