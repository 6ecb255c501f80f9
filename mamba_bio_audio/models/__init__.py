"""Models with ``mamba_ssm``'s names and state-dict keys (the backbone, the causal LM, the classifier), the
Transformer++ baseline, SaShiMi, and the one registry and loader of them all (:mod:`.factory`)."""
from mamba_bio_audio.models.caduceus import Caduceus, CaduceusForMaskedLM, CaduceusForSequenceClassification
from mamba_bio_audio.models.caduceus_config import CaduceusConfig
from mamba_bio_audio.models.classification import MambaForSequenceClassification, SequenceClassifierOutput
from mamba_bio_audio.models.factory import load_pretrained, model_class
from mamba_bio_audio.models.lm import CausalLMOutput, MambaLMHeadModel, causal_lm_loss
from mamba_bio_audio.models.mixer_model import MixerModel, create_block, param_groups
from mamba_bio_audio.models.sashimi import SashimiLM, SashimiState
from mamba_bio_audio.models.sashimi_config import SashimiConfig

__all__ = [
    "Caduceus",
    "CaduceusConfig",
    "CaduceusForMaskedLM",
    "CaduceusForSequenceClassification",
    "CausalLMOutput",
    "MambaForSequenceClassification",
    "MambaLMHeadModel",
    "MixerModel",
    "SashimiConfig",
    "SashimiLM",
    "SashimiState",
    "SequenceClassifierOutput",
    "causal_lm_loss",
    "create_block",
    "load_pretrained",
    "model_class",
    "param_groups",
]
