"""Loading Caduceus model folders: ours (``config.json`` with ``"architecture": "caduceus"`` +
``model.safetensors``) and the published ones (HF ``config.json`` with ``"model_type": "caduceus"`` +
``model.safetensors`` or ``pytorch_model.bin`` read weights_only, sharded or not), into
:class:`~mamba_bio_audio.models.caduceus.CaduceusForMaskedLM` or ``CaduceusForSequenceClassification``: the
hooks :func:`folder_config`, :func:`caduceus_state_dict` and :func:`tied_keys` that the one loader
(:func:`mamba_bio_audio.pretrained.load_model`) calls through the model class.

Our modules carry upstream's names, so the key map is the identity except where upstream's module layout
varies or where tensors are shared:

* the unfused RCPS norms ``...norm.submodule.weight`` / ``norm_f.submodule.weight`` (``RCPSAddNormWrapper``)
  load into ``...norm.weight`` / ``norm_f.weight``;
* a backbone saved alone (``backbone.*``) loads under ``caduceus.backbone.*``;
* shared tensors may be stored once (safetensors keeps one name per tensor): with
  ``bidirectional_weight_tie`` the ``mamba_rev`` in/out projections are filled from ``mamba_fwd``'s (or back),
  with ``tie_embeddings`` (upstream: ``tie_word_embeddings``) the LM head from the embedding (or back)
  (:func:`tied_keys`, filled by :func:`mamba_bio_audio.pretrained.load_weights`); two stored copies that
  differ raise a ValueError naming the key and the field;
* the ``complement_map`` buffers must equal the config's (ValueError naming the key) and are filled when absent.

Token ids: Caduceus and HyenaDNA's character tokenizers give ``[CLS]0 [SEP]1 [BOS]2 [MASK]3 [PAD]4 [RESERVED]5
[UNK]6`` and then their characters from 7; with the characters A C G T N (both defaults) these are our ids.
A folder whose tokenizer differs (``vocab=``, or ``tokenizer_config.json``'s ``characters``) has its embedding
and LM-head rows, ``complement_map`` and ``pad_token_id`` permuted into our ids. Then
:func:`mamba_bio_audio.pretrained.load_weights` checks every key: a missing, extra or mis-shaped one raises a
ValueError naming it and the config field behind it.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from mamba_bio_audio.models.caduceus_config import CaduceusConfig
from mamba_bio_audio.modules.bimamba import TIED_PROJECTIONS
from mamba_bio_audio.tokenizers import DNA_SPECIAL_TOKENS, DNA_VOCAB

__all__ = ["UPSTREAM_FIELDS", "caduceus_state_dict", "config_from_upstream", "folder_config", "tied_keys",
           "vocab_permutation"]

UPSTREAM_MODEL_TYPE = "caduceus"
UPSTREAM_FIELDS = ("d_model", "n_layer", "vocab_size", "ssm_cfg", "rms_norm", "residual_in_fp32", "fused_add_norm",
                   "pad_vocab_size_multiple", "norm_epsilon", "initializer_cfg", "bidirectional",
                   "bidirectional_strategy", "bidirectional_weight_tie", "rcps", "complement_map",
                   "tie_word_embeddings", "pad_token_id")
# PretrainedConfig / upstream keys with no effect on the weights or the forward pass here.
UPSTREAM_IGNORED = {
    "model_type", "architectures", "auto_map", "transformers_version", "torch_dtype", "dtype", "_name_or_path",
    "gradient_checkpointing_stride", "bos_token_id", "eos_token_id", "sep_token_id", "cls_token_id",
    "mask_token_id", "use_cache", "output_hidden_states", "output_attentions", "return_dict", "use_return_dict",
    "label2id", "problem_type", "tokenizer_class", "torchscript", "is_decoder", "is_encoder_decoder",
    "add_cross_attention", "tie_encoder_decoder", "chunk_size_feed_forward", "pruned_heads",
}
EMBEDDING = "caduceus.backbone.embeddings.word_embeddings"
HEAD = "lm_head"


def config_from_upstream(raw: Mapping) -> dict:
    """CaduceusConfig fields of an upstream ``config.json``. An unknown key raises ValueError naming it."""
    if raw.get("model_type") != UPSTREAM_MODEL_TYPE:
        raise ValueError(f"config field model_type must be {UPSTREAM_MODEL_TYPE!r}; got {raw.get('model_type')!r}")
    unknown = sorted(set(raw) - set(UPSTREAM_FIELDS) - UPSTREAM_IGNORED - {"id2label", "num_labels"})
    if unknown:
        raise ValueError(f"unknown Caduceus config field(s) {unknown}")
    values = {name: raw[name] for name in UPSTREAM_FIELDS if name in raw}
    for name in ("ssm_cfg", "initializer_cfg"):
        if values.get(name) is None:
            values.pop(name, None)
    if values.get("bidirectional_strategy") is None:  # upstream's default strategy
        values.pop("bidirectional_strategy", None)
    if "id2label" in raw:
        values["num_labels"] = len(raw["id2label"])
    if "num_labels" in raw:
        values["num_labels"] = raw["num_labels"]
    return values


def _character_vocab(characters: Sequence[str]) -> dict[str, int]:
    """The ids of a HyenaDNA / Caduceus character tokenizer: the seven specials, then ``characters`` from 7."""
    return {**{token: i for i, token in enumerate(DNA_SPECIAL_TOKENS)},
            **{ch: len(DNA_SPECIAL_TOKENS) + i for i, ch in enumerate(characters)}}


def _folder_vocab(path) -> dict[str, int] | None:
    tokenizer = Path(path) / "tokenizer_config.json"
    if not tokenizer.is_file():
        return None
    try:
        raw = json.loads(tokenizer.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{tokenizer} is not valid JSON: {err}") from err
    characters = raw.get("characters") if isinstance(raw, dict) else None
    return None if characters is None else _character_vocab(characters)


def vocab_permutation(vocab: Mapping[str, int] | Sequence[str], rows: int) -> list[int] | None:
    """perm with our row i = the folder's row perm[i], over ``rows`` rows (the padded vocabulary), for a folder
    whose tokenizer gives ``vocab`` (token -> id, or the characters of a character tokenizer). None when the
    ids are ours. A token of ours missing from ``vocab`` raises ValueError naming it."""
    if not isinstance(vocab, Mapping):
        vocab = _character_vocab(list(vocab))
    perm = []
    for token in DNA_VOCAB:
        if token not in vocab:
            raise ValueError(f"vocab has no token {token!r}: the folder's ids cannot be mapped to ours")
        perm.append(int(vocab[token]))
    if any(not 0 <= i < rows for i in perm) or len(set(perm)) != len(perm):
        raise ValueError(f"vocab must give distinct ids below the padded vocabulary ({rows}); got {dict(vocab)}")
    perm += [i for i in range(rows) if i not in perm][: rows - len(perm)]
    return None if perm == list(range(rows)) else perm


def _remap_config(values: dict, perm: list[int]) -> dict:
    inverse = {old: new for new, old in enumerate(perm)}
    values = dict(values)
    cmap = values.get("complement_map")
    if isinstance(cmap, Mapping):
        table = {int(k): int(v) for k, v in cmap.items()}
        values["complement_map"] = {new: inverse[table.get(old, old)] for new, old in enumerate(perm)}
    if values.get("pad_token_id") is not None:
        values["pad_token_id"] = inverse[int(values["pad_token_id"])]
    return values


def caduceus_state_dict(state_dict: Mapping, model, perm: list[int] | None = None) -> dict:
    """The upstream (or our) ``state_dict`` in ``model``'s key names, tied tensors filled and ``complement_map``
    buffers checked; ``perm`` permutes the vocabulary rows (see :func:`vocab_permutation`)."""
    config: CaduceusConfig = model.config
    out = {}
    for key, tensor in state_dict.items():
        key = key.replace(".norm.submodule.", ".norm.").replace("norm_f.submodule.", "norm_f.")
        out[key] = tensor
    if not any(k.startswith("caduceus.") for k in out) and any(k.startswith("backbone.") for k in out):
        out = {f"caduceus.{k}" if k.startswith("backbone.") else k: v for k, v in out.items()}
    expected = model.state_dict()
    embedding_key = f"{EMBEDDING}.embedding.weight" if config.rcps else f"{EMBEDDING}.weight"
    head_key = f"{HEAD}.lm_head.weight" if config.rcps else f"{HEAD}.weight"
    if perm is not None:
        for key in (embedding_key, head_key):
            if key in out:
                out[key] = out[key][perm]
    for key, buffer in expected.items():
        if not key.endswith("complement_map"):
            continue
        if key not in out:
            out[key] = buffer
            continue
        stored = out[key].to(device=buffer.device, dtype=buffer.dtype)
        if perm is not None and stored.shape == buffer.shape:
            inverse = torch.empty_like(stored)
            inverse[torch.tensor(perm, device=stored.device)] = torch.arange(len(perm), device=stored.device)
            stored = inverse[stored[perm]]
        if not torch.equal(stored, buffer):
            raise ValueError(f"checkpoint tensor {key!r} differs from the config field complement_map "
                             f"({stored.tolist()} vs {buffer.tolist()})")
        out[key] = stored
    return out


def tied_keys(model) -> list[tuple[str, str, str]]:
    """(key, twin, config field) of the tensors a Caduceus ``model`` shares: with ``bidirectional_weight_tie``
    every layer's ``mamba_fwd`` / ``mamba_rev`` in and out projections, with ``tie_embeddings`` the embedding and
    the LM head."""
    config: CaduceusConfig = model.config
    pairs = []
    if config.bidirectional and config.bidirectional_weight_tie:
        for key in model.state_dict():
            name = key.split(".mamba_fwd.", 1)[-1]
            if ".mamba_fwd." in key and name in TIED_PROJECTIONS:
                pairs.append((key, key.replace(".mamba_fwd.", ".mamba_rev."), "bidirectional_weight_tie"))
    if config.tie_embeddings:
        embedding_key = f"{EMBEDDING}.embedding.weight" if config.rcps else f"{EMBEDDING}.weight"
        pairs.append((embedding_key, f"{HEAD}.lm_head.weight" if config.rcps else f"{HEAD}.weight", "tie_embeddings"))
    return pairs


def folder_config(folder: Path, raw: Mapping, vocab=None) -> tuple[dict, list[int] | None]:
    """(CaduceusConfig fields, vocabulary permutation or None) of a folder whose ``config.json`` holds ``raw``:
    upstream's (``model_type: "caduceus"``) or ours (``architecture: "caduceus"``; another architecture raises
    ValueError naming it). ``vocab`` (token -> id, or a character tokenizer's characters) gives the folder's
    token ids when they are not ours (default for upstream folders: ``tokenizer_config.json``'s ``characters``)."""
    if "model_type" in raw:
        values = config_from_upstream(raw)
        if vocab is None:
            vocab = _folder_vocab(folder)
    else:
        values = dict(raw)
        architecture = values.get("architecture")
        if architecture != CaduceusConfig.architecture:
            raise ValueError(f"model folder {folder} holds a model of architecture {architecture!r}, not "
                             "'caduceus': load it with mamba_bio_audio.models.load_pretrained")
    multiple = values.get("pad_vocab_size_multiple", 8)
    rows = -(-values.get("vocab_size", CaduceusConfig.vocab_size) // multiple) * multiple
    perm = None if vocab is None else vocab_permutation(vocab, rows)
    if perm is not None:
        values = _remap_config(values, perm)
    return values, perm
