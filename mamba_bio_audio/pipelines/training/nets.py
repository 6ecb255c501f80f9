"""Networks named by the Hydra ``net`` group, built through the library's one registry
(:mod:`mamba_bio_audio.models.factory`).

``build_net(architecture, head_type, preset, config, pretrained)`` returns a model in training mode;
Lightning checkpoints store :func:`net_spec` (``{"architecture", "head_type", "config"}``) beside the weights,
so :func:`load_net` rebuilds a model from a ``.ckpt`` without the Hydra tree, and from an exported folder
through its ``config.json``; both read through :mod:`mamba_bio_audio.pretrained` (the one loader).
"""
from __future__ import annotations

import logging
from pathlib import Path

from torch import nn

from mamba_bio_audio.models import factory
from mamba_bio_audio.pipelines.training.plain_data import plain_data
from mamba_bio_audio.pretrained import load_weights, read_config
from mamba_bio_audio.torch_files import load_torch_file

NET_PREFIX = "net."  # the LightningModule keeps the model as ``self.net``
# memory switches (Mamba: chunk_size, tbptt; Caduceus: piece_length; both: checkpoint_blocks): no effect on the weights
RUN_FIELDS = ("chunk_size", "tbptt", "piece_length", "checkpoint_blocks")
HEAD_FIELDS = ("num_labels", "pooling")
_log = logging.getLogger(__name__)


def build_net(architecture: str = "mamba", head_type: str = "causal_lm", preset: str | None = None,
              config: dict | None = None, pretrained: str | None = None) -> nn.Module:
    """A model of ``architecture`` with ``head_type`` from a preset (``configs/model/<preset>.yaml``; SaShiMi:
    ``configs/model/<preset>.yaml`` too) with ``config`` fields replaced. ``pretrained``: an exported folder (whose
    ``config.json`` decides the architecture, see :func:`_from_folder`) or a Lightning ``.ckpt`` whose weights
    start the model (a classifier keeps a pretrained LM's backbone and gets a fresh head)."""
    overrides = dict(config or {})
    if pretrained is not None and Path(pretrained).is_dir():
        return _from_folder(Path(pretrained), head_type, overrides).train()
    model_cls = factory.model_class(architecture, head_type)
    config_cls = model_cls.config_class
    values = overrides if preset is None else {**config_cls.from_preset(preset).to_dict(), **overrides}
    model = model_cls(config_cls.from_dict(values))
    if pretrained is not None:
        load_weights(model, _checkpoint(Path(pretrained))[1])
    return model.train()


def _from_folder(folder: Path, head_type: str, overrides: dict) -> nn.Module:
    """The model an exported folder holds, with ``head_type``: the folder decides the architecture and the
    backbone; of ``overrides`` only the training-memory switches apply, and the head's fields when the head
    changes (an LM folder starting a classifier). Other overrides that differ from the folder's config are
    ignored with a warning naming them."""
    architecture, saved_head = factory.folder_spec(folder)
    model_cls = factory.model_class(architecture, head_type)
    saved, _ = read_config(folder, model_cls)
    allowed = RUN_FIELDS + (HEAD_FIELDS if head_type != saved_head else ())
    applied = {k: v for k, v in overrides.items() if k in allowed}
    ignored = {k: v for k, v in overrides.items() if k not in allowed and getattr(saved, k, None) != v}
    if ignored:
        _log.warning("net.pretrained=%s: its config.json decides %s; ignoring net.config values %s", folder,
                     ", ".join(sorted(ignored)), ignored)
    return model_cls.from_pretrained(folder, **applied)


def _checkpoint(path: Path) -> tuple[dict | None, dict]:
    """(net spec or None, the net's state dict without the ``net.`` prefix) of a Lightning checkpoint, read with
    ``weights_only=True`` (a file holding more raises UnsafeFileError naming it)."""
    if not path.is_file():
        raise FileNotFoundError(f"no exported model folder or checkpoint at {path}")
    checkpoint = load_torch_file(path)
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise ValueError(f"{path} is not a Lightning checkpoint (no state_dict)")
    state = {k[len(NET_PREFIX):]: v for k, v in checkpoint["state_dict"].items() if k.startswith(NET_PREFIX)}
    return checkpoint.get("net_spec"), state


def net_spec(net: nn.Module) -> dict:
    """``{"architecture", "head_type", "config"}`` of a model, stored in Lightning checkpoints as plain data."""
    return plain_data({"architecture": net.config.architecture, "head_type": net.head_type,
                       "config": net.config.to_dict()}, "net_spec")


def load_net(path: str | Path) -> nn.Module:
    """A model in eval mode from an exported folder (``config.json`` + ``model.safetensors``) or a Lightning
    ``.ckpt`` written by the pretrain / finetune tasks."""
    path = Path(path)
    if path.is_dir():
        return factory.load_pretrained(path)
    spec, state = _checkpoint(path)
    if not isinstance(spec, dict) or not {"architecture", "head_type", "config"} <= spec.keys():
        raise ValueError(f"{path} is not a checkpoint of the mamba-bio-audio tasks (no net_spec)")
    model_cls = factory.model_class(spec["architecture"], spec["head_type"])
    return load_weights(model_cls(model_cls.config_class.from_dict(spec["config"])), state).eval()
