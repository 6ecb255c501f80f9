"""Caduceus (Schiff et al. 2024): bidirectional, optionally reverse-complement-equivariant Mamba models for DNA,
with upstream's module names, so state-dict keys are those of the published checkpoints.

``CaduceusForMaskedLM``: ``caduceus.backbone.embeddings.word_embeddings`` (``nn.Embedding``, or an
:class:`~mamba_bio_audio.modules.rcps.RCPSEmbedding` with ``rcps``) → ``caduceus.backbone.layers.{i}`` (norm +
:class:`~mamba_bio_audio.modules.bimamba.BiMamba` mixer, wrapped by
:class:`~mamba_bio_audio.modules.rcps.RCPSWrapper` with ``rcps``) → ``caduceus.backbone.norm_f`` → ``lm_head``
(``nn.Linear``, or an :class:`~mamba_bio_audio.modules.rcps.RCPSLMHead`), tied to the embedding by default.
``CaduceusForSequenceClassification``: the same backbone, pad-aware pooling (RC-invariant with ``rcps``) and
``score`` Linear(d_model, num_labels, bias=False).

The models are not causal: every position sees the whole sequence, so there is no ``step`` / ``prefill``
decoding contract; use :class:`~mamba_bio_audio.models.MambaLMHeadModel` to generate.
"""
from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import NamedTuple

import torch
from torch import nn

from mamba_bio_audio import pretrained
from mamba_bio_audio.losses import classification_loss, token_loss
from mamba_bio_audio.models import caduceus_checkpoint
from mamba_bio_audio.models.base import PreTrainedModel
from mamba_bio_audio.models.caduceus_config import CaduceusConfig
from mamba_bio_audio.models.classification import SequenceClassifierOutput
from mamba_bio_audio.models.mamba_folders import MAMBA_SHAPE_FIELDS
from mamba_bio_audio.models.mixer_model import MixerModel
from mamba_bio_audio.modules.bimamba import BiMamba
from mamba_bio_audio.modules.block import Block, final_norm
from mamba_bio_audio.modules.pooling import pool
from mamba_bio_audio.modules.rcps import (RCPSEmbedding, RCPSLMHead, RCPSWrapper, rc_ids, rc_invariant_pool,
                                          rc_logits, rcps_add_norm, rcps_norm)
from mamba_bio_audio.modules.rms_norm import RMSNorm
from mamba_bio_audio.targets import IGNORE_INDEX, counted_mask
from mamba_bio_audio.tokenizers import BASE_IDS, NucleotideTokenizer

__all__ = ["Caduceus", "CaduceusForMaskedLM", "CaduceusForSequenceClassification", "MaskedLMOutput",
           "caduceus_block", "mlm_mask"]


class MaskedLMOutput(NamedTuple):
    """logits (batch, L, padded_vocab) in the activation dtype; loss: scalar fp32 when labels were given."""

    logits: torch.Tensor
    loss: torch.Tensor | None = None


def mlm_mask(input_ids: torch.Tensor, generator: torch.Generator, probability: float = 0.15,
             mask_fraction: float = 0.8, random_fraction: float = 0.1,
             mask_token_id: int = NucleotideTokenizer.mask_token_id, pad_token_id: int | None = None,
             maskable_ids: Sequence[int] = BASE_IDS,
             random_ids: Sequence[int] = tuple(range(NucleotideTokenizer.vocab_size))
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking of input_ids (batch, L) int64 → (masked inputs (batch, L) int64, labels (batch, L) int64).

    A position is eligible when :func:`~mamba_bio_audio.targets.counted_mask` counts it as a target (not PAD,
    not -100) and its id is in ``maskable_ids`` (A, C, G, T: N and the specials are never chosen, as Caduceus,
    which turns N into PAD). Each eligible position is chosen with ``probability``; a chosen one becomes
    ``mask_token_id`` with probability ``mask_fraction``, a uniform draw from ``random_ids`` with
    ``random_fraction``, else keeps its token. labels: the original id at chosen positions, -100 elsewhere.
    Draws come from ``generator`` (a CPU generator) and do not depend on the device.
    """
    for name, value in (("probability", probability), ("mask_fraction", mask_fraction),
                        ("random_fraction", random_fraction)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must lie in [0, 1]; got {value!r}")
    if mask_fraction + random_fraction > 1.0:
        raise ValueError(f"mask_fraction + random_fraction must be <= 1; got {mask_fraction} + {random_fraction}")
    if not random_ids:
        raise ValueError("random_ids must name at least one token id")
    ids = input_ids.cpu()
    eligible = counted_mask(ids, pad_token_id) & torch.isin(ids, torch.tensor(list(maskable_ids)))
    chosen = eligible & (torch.rand(ids.shape, generator=generator) < probability)
    action = torch.rand(ids.shape, generator=generator)
    replacement = torch.tensor(list(random_ids))[torch.randint(len(random_ids), ids.shape, generator=generator)]
    masked = torch.where(chosen & (action < mask_fraction), mask_token_id, ids)
    randomized = chosen & (action >= mask_fraction) & (action < mask_fraction + random_fraction)
    masked = torch.where(randomized, replacement, masked)
    labels = torch.where(chosen, ids, IGNORE_INDEX)
    return masked.to(input_ids.device), labels.to(input_ids.device)


class RCPSBlock(nn.Module):
    """An RCPS residual block on (batch, L, 2·d_model): add + norm of each strand
    (:func:`~mamba_bio_audio.modules.rcps.rcps_add_norm`), then ``RCPSWrapper(mixer)``. Keys: ``norm.weight``,
    ``mixer.submodule.*``."""

    def __init__(self, dim: int, mixer_cls, norm_cls, fused_add_norm: bool, residual_in_fp32: bool):
        super().__init__()
        self.fused_add_norm = fused_add_norm
        self.residual_in_fp32 = residual_in_fp32
        self.norm = norm_cls(dim)
        self.mixer = RCPSWrapper(mixer_cls(dim))

    def forward(self, hidden_states: torch.Tensor, residual: torch.Tensor | None = None, inference_params=None):
        """hidden_states, residual (batch, L, 2·dim). Returns (mixer output, new residual)."""
        hidden_states, residual = rcps_add_norm(self.norm, hidden_states, residual, swap=self.fused_add_norm,
                                                residual_in_fp32=self.residual_in_fp32)
        return self.mixer(hidden_states, inference_params=inference_params), residual


class CaduceusEmbeddings(nn.Module):
    """input_ids (batch, L) int64 → (batch, L, hidden_size). Key: ``word_embeddings.weight`` (or
    ``word_embeddings.embedding.weight`` and ``word_embeddings.complement_map`` with rcps)."""

    def __init__(self, config: CaduceusConfig, device=None, dtype=None):
        super().__init__()
        vocab = config.padded_vocab_size
        if config.rcps:
            self.word_embeddings = RCPSEmbedding(vocab, config.d_model, config.complement_ids(), device=device,
                                                 dtype=dtype)
        else:
            self.word_embeddings = nn.Embedding(vocab, config.d_model, device=device, dtype=dtype)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.word_embeddings(input_ids)


def caduceus_block(config: CaduceusConfig, layer_idx: int, device=None, dtype=None) -> nn.Module:
    """Block ``layer_idx`` of a Caduceus backbone: norm + :class:`~mamba_bio_audio.modules.bimamba.BiMamba` (a
    :class:`Block`), or with ``rcps`` an :class:`RCPSBlock` around it."""
    factory = {"device": device, "dtype": dtype}
    norm_cls = partial(RMSNorm if config.rms_norm else nn.LayerNorm, eps=config.norm_epsilon, **factory)
    ssm_cfg = {k: v for k, v in config.ssm_cfg.items() if k != "layer"}  # "layer" names Mamba-1: checked
    mixer_cls = partial(BiMamba, bidirectional=config.bidirectional,
                        bidirectional_strategy=config.bidirectional_strategy,
                        bidirectional_weight_tie=config.bidirectional_weight_tie,
                        piece_length=config.piece_length, layer_idx=layer_idx, **ssm_cfg, **factory)
    if config.rcps:
        block = RCPSBlock(config.d_model, mixer_cls, norm_cls, config.fused_add_norm, config.residual_in_fp32)
    else:
        block = Block(config.d_model, mixer_cls, norm_cls=norm_cls, fused_add_norm=config.fused_add_norm,
                      residual_in_fp32=config.residual_in_fp32)
    block.layer_idx = layer_idx
    return block


def _rcps_final_norm(norm: nn.Module, hidden_states: torch.Tensor, residual: torch.Tensor, fused_add_norm: bool,
                     residual_in_fp32: bool) -> torch.Tensor:
    return rcps_norm(norm, hidden_states + residual)


class Caduceus(nn.Module):
    """The backbone under upstream's name: ``backbone``, a :class:`~mamba_bio_audio.models.mixer_model.MixerModel`
    of :func:`caduceus_block` blocks and a :class:`CaduceusEmbeddings` (keys ``embeddings.*``,
    ``layers.{i}.norm.weight``, ``layers.{i}.mixer[.submodule].mamba_fwd.*`` and ``.mamba_rev.*``,
    ``norm_f.weight``); forward gives the hidden states (batch, L, hidden_size) (2·d_model with rcps)."""

    def __init__(self, config: CaduceusConfig, device=None, dtype=None):
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.config = config
        self.backbone = MixerModel(
            config.d_model, config.n_layer, 0, config.padded_vocab_size, norm_epsilon=config.norm_epsilon,
            rms_norm=config.rms_norm, initializer_cfg=config.init_options(), fused_add_norm=config.fused_add_norm,
            residual_in_fp32=config.residual_in_fp32, checkpoint_blocks=config.checkpoint_blocks,
            block_factory=partial(caduceus_block, config, **factory), embedding=CaduceusEmbeddings(config, **factory),
            embedding_name="embeddings", final_norm=_rcps_final_norm if config.rcps else final_norm, **factory)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.backbone(input_ids)


# key suffix -> config field behind each dimension (checkpoint error messages): the Mamba mixer's, under any prefix
CADUCEUS_SHAPE_FIELDS = {
    "embeddings.word_embeddings.weight": MAMBA_SHAPE_FIELDS["embedding.weight"],
    "embedding.weight": MAMBA_SHAPE_FIELDS["embedding.weight"],
    "complement_map": MAMBA_SHAPE_FIELDS["embedding.weight"][:1],
    "lm_head.weight": MAMBA_SHAPE_FIELDS["lm_head.weight"],
    "score.weight": MAMBA_SHAPE_FIELDS["score.weight"],
    **{key.replace("mixer.", "."): fields for key, fields in MAMBA_SHAPE_FIELDS.items() if key.startswith("mixer.")},
}
# part of a key -> the config field that decides whether the key exists (first match wins)
CADUCEUS_PRESENCE_FIELDS = {
    "mamba_rev": "bidirectional", "complement_map": "rcps", "word_embeddings.embedding": "rcps",
    "lm_head.lm_head": "rcps", "mixer.submodule": "rcps", "in_proj.bias": "ssm_cfg['bias']",
    "out_proj.bias": "ssm_cfg['bias']", "conv1d.bias": "ssm_cfg['conv_bias']", "norm.bias": "rms_norm",
    "norm_f.bias": "rms_norm",
}


class _CaduceusPretrained(PreTrainedModel):
    """What the Caduceus heads share: the backbone, the complement ids, and reading our folders and upstream's
    (HF ``model_type: "caduceus"``, :mod:`.caduceus_checkpoint`)."""

    config_class = CaduceusConfig
    _shape_fields = CADUCEUS_SHAPE_FIELDS
    _presence_fields = CADUCEUS_PRESENCE_FIELDS

    def __init__(self, config: CaduceusConfig, device=None, dtype=None):
        super().__init__(config)
        self.caduceus = Caduceus(config, device=device, dtype=dtype)
        # complement_ids (padded_vocab,) int64: the complement of every id, for post-hoc RC conjoining (a
        # non-persistent buffer: it follows the model's device and is not in the state dict)
        self.register_buffer("complement_ids", torch.tensor(config.complement_ids(), dtype=torch.long,
                                                            device=device), persistent=False)

    @classmethod
    def from_pretrained(cls, path, device=None, dtype=None, vocab=None, **config_overrides):
        """A model folder, ours or upstream's (``config.json`` + ``model.safetensors`` / ``pytorch_model.bin``),
        in eval mode. ``vocab`` (token -> id, or the characters of a HyenaDNA-style character tokenizer) names
        the folder's token ids when they differ from ours (default: the folder's ``tokenizer_config.json``
        ``characters``, else our ids); see :mod:`mamba_bio_audio.models.caduceus_checkpoint`."""
        return pretrained.load_model(path, cls, device=device, dtype=dtype, options={"vocab": vocab},
                                     **config_overrides)

    @classmethod
    def folder_config(cls, folder, raw: dict, vocab=None) -> tuple[dict, list[int] | None]:
        """(config fields, the vocabulary permutation or None) of a Caduceus folder."""
        return caduceus_checkpoint.folder_config(folder, raw, vocab)

    def convert_state_dict(self, state_dict: dict, context) -> dict:
        return caduceus_checkpoint.caduceus_state_dict(state_dict, self, context)

    def tied_keys(self) -> list[tuple[str, str, str]]:
        return caduceus_checkpoint.tied_keys(self)

    def _conjoined(self) -> bool:
        return (self.config.conjoin_train and self.training) or (self.config.conjoin_eval and not self.training)


class CaduceusForMaskedLM(_CaduceusPretrained):
    """input_ids (batch, L) int64 → logits (batch, L, padded_vocab) of the token at every position.

    ``labels`` (batch, L) int64: the original token at masked positions, -100 (or PAD) elsewhere; the loss is
    :func:`~mamba_bio_audio.losses.token_loss` (no shift: position l predicts its own token, as transformers'
    masked LMs). With ``conjoin_eval`` (in eval mode) or ``conjoin_train`` (in training) the logits are the
    average of the strand's and the reverse-complement strand's, read back on this strand.
    """

    head_type = "masked_lm"

    def __init__(self, config: CaduceusConfig, device=None, dtype=None):
        super().__init__(config, device=device, dtype=dtype)
        vocab = config.padded_vocab_size
        if config.rcps:
            self.lm_head = RCPSLMHead(config.d_model, vocab, config.complement_ids(), device=device, dtype=dtype)
        else:
            self.lm_head = nn.Linear(config.d_model, vocab, bias=False, device=device, dtype=dtype)
        self.tie_weights()

    def tie_weights(self) -> None:
        if not self.config.tie_embeddings:
            return
        embedding = self.caduceus.backbone.embeddings.word_embeddings
        if self.config.rcps:
            self.lm_head.lm_head.weight = embedding.embedding.weight
        else:
            self.lm_head.weight = embedding.weight

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None) -> MaskedLMOutput:
        if self._conjoined():
            complement = self.complement_ids
            both = self.lm_head(self.caduceus(torch.cat([input_ids, rc_ids(input_ids, complement)], dim=0)))
            logits_fwd, logits_rc = both.chunk(2, dim=0)
            logits = (logits_fwd + rc_logits(logits_rc, complement)) / 2
        else:
            logits = self.lm_head(self.caduceus(input_ids))
        loss = None if labels is None else token_loss(logits, labels, self.config.pad_token_id)
        return MaskedLMOutput(logits=logits, loss=loss)


class CaduceusForSequenceClassification(_CaduceusPretrained):
    """input_ids (batch, L) int64 → class logits (batch, num_labels).

    Pooling (``config.pooling``, pad-aware: ``attention_mask`` or ids equal to ``pad_token_id`` are left out):
    with ``rcps`` the RC-invariant :func:`~mamba_bio_audio.modules.rcps.rc_invariant_pool`, scored and averaged;
    with ``conjoin_train`` / ``conjoin_eval`` the strand and its reverse complement go through the backbone and
    their scores are averaged (post-hoc conjoining, RC-invariant too); else one pooled vector. Loading a
    masked-LM folder keeps the backbone, ignores the LM head and initialises ``score`` N(0, initializer_range).
    """

    head_type = "classification"
    _keys_allowed_missing = ("score.weight",)
    _keys_allowed_unexpected = ("lm_head.weight", "lm_head.lm_head.weight", "lm_head.complement_map")

    def __init__(self, config: CaduceusConfig, device=None, dtype=None):
        super().__init__(config, device=device, dtype=dtype)
        self.score = self.init_head(nn.Linear(config.d_model, config.num_labels, bias=False, device=device,
                                              dtype=dtype), config.init_options()["initializer_range"])

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None) -> SequenceClassifierOutput:
        """input_ids (batch, L) int64; attention_mask (batch, L), 1 at real tokens; labels (batch,) int64 class
        ids (float targets when num_labels == 1: regression with MSE)."""
        mask = self.real_tokens(input_ids, attention_mask)
        mode = self.config.pooling
        if self.config.rcps:
            pooled_fwd, pooled_rc = rc_invariant_pool(self.caduceus(input_ids), mode, mask)
            logits = (self.score(pooled_fwd) + self.score(pooled_rc)) / 2
        elif self._conjoined():
            hidden = self.caduceus(torch.cat([input_ids, rc_ids(input_ids, self.complement_ids)], dim=0))
            hidden_fwd, hidden_rc = hidden.chunk(2, dim=0)
            mask_rc = None if mask is None else mask.flip(-1)
            logits = (self.score(pool(hidden_fwd, mode, mask)) + self.score(pool(hidden_rc, mode, mask_rc))) / 2
        else:
            logits = self.score(pool(self.caduceus(input_ids), mode, mask))
        loss = None if labels is None else classification_loss(logits, labels, self.config.num_labels)
        return SequenceClassifierOutput(logits=logits, loss=loss)
