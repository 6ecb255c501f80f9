"""Embeddings of DNA sequences from any DNA model we load: per sequence (pooled) or per base, from a chosen layer.

Every model :func:`mamba_bio_audio.models.load_pretrained` builds over a :class:`~.models.mixer_model.MixerModel`
backbone works: Mamba LMs and classifiers (ours, ``mamba_ssm`` and transformers folders), Transformer++ models,
Caduceus masked LMs and classifiers (ours and published Hugging Face folders).

* **Layer**: ``layer=None`` (default) is the backbone's output, after the final norm (what the heads read);
  ``layer=k`` (0-based, ``0 <= k < n_layer``, as in the key ``layers.{k}``) is the residual stream after block
  ``k`` (the block's output plus its residual), before any norm.
* **Per sequence**: the mean over the valid tokens (``attention_mask``, else ids other than the model's PAD).
  For RCPS Caduceus models the hidden states carry both strands (2·d_model channels); the sequence embedding is
  the RC-invariant pooling, the mean of the forward half and of the channel-flipped reverse half
  (:func:`~.modules.rcps.rc_invariant_pool`): a sequence and its reverse complement embed to the same vector.
* **Per base**: the hidden states themselves (batch, L, D) fp32 (2·d_model channels for RCPS models).
* **Long sequences**: with ``chunk_size`` a model whose every mixer passes state (Mamba) runs in chunks with
  the state carried from one chunk to the next (:func:`~.models.chunked.run_chunks`): activations of one chunk
  only, and the same embeddings as one pass (up to float summation order).

:func:`head_features` gives, for a sequence classifier, the very vector its linear ``score`` head reads, so that
``model.score(head_features(model, ids)) == model(ids).logits``: the inputs of a linear probe.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mamba_bio_audio.models import chunked
from mamba_bio_audio.modules.block import run_block
from mamba_bio_audio.modules.pooling import PoolSummary, merge, pool, pooled, summarize
from mamba_bio_audio.modules.rcps import rc_invariant_pool
from mamba_bio_audio.tokenizers import NucleotideTokenizer

__all__ = ["backbone_of", "check_dna_model", "embed_sequences", "embed_tokens", "head_features", "is_unidirectional",
           "is_rcps", "padded_batch"]

DNA_VOCAB_SIZES = range(NucleotideTokenizer.vocab_size, 17)  # 12 ids, padded up to 16 by some folders


def backbone_of(model: nn.Module) -> nn.Module:
    """The :class:`~.models.mixer_model.MixerModel` of ``model`` (``model.backbone``, or ``model.caduceus.backbone``
    for Caduceus); ValueError for a model without one (SaShiMi)."""
    caduceus = getattr(model, "caduceus", None)
    backbone = caduceus.backbone if caduceus is not None else getattr(model, "backbone", None)
    if backbone is None or not hasattr(backbone, "layers"):
        raise ValueError(f"{type(model).__name__} has no block backbone to embed with (Mamba, Transformer++ and "
                         "Caduceus models have one)")
    return backbone


def check_dna_model(model: nn.Module, name: str = "the model") -> None:
    """ValueError unless ``model`` reads the DNA tokens (the HyenaDNA/Caduceus ids: a vocabulary of 12, padded to
    at most 16), naming ``name`` and the vocabulary it has."""
    vocab = getattr(getattr(model, "config", None), "vocab_size", None)
    if vocab not in DNA_VOCAB_SIZES:
        raise ValueError(f"{name} is not a DNA model: its vocabulary has {vocab} tokens, where a DNA model reads the "
                         f"{NucleotideTokenizer.vocab_size} DNA ids (A C G T N and specials); an audio or text model "
                         "cannot read DNA")


def is_rcps(model: nn.Module) -> bool:
    """Whether ``model`` is a reverse-complement parameter-sharing (RCPS) Caduceus model."""
    return bool(getattr(getattr(model, "config", None), "rcps", False))


def is_unidirectional(model: nn.Module) -> bool:
    """Whether a token's hidden states depend only on the tokens before it (Mamba, Transformer++), so right
    padding leaves the real tokens' states unchanged; Caduceus reads both directions."""
    return getattr(getattr(model, "config", None), "architecture", None) != "caduceus"


def _check_layer(backbone: nn.Module, layer: int | None) -> None:
    n_layer = len(backbone.layers)
    if layer is not None and not (isinstance(layer, int) and 0 <= layer < n_layer):
        raise ValueError(f"layer must be None (the output, after the final norm) or a block index 0..{n_layer - 1}; "
                         f"got {layer!r}")


class _UpToBlock(nn.Module):
    """The first ``layer + 1`` blocks of a backbone; :meth:`forward_with_state` gives the residual stream after
    the last of them, with the blocks' states (the contract of ``MixerModel.forward_with_state``)."""

    def __init__(self, backbone: nn.Module, layer: int):
        super().__init__()
        self.inner, self.layer = backbone, layer

    def forward_with_state(self, input_ids: torch.Tensor, states: list | None = None):
        hidden, residual, new_states = self.inner.embed(input_ids), None, []
        for i, block in enumerate(self.inner.layers[: self.layer + 1]):
            hidden, residual, state = block.forward_with_state(hidden, residual, None if states is None else states[i])
            new_states.append(state)
        return _stream(hidden, residual), new_states


def _stream(hidden: torch.Tensor, residual: torch.Tensor | None) -> torch.Tensor:
    return (hidden.float() if residual is None else hidden.float() + residual.float())


def _hidden(backbone: nn.Module, input_ids: torch.Tensor, layer: int | None) -> torch.Tensor:
    """One pass: (batch, L, D) fp32 at ``layer``."""
    if layer is None:
        return backbone(input_ids).float()
    hidden, residual = backbone.embed(input_ids), None
    for block in backbone.layers[: layer + 1]:
        hidden, residual = run_block(block, hidden, residual)
    return _stream(hidden, residual)


def _chunked_model(backbone: nn.Module, layer: int | None, chunk_size: int):
    if not getattr(backbone, "passes_state", False):
        raise ValueError(f"chunk_size={chunk_size}: only models whose every mixer passes state (Mamba) run in "
                         "chunks; this model must read each sequence in one pass (chunk_size=None)")
    return _Holder(backbone if layer is None else _UpToBlock(backbone, layer))


class _Holder(nn.Module):
    """What :func:`~.models.chunked.run_chunks` reads: a model with a ``backbone``."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone


def _chunk_summary(model, hidden: torch.Tensor, mask: torch.Tensor | None) -> PoolSummary:
    return summarize(hidden, mask)


def _chunk_hidden(model, hidden: torch.Tensor) -> torch.Tensor:
    return hidden.float()


def _mask(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    if hasattr(model, "real_tokens"):
        return model.real_tokens(input_ids, attention_mask)
    return None if attention_mask is None else attention_mask.to(device=input_ids.device, dtype=torch.bool)


@torch.no_grad()
def embed_tokens(model: nn.Module, input_ids: torch.Tensor, *, layer: int | None = None,
                 chunk_size: int | None = None) -> torch.Tensor:
    """Per-base embeddings: input_ids (batch, L) int64 → hidden states (batch, L, D) fp32 at ``layer`` (see the
    module docstring; D is 2·d_model for RCPS models). ``chunk_size``: run in chunks with state passing."""
    backbone = backbone_of(model)
    _check_layer(backbone, layer)
    if chunk_size is None:
        return _hidden(backbone, input_ids, layer)
    pieces, _ = chunked.run_chunks(_chunked_model(backbone, layer, chunk_size), input_ids, chunk_size, _chunk_hidden)
    return torch.cat(pieces, dim=1)


@torch.no_grad()
def embed_sequences(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
                    layer: int | None = None, chunk_size: int | None = None) -> torch.Tensor:
    """Per-sequence embeddings: input_ids (batch, L) int64 → (batch, D) fp32, the mean over valid tokens at
    ``layer`` (RCPS models: the RC-invariant pooling, D = d_model). attention_mask (batch, L), 1 at real tokens
    (default: ids other than the model's PAD); pad on the right, and for models that read both directions
    (Caduceus) batch only sequences of one length (:func:`padded_batch` refuses otherwise).
    ``chunk_size``: run in chunks with state passing, in the memory of one chunk (Mamba models)."""
    backbone = backbone_of(model)
    _check_layer(backbone, layer)
    mask = _mask(model, input_ids, attention_mask)
    if is_rcps(model):
        if chunk_size is not None:
            raise ValueError("RCPS models read both directions: they cannot run in chunks (chunk_size=None)")
        forward, reverse = rc_invariant_pool(_hidden(backbone, input_ids, layer), "mean", mask)
        return ((forward + reverse) / 2).float()
    if chunk_size is None:
        return pooled(summarize(_hidden(backbone, input_ids, layer), mask), "mean")
    pieces, _ = chunked.run_chunks(_chunked_model(backbone, layer, chunk_size), input_ids, chunk_size,
                                   _chunk_summary, (mask,))
    summary = pieces[0]
    for piece in pieces[1:]:
        summary = merge(summary, piece)
    return pooled(summary, "mean")


@torch.no_grad()
def head_features(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
                  ) -> torch.Tensor:
    """The vector a sequence classifier's linear ``score`` head reads, (batch, d_model) fp32, such that
    ``model.score(features)`` equals ``model(input_ids).logits``: the pooling ``config.pooling`` (chunked when the
    model's config says so); for RCPS the mean of the two RC-invariant halves; with conjoining the mean of the
    strand's and the reverse complement's pooled vectors (the head is linear, so averaging its inputs is
    averaging its outputs)."""
    if not hasattr(model, "score"):
        raise ValueError(f"{type(model).__name__} has no classification head (score)")
    mode = model.config.pooling
    mask = _mask(model, input_ids, attention_mask)
    if model.config.architecture == "caduceus":
        if model.config.rcps:
            forward, reverse = rc_invariant_pool(model.caduceus(input_ids), mode, mask)
            return ((forward + reverse) / 2).float()
        if model._conjoined():
            from mamba_bio_audio.modules.rcps import rc_ids

            hidden = model.caduceus(torch.cat([input_ids, rc_ids(input_ids, model.complement_ids)], dim=0))
            hidden_fwd, hidden_rc = hidden.chunk(2, dim=0)
            mask_rc = None if mask is None else mask.flip(-1)
            return ((pool(hidden_fwd, mode, mask) + pool(hidden_rc, mode, mask_rc)) / 2).float()
        return pool(model.caduceus(input_ids), mode, mask).float()
    return pooled(model._summary(input_ids, mask, None), mode).float()


def padded_batch(sequences: Sequence[torch.Tensor], pad_token_id: int, causal: bool
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (input_ids (batch, L) int64, attention_mask (batch, L) bool) of 1-D int64 id tensors.
    A model that reads both directions would see the padding: for it (``causal=False``) the sequences must have
    one length (ValueError otherwise; group sequences by length first)."""
    lengths = [int(s.numel()) for s in sequences]
    if not causal and len(set(lengths)) > 1:
        raise ValueError(f"a bidirectional model's batch must hold sequences of one length; got lengths {lengths}")
    width = max(lengths)
    ids = torch.full((len(sequences), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.bool)
    for row, seq in enumerate(sequences):
        ids[row, : seq.numel()] = seq
        mask[row, : seq.numel()] = True
    return ids, mask
