"""Model folders: ``save_pretrained`` writes ``config.json`` + ``model.safetensors``; ``from_pretrained`` reads

* ours: ``config.json`` (``config.to_dict()``: ``architecture`` and the fields, plus the model's ``head_type``)
  + ``model.safetensors``, for every architecture (Mamba, Transformer++, SaShiMi) and head;
* ``mamba_ssm``'s: ``config.json`` (d_model, n_layer, vocab_size, ssm_cfg, ...) + ``pytorch_model.bin``;
* transformers' Mamba: ``config.json`` with ``model_type: "mamba"`` (hidden_size, num_hidden_layers, state_size,
  ...) + ``model.safetensors`` or ``pytorch_model.bin``, keys ``backbone.embeddings.*`` for ``backbone.embedding.*``.

Sharded weights (``*.index.json`` + shards inside the folder) are read too. ``pytorch_model.bin`` files are read
with ``torch.load(weights_only=True)`` (:func:`~mamba_bio_audio.torch_files.load_torch_file`): one that holds
more than tensors raises UnsafeFileError naming it. A missing file raises FileNotFoundError naming it; a
config field we do not know, or a checkpoint tensor that does not fit the config, raises ValueError naming the
field or the key (and the config field behind a wrong shape where it can tell).
"""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import torch
import torch.nn.functional as F

from mamba_bio_audio.atomic import atomic_path
from mamba_bio_audio.config import ConfigBase, MambaConfig
from mamba_bio_audio.torch_files import UnsafeFileError, load_torch_file

__all__ = ["HEAD_KEY", "PretrainedMixin", "UnsafeFileError", "from_pretrained", "load_config", "load_state_dict",
           "load_torch_file", "load_weights", "save_pretrained", "shard_files"]

_log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
HEAD_KEY = "head_type"  # beside the config fields in config.json: which head the weights are for
WEIGHT_FILES = (
    "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json",
)
EMBEDDING_KEY = "backbone.embedding.weight"
LM_HEAD_KEY = "lm_head.weight"


class PretrainedMixin:
    """``from_pretrained`` / ``save_pretrained`` for models built as ``cls(config, device=..., dtype=...)``.

    A model class names its ``config_class`` and ``head_type``, the checkpoint keys it may lack (its fresh head)
    and those it may ignore (another head), and, for error messages, the config field behind each dimension of
    a key (``_shape_fields``, by key suffix) and behind a key's presence (``_presence_fields``, by part of a
    key).
    """

    config_class: type[ConfigBase] = MambaConfig
    head_type: str = "causal_lm"
    _keys_allowed_missing: tuple[str, ...] = ()
    _keys_allowed_unexpected: tuple[str, ...] = ()
    _shape_fields: dict[str, tuple[str, ...]] = {}
    _presence_fields: dict[str, str] = {}

    @classmethod
    def from_pretrained(cls, path, device=None, dtype=None, **config_overrides):
        """Load a model folder (ours, mamba_ssm's or transformers'); ``config_overrides`` replace config fields
        (e.g. ``num_labels=5`` to fine-tune a classifier from a pretrained LM)."""
        return from_pretrained(path, model_cls=cls, device=device, dtype=dtype, **config_overrides)

    def save_pretrained(self, save_directory) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``save_directory``."""
        return save_pretrained(self, save_directory)


# ----------------------------------------------------------------------------------------------------------
# saving


def save_pretrained(model, save_directory) -> Path:
    """Write ``model.safetensors`` then ``config.json`` into ``save_directory`` (created if needed), each through
    a temporary file renamed into place; other files in the folder are left alone. Tied weights are stored
    once (the embedding). Returns the folder.

    Raises :class:`~mamba_bio_audio.folder_kinds.FolderRefused` (a ValueError), writing nothing, when the
    folder holds a ``config.json`` that is not one of our exports, or weights without one."""
    from safetensors.torch import save_model

    from mamba_bio_audio.folder_kinds import MODEL_EXPORT, check_folder

    folder = Path(save_directory)
    check_folder(folder, MODEL_EXPORT)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "model.safetensors") as tmp:
        save_model(model, str(tmp), metadata={"format": "pt"})
    values = {**model.config.to_dict(), HEAD_KEY: model.head_type}
    with atomic_path(folder / CONFIG_FILE) as tmp:
        tmp.write_text(json.dumps(values, indent=2, sort_keys=True) + "\n")
    return folder


# ----------------------------------------------------------------------------------------------------------
# configs

_MAMBA_SSM_ONLY_FIELDS = ("attn_layer_idx", "attn_cfg")

# transformers MambaConfig field -> (our field, or ssm_cfg key as "ssm_cfg.<key>")
_TRANSFORMERS_FIELDS = {
    "hidden_size": "d_model",
    "num_hidden_layers": "n_layer",
    "vocab_size": "vocab_size",
    "state_size": "ssm_cfg.d_state",
    "expand": "ssm_cfg.expand",
    "conv_kernel": "ssm_cfg.d_conv",
    "time_step_rank": "ssm_cfg.dt_rank",
    "time_step_min": "ssm_cfg.dt_min",
    "time_step_max": "ssm_cfg.dt_max",
    "time_step_floor": "ssm_cfg.dt_init_floor",
    "time_step_scale": "ssm_cfg.dt_scale",
    "time_step_init_scheme": "ssm_cfg.dt_init",
    "use_bias": "ssm_cfg.bias",
    "use_conv_bias": "ssm_cfg.conv_bias",
    "layer_norm_epsilon": "norm_epsilon",
    "residual_in_fp32": "residual_in_fp32",
    "tie_word_embeddings": "tie_embeddings",
    "initializer_range": "initializer_range",
}
# transformers fields with no effect on the weights or the forward pass here.
_TRANSFORMERS_IGNORED = {
    "model_type", "architectures", "transformers_version", "torch_dtype", "dtype", "_name_or_path",
    "bos_token_id", "eos_token_id", "pad_token_id", "use_cache", "rescale_prenorm_residual", "use_mambapy",
    "use_associative_scan", "pad_vocab_size_multiple", "n_layer", "rms_norm", "fused_add_norm",
    "intermediate_size", "hidden_act", "output_hidden_states", "output_attentions", "return_dict",
    "tokenizer_class", "id2label", "label2id", "problem_type", "chunk_size_feed_forward", "is_encoder_decoder",
    "is_decoder", "add_cross_attention", "tie_encoder_decoder", "torchscript", "use_return_dict",
}


def _config_from_mamba_ssm(raw: dict) -> dict:
    values = dict(raw)
    for name in _MAMBA_SSM_ONLY_FIELDS:
        value = values.pop(name, None)
        if value:
            raise ValueError(f"config field {name}={value!r}: attention layers are not supported (Mamba-only models)")
    return values


def _config_from_transformers(raw: dict) -> dict:
    if raw.get("model_type") != "mamba":
        raise ValueError("config field model_type must be 'mamba' (transformers' Mamba-1); "
                         f"got {raw.get('model_type')!r}")
    unknown = sorted(set(raw) - set(_TRANSFORMERS_FIELDS) - _TRANSFORMERS_IGNORED)
    if unknown:
        raise ValueError(f"unknown transformers Mamba config field(s) {unknown}")
    if raw.get("hidden_act", "silu") not in ("silu", "swish"):
        raise ValueError(f"config field hidden_act must be 'silu'; got {raw['hidden_act']!r}")
    hidden, expand = raw.get("hidden_size", 768), raw.get("expand", 2)
    if "intermediate_size" in raw and raw["intermediate_size"] != int(expand * hidden):
        raise ValueError(f"config field intermediate_size={raw['intermediate_size']} must equal expand * hidden_size "
                         f"= {int(expand * hidden)}")
    # transformers does not pad the vocabulary: its vocab_size already counts the embedding rows.
    values: dict = {"ssm_cfg": {}, "pad_vocab_size_multiple": 1, "rms_norm": True, "fused_add_norm": True}
    for name, target in _TRANSFORMERS_FIELDS.items():
        if name in raw:
            if target.startswith("ssm_cfg."):
                values["ssm_cfg"][target[len("ssm_cfg."):]] = raw[name]
            else:
                values[target] = raw[name]
    return values


def read_config_json(path) -> dict:
    """The contents of ``path/config.json``; FileNotFoundError or ValueError naming the file."""
    config_path = Path(path) / CONFIG_FILE
    if not config_path.is_file():
        raise FileNotFoundError(f"model folder {path} has no {CONFIG_FILE}")
    try:
        return json.loads(config_path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{config_path} is not valid JSON: {err}") from err


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, num_labels: int) -> torch.Tensor:
    """Cross entropy (fp32) of logits (batch, num_labels) against class ids (batch,) int64, or MSE against float
    targets (batch,) when ``num_labels == 1`` (regression)."""
    labels = labels.to(logits.device)
    if num_labels == 1:
        return F.mse_loss(logits.float().squeeze(-1), labels.float())
    return F.cross_entropy(logits.float(), labels)


def load_config(path, config_cls: type[ConfigBase] = MambaConfig, **config_overrides) -> tuple[ConfigBase, str]:
    """Read ``path/config.json`` → (config of ``config_cls``, layout) with layout "transformers" (its Mamba) or
    "ours" (ours and mamba_ssm's, whose fields are a subset of ours). ``config_overrides`` replace fields. A
    folder of another architecture raises ValueError naming both."""
    folder = Path(path)
    raw = read_config_json(folder)
    raw.pop(HEAD_KEY, None)
    if "model_type" in raw:
        layout, values = "transformers", _config_from_transformers(raw)
    else:
        layout, values = "ours", _config_from_mamba_ssm(raw)
    architecture = values.get("architecture", MambaConfig.architecture)
    if architecture != config_cls.architecture:
        raise ValueError(f"model folder {folder} holds a model of architecture {architecture!r}, not "
                         f"{config_cls.architecture!r}: load it with mamba_bio_audio.models.load_pretrained")
    return config_cls.from_dict({**values, **config_overrides}), layout


# ----------------------------------------------------------------------------------------------------------
# weights


def _load_file(path: Path) -> dict:
    """A weights file's tensors: safetensors, or a pickle-based ``.bin`` through :func:`load_torch_file`
    (weights_only; a file holding more raises UnsafeFileError naming it)."""
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} is missing")
    if path.name.endswith(".safetensors"):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except SafetensorError as err:
            raise ValueError(f"{path} is not a readable safetensors file: {err}") from None
    state_dict = load_torch_file(path)
    if not isinstance(state_dict, dict):
        raise ValueError(f"{path} holds a {type(state_dict).__name__}, not a state dict of tensors")
    return state_dict


def shard_files(index: Path) -> list[Path]:
    """The shard files an HF-style sharded-checkpoint index (``model.safetensors.index.json``,
    ``pytorch_model.bin.index.json``: ``{"weight_map": {tensor name: shard file name}}``) names, in sorted
    order. Bad JSON, a missing or empty ``weight_map``, a shard name that is not a string, and a shard that
    leaves the index's folder (an absolute name, ``..``, a symlink resolving outside) raise ValueError naming
    the index (and the shard)."""
    try:
        raw = json.loads(index.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{index} is not valid JSON: {err}") from err
    weight_map = raw.get("weight_map") if isinstance(raw, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise ValueError(f"{index} has no weight_map (a non-empty object: tensor name -> shard file name)")
    bad = next((name for name in weight_map.values() if not isinstance(name, str) or not name), None)
    if bad is not None:
        raise ValueError(f"{index}: weight_map value {bad!r} is not a shard file name")
    folder = index.parent.resolve()
    shards = []
    for name in sorted(set(weight_map.values())):
        if Path(name).is_absolute() or ".." in Path(name).parts or "\\" in name:
            raise ValueError(f"{index}: shard {name!r} is not a file name inside the model folder {index.parent}")
        shard = index.parent / name
        if not shard.resolve().is_relative_to(folder):
            raise ValueError(f"{index}: shard {name!r} resolves to {shard.resolve()}, outside the model folder "
                             f"{index.parent}")
        shards.append(shard)
    return shards


def load_state_dict(path, layout: str = "ours") -> dict:
    """Read the weights of a model folder into a state dict with our key names."""
    folder = Path(path)
    found = next((folder / name for name in WEIGHT_FILES if (folder / name).is_file()), None)
    if found is None:
        raise FileNotFoundError(f"model folder {folder} has no weights: expected one of {', '.join(WEIGHT_FILES)}")
    if found.name.endswith(".index.json"):
        state_dict = {}
        for shard in shard_files(found):
            state_dict.update(_load_file(shard))
    else:
        state_dict = _load_file(found)
    if layout == "transformers":
        state_dict = {re.sub(r"^backbone\.embeddings\.", "backbone.embedding.", k): v for k, v in state_dict.items()}
    return state_dict


MAMBA_SHAPE_FIELDS = {  # key suffix -> the config field behind each dimension
    "embedding.weight": ("vocab_size / pad_vocab_size_multiple", "d_model"),
    "lm_head.weight": ("vocab_size / pad_vocab_size_multiple", "d_model"),
    "score.weight": ("num_labels", "d_model"),
    "mixer.in_proj.weight": ("ssm_cfg['expand']", "d_model"),
    "mixer.in_proj.bias": ("ssm_cfg['expand']",),
    "mixer.conv1d.weight": ("ssm_cfg['expand']", "shape", "ssm_cfg['d_conv']"),
    "mixer.conv1d.bias": ("ssm_cfg['expand']",),
    "mixer.x_proj.weight": ("ssm_cfg['dt_rank'] / ssm_cfg['d_state']", "ssm_cfg['expand']"),
    "mixer.dt_proj.weight": ("ssm_cfg['expand']", "ssm_cfg['dt_rank']"),
    "mixer.dt_proj.bias": ("ssm_cfg['expand']",),
    "mixer.out_proj.weight": ("d_model", "ssm_cfg['expand']"),
    "mixer.out_proj.bias": ("d_model",),
    "mixer.A_log": ("ssm_cfg['expand']", "ssm_cfg['d_state']"),
    "mixer.D": ("ssm_cfg['expand']",),
    "mlp.fc1.weight": ("d_intermediate", "d_model"),
    "mlp.fc2.weight": ("d_model", "d_intermediate"),
}
MAMBA_PRESENCE_FIELDS = {  # part of a key -> the config field that decides whether the key exists
    "in_proj.bias": "ssm_cfg['bias']", "out_proj.bias": "ssm_cfg['bias']", "conv1d.bias": "ssm_cfg['conv_bias']",
    "norm.bias": "rms_norm", "norm_f.bias": "rms_norm", "norm2.bias": "rms_norm", "norm2.weight": "d_intermediate",
    "fc1.weight": "d_intermediate", "fc2.weight": "d_intermediate", "fc1.bias": "d_intermediate",
    "fc2.bias": "d_intermediate",
}


def _shape_field(model, key: str, expected: torch.Size, got: torch.Size) -> str:
    if len(expected) != len(got):
        return "the model type"
    dim = next(i for i, (a, b) in enumerate(zip(expected, got, strict=True)) if a != b)
    if key.endswith("norm.weight") or key.endswith("norm_f.weight") or key.endswith("norm2.weight"):
        return "d_model"
    for suffix, fields in model._shape_fields.items():
        if key.endswith(suffix):
            return fields[dim]
    return "the model type"


def _presence_field(model, key: str) -> str:
    layer = re.search(r"layers\.(\d+)\.", key)
    n_layer = getattr(model.config, "n_layer", None)
    if layer and n_layer is not None and int(layer.group(1)) >= n_layer:
        return "n_layer"
    for part, name in model._presence_fields.items():
        if part in key:
            return name
    return "n_layer" if layer else "the model type"


def _fill_tied(state_dict: dict, model, config: ConfigBase) -> None:
    if not getattr(config, "tie_embeddings", False) or LM_HEAD_KEY not in model.state_dict():
        return
    head, embedding = state_dict.get(LM_HEAD_KEY), state_dict.get(EMBEDDING_KEY)
    if head is None and embedding is not None:
        state_dict[LM_HEAD_KEY] = embedding
    elif embedding is None and head is not None:
        state_dict[EMBEDDING_KEY] = head
    elif head is not None and not torch.equal(head, embedding):
        raise ValueError(f"checkpoint has different {LM_HEAD_KEY!r} and {EMBEDDING_KEY!r} but the config field "
                         "tie_embeddings is true")


def _check_state_dict(state_dict: dict, model) -> dict:
    """Raise ValueError at the first key that is missing, unexpected or of the wrong shape; return the state
    dict without the keys the model may ignore."""
    expected = model.state_dict()
    for key, tensor in expected.items():
        if key not in state_dict:
            if key in model._keys_allowed_missing:
                _log.info("%s is not in the checkpoint: keeping its fresh initialisation", key)
                continue
            raise ValueError(f"checkpoint is missing key {key!r} (check config field {_presence_field(model, key)})")
        got = state_dict[key].shape
        if got != tensor.shape:
            raise ValueError(f"checkpoint tensor {key!r} has shape {tuple(got)} but the config gives "
                             f"{tuple(tensor.shape)} (check config field {_shape_field(model, key, tensor.shape, got)})")
    kept = {}
    for key, tensor in state_dict.items():
        if key in expected:
            kept[key] = tensor
        elif key not in model._keys_allowed_unexpected:
            raise ValueError(f"checkpoint has unexpected key {key!r} (check config field {_presence_field(model, key)})")
    return kept


def from_pretrained(path, model_cls=None, device=None, dtype=None, **config_overrides):
    """Build ``model_cls`` (default :class:`~mamba_bio_audio.models.MambaLMHeadModel`) from a model folder in
    any supported layout, on ``device`` and in ``dtype`` (A_log and D stay fp32). Returns the model in eval mode."""
    if model_cls is None:
        from mamba_bio_audio.models.lm import MambaLMHeadModel as model_cls
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"model folder {folder} does not exist")
    config, layout = load_config(folder, model_cls.config_class, **config_overrides)
    model = model_cls(config, device=device, dtype=dtype)
    return load_weights(model, load_state_dict(folder, layout)).eval()


def load_weights(model, state_dict: dict):
    """Load ``state_dict`` (our key names) into ``model`` under the model class's key rules: tied weights filled
    in, the keys it may lack kept fresh, the keys it may ignore dropped; any other missing, unexpected or
    mis-shaped key raises ValueError naming it and the config field behind it. Returns the model."""
    state_dict = dict(state_dict)
    _fill_tied(state_dict, model, model.config)
    model.load_state_dict(_check_state_dict(state_dict, model), strict=False)
    return model
