"""Networks named by the Hydra ``net`` group: a causal LM or a sequence classifier (Mamba, or the Transformer++
baseline), or a SaShiMi audio LM.

``build_net(kind, preset, config, pretrained)`` returns a fresh ``torch.nn.Module`` whose ``config`` has
``to_dict()``; Lightning checkpoints store ``{"kind", "config"}`` beside the weights (see
:func:`net_spec`) so :func:`load_net` can rebuild a model from a ``.ckpt`` without the Hydra tree.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

KINDS = ("lm", "classifier", "sashimi", "transformer_lm", "transformer_classifier")
CONFIG_FILE = "config.json"


def _classes(kind: str):
    if kind == "lm":
        from mamba_bio_audio.config import MambaConfig
        from mamba_bio_audio.models.lm import MambaLMHeadModel
        return MambaLMHeadModel, MambaConfig
    if kind == "classifier":
        from mamba_bio_audio.config import MambaConfig
        from mamba_bio_audio.models.classification import MambaForSequenceClassification
        return MambaForSequenceClassification, MambaConfig
    if kind in ("transformer_lm", "transformer_classifier"):
        from mamba_bio_audio.config import TransformerConfig
        from mamba_bio_audio.models import transformer
        model = transformer.TransformerLMHeadModel if kind == "transformer_lm" \
            else transformer.TransformerForSequenceClassification
        return model, TransformerConfig
    if kind == "sashimi":
        from mamba_bio_audio.models.sashimi import SashimiLM
        from mamba_bio_audio.models.sashimi_config import SashimiConfig
        return SashimiLM, SashimiConfig
    raise ValueError(f"net kind must be one of {KINDS}; got {kind!r}")


def _config(kind: str, preset: str | None, overrides: dict):
    _, config_cls = _classes(kind)
    if preset is None:
        return config_cls.from_dict(overrides)
    base = config_cls.from_preset(preset).to_dict()
    return config_cls.from_dict({**base, **overrides})


def build_net(kind: str = "lm", preset: str | None = None, config: dict | None = None,
              pretrained: str | None = None) -> nn.Module:
    """A model of ``kind`` from a preset (``configs/model/<preset>.yaml``; SaShiMi: ``sashimi_<preset>.yaml``)
    with ``config`` fields replaced. ``pretrained``: an exported folder or a Lightning ``.ckpt`` whose weights
    start the model (a classifier keeps a pretrained LM's backbone and gets a fresh head)."""
    overrides = dict(config or {})
    model_cls, _ = _classes(kind)
    if pretrained is None:
        return model_cls(_config(kind, preset, overrides)).train()
    source = Path(pretrained)
    if source.is_dir():
        if kind == "sashimi":
            return model_cls.from_pretrained(source).train()
        return model_cls.from_pretrained(source, **overrides).train()
    model = model_cls(_config(kind, preset, overrides))
    state = _checkpoint_state(source)
    missing, unexpected = model.load_state_dict(state, strict=False)
    allowed_missing = set(getattr(model, "_keys_allowed_missing", ()))
    allowed_unexpected = set(getattr(model, "_keys_allowed_unexpected", ()))
    if set(missing) - allowed_missing or set(unexpected) - allowed_unexpected:
        raise ValueError(f"{source}: weights do not fit the {kind} net: missing {sorted(missing)[:3]}, "
                         f"unexpected {sorted(unexpected)[:3]}")
    return model.train()


def _checkpoint_state(path: Path) -> dict:
    """The net's state dict (keys without the ``net.`` prefix) from a Lightning checkpoint."""
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist (expected an exported folder or a .ckpt file)")
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    return {k[len("net."):]: v for k, v in checkpoint["state_dict"].items() if k.startswith("net.")}


def net_spec(net: nn.Module) -> dict:
    """``{"kind", "config"}`` of a net built here, stored in Lightning checkpoints."""
    kinds = {"MambaLMHeadModel": "lm", "MambaForSequenceClassification": "classifier", "SashimiLM": "sashimi",
             "TransformerLMHeadModel": "transformer_lm",
             "TransformerForSequenceClassification": "transformer_classifier"}
    return {"kind": kinds[type(net).__name__], "config": net.config.to_dict()}


def load_net(path: str | Path) -> nn.Module:
    """A net in eval mode from an exported folder (``config.json`` + ``model.safetensors``) or a Lightning
    ``.ckpt`` written by the pretrain / finetune tasks."""
    path = Path(path)
    if path.is_dir():
        if not (path / CONFIG_FILE).is_file():
            raise FileNotFoundError(f"{path} has no {CONFIG_FILE}: not an exported model folder")
        raw = json.loads((path / CONFIG_FILE).read_text())
        kind = "sashimi" if "pool" in raw else "lm"
        return _classes(kind)[0].from_pretrained(path).eval()
    if not path.is_file():
        raise FileNotFoundError(f"no exported model folder or checkpoint at {path}")
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    spec = checkpoint.get("net_spec")
    if spec is None:
        raise ValueError(f"{path} is not a checkpoint of the mamba-bio-audio tasks (no net_spec)")
    model_cls, config_cls = _classes(spec["kind"])
    model = model_cls(config_cls.from_dict(spec["config"]))
    model.load_state_dict({k[len("net."):]: v for k, v in checkpoint["state_dict"].items() if k.startswith("net.")})
    return model.eval()
