"""The one registry of model classes: (architecture, head type) -> class, and the loader built on it.

Architectures are named by the config classes (``MambaConfig.architecture == "mamba"``, "transformer",
"sashimi"); head types by the model classes (``head_type``: "causal_lm", "classification"). A model folder's
``config.json`` carries both (:func:`mamba_bio_audio.pretrained.save_pretrained` writes them; upstream Mamba
folders have neither and read as a Mamba causal LM), so :func:`load_pretrained` builds whatever a folder holds.
Mixers are registered by the name ``ssm_cfg["layer"]`` gives them (:data:`MIXERS`, default "Mamba1"): a new
mixer is one class and one entry there, and every Mamba head (LM, classifier), training and sampling use it.
"""
from __future__ import annotations

from collections.abc import Mapping

from mamba_bio_audio.pretrained import HEAD_KEY, read_config_json
from mamba_bio_audio.config import ConfigBase, MambaConfig, TransformerConfig, read_preset
from mamba_bio_audio.models.caduceus import CaduceusForMaskedLM, CaduceusForSequenceClassification
from mamba_bio_audio.models.caduceus_config import CaduceusConfig
from mamba_bio_audio.models.classification import MambaForSequenceClassification
from mamba_bio_audio.models.lm import MambaLMHeadModel
from mamba_bio_audio.models.mixer_model import MIXERS
from mamba_bio_audio.models.sashimi import SashimiLM
from mamba_bio_audio.models.sashimi_config import SashimiConfig
from mamba_bio_audio.models.transformer import TransformerForSequenceClassification, TransformerLMHeadModel

__all__ = ["ARCHITECTURES", "HEAD_TYPES", "MIXERS", "config_class", "config_from_dict", "folder_spec", "load_preset",
           "load_pretrained", "model_class"]

_CONFIGS: dict[str, type[ConfigBase]] = {
    cls.architecture: cls for cls in (MambaConfig, TransformerConfig, SashimiConfig, CaduceusConfig)}
ARCHITECTURES = tuple(_CONFIGS)
_CLASSES = {
    (cls.config_class.architecture, cls.head_type): cls
    for cls in (MambaLMHeadModel, MambaForSequenceClassification, TransformerLMHeadModel,
                TransformerForSequenceClassification, SashimiLM, CaduceusForMaskedLM,
                CaduceusForSequenceClassification)
}
HEAD_TYPES = tuple(dict.fromkeys(head for _, head in _CLASSES))


def config_class(architecture: str) -> type[ConfigBase]:
    """The config dataclass of ``architecture``."""
    if architecture not in _CONFIGS:
        raise ValueError(f"architecture must be one of {', '.join(ARCHITECTURES)}; got {architecture!r}")
    return _CONFIGS[architecture]


def config_from_dict(values: Mapping) -> ConfigBase:
    """The config of the class ``values["architecture"]`` names (default "mamba"): ``config.json`` contents, preset
    YAML."""
    return config_class(values.get("architecture", MambaConfig.architecture)).from_dict(values)


def load_preset(name: str) -> ConfigBase:
    """The config of ``mamba_bio_audio/configs/model/<name>.yaml``, of the class its ``architecture`` names."""
    return config_from_dict(read_preset("model", name))


def model_class(config: ConfigBase | str, head_type: str = "causal_lm") -> type:
    """The class that builds ``config`` (or an architecture name) with ``head_type``:
    ``model_class(config)(config)``, ``model_class(config, "classification").from_pretrained(folder)``."""
    architecture = config if isinstance(config, str) else config.architecture
    config_class(architecture)
    if head_type not in HEAD_TYPES:
        raise ValueError(f"head_type must be one of {', '.join(HEAD_TYPES)}; got {head_type!r}")
    if (architecture, head_type) not in _CLASSES:
        heads = [head for arch, head in _CLASSES if arch == architecture]
        raise ValueError(f"{architecture} models have no {head_type} head; available: {', '.join(heads)}")
    return _CLASSES[(architecture, head_type)]


def folder_spec(path) -> tuple[str, str]:
    """(architecture, head type) of a model folder, from its ``config.json`` (defaults: "mamba", "causal_lm")."""
    raw = read_config_json(path)
    if raw.get("model_type") == "caduceus":  # a published Caduceus folder
        classifier = any("Classification" in name for name in raw.get("architectures") or [])
        return CaduceusConfig.architecture, "classification" if classifier else "masked_lm"
    if "model_type" in raw:  # transformers' Mamba layout
        return MambaConfig.architecture, "causal_lm"
    return raw.get("architecture", MambaConfig.architecture), raw.get(HEAD_KEY, "causal_lm")


def load_pretrained(path, head_type: str | None = None, device=None, dtype=None, **config_overrides):
    """The model a folder holds, in eval mode: the class comes from its ``config.json`` (``head_type`` picks
    another head on the same backbone, e.g. "classification" from an LM folder, with ``num_labels=...``), and
    the class's ``from_pretrained`` reads it through :func:`mamba_bio_audio.pretrained.load_model`."""
    architecture, saved_head = folder_spec(path)
    cls = model_class(architecture, head_type or saved_head)
    return cls.from_pretrained(path, device=device, dtype=dtype, **config_overrides)
