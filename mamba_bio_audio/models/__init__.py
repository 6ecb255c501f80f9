"""Models with ``mamba_ssm``'s names and state-dict keys: one backbone (:class:`MixerModel`, built from a block
factory: Mamba, BiMamba, RCPS and attention stacks), heads over any backbone (:class:`CausalLM`,
:class:`SequenceClassifier`, the Caduceus masked LM) on one :class:`PreTrainedModel` base, SaShiMi, and the one
registry of them all (:mod:`.factory`)."""
from mamba_bio_audio.models.base import PreTrainedModel, init_weights
from mamba_bio_audio.models.caduceus import Caduceus, CaduceusForMaskedLM, CaduceusForSequenceClassification
from mamba_bio_audio.models.caduceus_config import CaduceusConfig
from mamba_bio_audio.models.classification import (MambaForSequenceClassification, SequenceClassifier,
                                                   SequenceClassifierOutput)
from mamba_bio_audio.models.factory import MIXERS, load_pretrained, model_class
from mamba_bio_audio.models.lm import CausalLM, CausalLMOutput, MambaLMHeadModel
from mamba_bio_audio.models.mixer_model import MixerModel, create_block, param_groups
from mamba_bio_audio.models.sashimi import SashimiLM, SashimiState
from mamba_bio_audio.models.sashimi_config import SashimiConfig

__all__ = [
    "Caduceus",
    "CaduceusConfig",
    "CaduceusForMaskedLM",
    "CaduceusForSequenceClassification",
    "CausalLM",
    "CausalLMOutput",
    "MIXERS",
    "MambaForSequenceClassification",
    "MambaLMHeadModel",
    "MixerModel",
    "PreTrainedModel",
    "SashimiConfig",
    "SashimiLM",
    "SashimiState",
    "SequenceClassifier",
    "SequenceClassifierOutput",
    "create_block",
    "init_weights",
    "load_pretrained",
    "model_class",
    "param_groups",
]
