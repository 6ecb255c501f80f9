"""``PreTrainedModel``: what every model class shares, whatever its backbone and head: the config class and
head type it is registered under, ``mamba_ssm``'s initialisation (:func:`init_weights`), reading and writing
model folders (through :mod:`mamba_bio_audio.pretrained`, the one loader) and the pad-aware token mask that
pooling reads.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from mamba_bio_audio import pretrained
from mamba_bio_audio.config import ConfigBase

__all__ = ["PreTrainedModel", "init_weights"]


def init_weights(module: nn.Module, n_layer: int, initializer_range: float = 0.02,
                 rescale_prenorm_residual: bool = True, n_residuals_per_layer: int = 1) -> None:
    """``mamba_ssm``'s init, applied with ``model.apply``: Linear biases → 0 unless tagged ``_no_reinit`` (the dt
    bias); Embedding ~ N(0, initializer_range); ``out_proj.weight`` / ``fc2.weight`` kaiming_uniform(a=√5) then
    ÷ √(n_residuals_per_layer · n_layer) (GPT-2's scaling of residual-branch outputs)."""
    if isinstance(module, nn.Linear):
        if module.bias is not None and not getattr(module.bias, "_no_reinit", False):
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=initializer_range)
    if rescale_prenorm_residual:
        for name, param in module.named_parameters():
            if name in ("out_proj.weight", "fc2.weight"):
                nn.init.kaiming_uniform_(param, a=math.sqrt(5))
                with torch.no_grad():
                    param /= math.sqrt(n_residuals_per_layer * n_layer)


class PreTrainedModel(nn.Module):
    """Base of every model class: built as ``cls(config, device=..., dtype=...)``, registered under
    (``config_class.architecture``, ``head_type``) in :mod:`mamba_bio_audio.models.factory`.

    Key rules for loading (see :func:`mamba_bio_audio.pretrained.load_weights`): ``_keys_allowed_missing`` (a
    fresh head), ``_keys_allowed_unexpected`` (another head's weights), :meth:`tied_keys`, and for error messages
    the config field behind each dimension of a key (``_shape_fields``, by key suffix) and behind a key's
    presence (``_presence_fields``, by part of a key). Folder formats other than ours are read by overriding
    :meth:`folder_config` and :meth:`convert_state_dict`.
    """

    config_class: type[ConfigBase] = ConfigBase
    head_type: str = ""
    _keys_allowed_missing: tuple[str, ...] = ()
    _keys_allowed_unexpected: tuple[str, ...] = ()
    _shape_fields: dict[str, tuple[str, ...]] = {}
    _presence_fields: dict[str, str] = {}

    def __init__(self, config: ConfigBase):
        super().__init__()
        self.config = config

    @classmethod
    def from_pretrained(cls, path, device=None, dtype=None, **config_overrides):
        """Load a model folder (ours, or an upstream layout the class reads) in eval mode; ``config_overrides``
        replace config fields (e.g. ``num_labels=5`` to fine-tune a classifier from a pretrained LM)."""
        return pretrained.load_model(path, cls, device=device, dtype=dtype, **config_overrides)

    def save_pretrained(self, save_directory) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``save_directory``."""
        return pretrained.save_pretrained(self, save_directory)

    @classmethod
    def folder_config(cls, folder: Path, raw: dict, **options) -> tuple[dict, object]:
        """(config fields, context for :meth:`convert_state_dict`) of a folder whose ``config.json`` holds
        ``raw``. Ours: the fields, with an ``architecture`` that must be this class's (ValueError naming both)."""
        if options:
            raise TypeError(f"{cls.__name__}.from_pretrained got unexpected option(s) {sorted(options)}")
        architecture = raw.get("architecture", "mamba")
        if architecture != cls.config_class.architecture:
            raise ValueError(f"model folder {folder} holds a model of architecture {architecture!r}, not "
                             f"{cls.config_class.architecture!r}: load it with "
                             "mamba_bio_audio.models.load_pretrained")
        return raw, None

    def convert_state_dict(self, state_dict: dict, context) -> dict:
        """A folder's tensors under this model's key names (ours: as stored)."""
        return state_dict

    def tied_keys(self) -> list[tuple[str, str, str]]:
        """(key, twin, config field) of every pair of keys that name one tensor under this config."""
        return []

    def init_head(self, linear: nn.Linear, std: float) -> nn.Linear:
        """A fresh head's weight ~ N(0, std) (and its bias 0)."""
        nn.init.normal_(linear.weight, std=std)
        if linear.bias is not None:
            nn.init.zeros_(linear.bias)
        return linear

    def real_tokens(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor | None:
        """(batch, L) bool, True at the tokens pooling counts: ``attention_mask`` when given, else ids that are
        not ``config.pad_token_id``; None (all) when neither says."""
        if attention_mask is not None:
            return attention_mask.to(device=input_ids.device, dtype=torch.bool)
        pad_token_id = getattr(self.config, "pad_token_id", None)
        if pad_token_id is not None:
            return input_ids != pad_token_id
        return None
