"""Model folders: the one loader and writer of ``config.json`` + weights. It imports no model: the model class
passed in says how to read its folder (``folder_config``, ``convert_state_dict``, beside the model) and which
keys it may lack or ignore; :func:`mamba_bio_audio.models.factory.load_pretrained` picks the class a folder
names.

* :func:`save_pretrained` writes ``config.json`` (``config.to_dict()`` plus the model's ``head_type``) and
  ``model.safetensors``, each through a temporary file renamed into place; it refuses a folder that is not
  one of our exports (:mod:`mamba_bio_audio.folder_kinds`).
* :func:`load_model` reads a folder into a given class: its config (ours, mamba_ssm's, transformers' or
  published Caduceus ones, as the class reads them), its weights (``model.safetensors``, ``pytorch_model.bin``
  read ``weights_only`` through :func:`~mamba_bio_audio.torch_files.load_torch_file`, or shards named by a
  ``*.index.json`` validated by :func:`shard_files`), then :func:`load_weights`.
* :func:`load_weights` checks every key: a missing, unexpected or mis-shaped one raises ValueError naming it and
  the config field behind it; tied tensors stored once are filled in, two stored copies that differ refused.

A missing file raises FileNotFoundError naming it; a pickle that holds more than tensors UnsafeFileError.
"""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import torch

from mamba_bio_audio.atomic import atomic_path
from mamba_bio_audio.torch_files import UnsafeFileError, load_torch_file

__all__ = ["CONFIG_FILE", "HEAD_KEY", "UnsafeFileError", "fill_tied", "load_model", "load_state_dict",
           "load_weights", "read_config", "read_config_json", "save_pretrained", "shard_files"]

_log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
HEAD_KEY = "head_type"  # beside the config fields in config.json: which head the weights are for
WEIGHT_FILES = (
    "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json",
)


def save_pretrained(model, save_directory) -> Path:
    """Write ``model.safetensors`` then ``config.json`` into ``save_directory`` (created if needed), each through
    a temporary file renamed into place; other files in the folder are left alone. Tied weights are stored
    once. Returns the folder.

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


def read_config_json(path) -> dict:
    """The contents of ``path/config.json``; FileNotFoundError or ValueError naming the file."""
    if not Path(path).is_dir():
        raise FileNotFoundError(f"model folder {path} does not exist")
    config_path = Path(path) / CONFIG_FILE
    if not config_path.is_file():
        raise FileNotFoundError(f"model folder {path} has no {CONFIG_FILE}")
    try:
        raw = json.loads(config_path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{config_path} is not valid JSON: {err}") from err
    if not isinstance(raw, dict):
        raise ValueError(f"{config_path} holds a {type(raw).__name__}, not an object of config fields")
    return raw


def load_model(path, model_cls, device=None, dtype=None, options: dict | None = None, **config_overrides):
    """Build ``model_cls`` from the model folder ``path`` on ``device`` in ``dtype`` (A_log and D stay fp32), in
    eval mode. ``model_cls.folder_config(folder, raw config.json, **options)`` gives (config fields, context);
    ``config_overrides`` replace fields; ``model.convert_state_dict(state_dict, context)`` maps the stored keys to
    the model's, then :func:`load_weights` checks them."""
    folder = Path(path)
    config, context = read_config(folder, model_cls, options, **config_overrides)
    model = model_cls(config, device=device, dtype=dtype)
    return load_weights(model, model.convert_state_dict(load_state_dict(folder), context)).eval()


def read_config(path, model_cls, options: dict | None = None, **config_overrides):
    """(config of ``model_cls.config_class``, context for ``convert_state_dict``) of the model folder ``path``,
    read by ``model_cls.folder_config``; ``config_overrides`` replace fields."""
    folder = Path(path)
    raw = read_config_json(folder)
    raw.pop(HEAD_KEY, None)
    values, context = model_cls.folder_config(folder, raw, **(options or {}))
    return model_cls.config_class.from_dict({**values, **config_overrides}), context


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


def load_state_dict(path) -> dict:
    """The tensors of a model folder's weights, under their stored key names."""
    folder = Path(path)
    found = next((folder / name for name in WEIGHT_FILES if (folder / name).is_file()), None)
    if found is None:
        raise FileNotFoundError(f"model folder {folder} has no weights: expected one of {', '.join(WEIGHT_FILES)}")
    if not found.name.endswith(".index.json"):
        return _load_file(found)
    state_dict = {}
    for shard in shard_files(found):
        state_dict.update(_load_file(shard))
    return state_dict


def fill_tied(state_dict: dict, key: str, twin: str, field: str) -> None:
    """One tensor stored under ``key`` and ``twin`` (tied by the config field ``field``): fill the missing name
    in place; two stored copies that differ raise ValueError naming both keys and the field."""
    first, second = state_dict.get(key), state_dict.get(twin)
    if first is None and second is not None:
        state_dict[key] = second
    elif second is None and first is not None:
        state_dict[twin] = first
    elif first is not None and not torch.equal(first, second):
        raise ValueError(f"checkpoint has different {key!r} and {twin!r} but the config field {field} ties them")


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


def load_weights(model, state_dict: dict):
    """Load ``state_dict`` (the model's key names) into ``model`` under its class's key rules: tied tensors
    (``model.tied_keys()``) filled in, the keys it may lack kept fresh, the keys it may ignore dropped; any other
    missing, unexpected or mis-shaped key raises ValueError naming it and the config field behind it. Returns
    the model."""
    state_dict = dict(state_dict)
    expected = model.state_dict()
    for key, twin, field in model.tied_keys():
        if key in expected or twin in expected:
            fill_tied(state_dict, key, twin, field)
    model.load_state_dict(_check_state_dict(state_dict, model), strict=False)
    return model
