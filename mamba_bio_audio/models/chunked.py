"""Sequence-chunked runs of a Mamba model: exact chunked training and truncated BPTT.

A sequence (batch, L) is cut along L into chunks. Each chunk runs through
:meth:`~mamba_bio_audio.models.MixerModel.forward_with_state` from the states the previous chunk left (every
layer's conv state and SSM state), and its head output (summed token losses, logits, or a pooling summary) is
taken inside the chunk, so nothing of length L but the input ids and the labels is ever kept.

* **Exact** (``detach=False``): with autograd recording, each chunk but the last runs under non-reentrant
  activation checkpointing: the forward keeps only the chunk's inputs (ids, labels, incoming states) and backward
  runs the chunk again, then backpropagates through it and into the incoming states, i.e. into the previous chunk
  (the last chunk's backward comes first, so it keeps its activations instead of recomputing them). Peak
  activation memory is that of one chunk; loss and gradients are those of one pass over the whole sequence
  (up to float summation order).
* **Truncated BPTT** (``detach=True``): the states are detached at every chunk boundary, so gradients stay
  inside a chunk; forward values are unchanged. The states after the last chunk can be passed to the next call
  (the next batch of a stream) as ``states``.

A state list holds one ``(conv_state (batch, d_inner, d_conv - 1) in the activation dtype, ssm_state
(batch, d_inner, d_state) fp32)`` per layer.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch.utils.checkpoint import checkpoint

from mamba_bio_audio.losses import token_loss_sum
from mamba_bio_audio.modules.pooling import PoolSummary, merge, summarize
from mamba_bio_audio.targets import counted_mask, counted_targets

__all__ = ["ChunkedLMOutput", "causal_lm_chunked", "chunk_lengths", "detach_states", "pool_summary_chunked",
           "run_chunks"]

States = list[tuple[torch.Tensor, torch.Tensor]]


class ChunkedLMOutput(NamedTuple):
    """loss: mean cross entropy (fp32 scalar) over the targets that count, when labels were given; logits
    (batch, L, padded_vocab) when they were not; states: every layer's states after the last token."""

    loss: torch.Tensor | None
    logits: torch.Tensor | None
    states: States


def chunk_lengths(length: int, chunks: int | Sequence[int]) -> list[int]:
    """Lengths of the chunks of a sequence of ``length`` tokens: ``chunks`` is a chunk size (the last chunk
    takes the remainder) or the explicit lengths (positive, summing to ``length``)."""
    if isinstance(chunks, int) and not isinstance(chunks, bool):
        if chunks < 1:
            raise ValueError(f"chunk size must be a positive integer; got {chunks}")
        return [chunks] * (length // chunks) + ([length % chunks] if length % chunks else [])
    lengths = [int(n) for n in chunks]
    if not lengths or min(lengths) < 1 or sum(lengths) != length:
        raise ValueError(f"chunk lengths must be positive and sum to the sequence length {length}; got {lengths}")
    return lengths


def detach_states(states: States | None) -> States | None:
    """The same states cut from the autograd graph (truncated BPTT; carrying states across batches)."""
    if states is None:
        return None
    return [(conv.detach(), ssm.detach()) for conv, ssm in states]


def _chunk(model, head: Callable, input_ids: torch.Tensor, per_token: tuple, states: States | None):
    hidden_states, states = model.backbone.forward_with_state(input_ids, states)
    return head(model, hidden_states, *per_token), states


def run_chunks(model, input_ids: torch.Tensor, chunks: int | Sequence[int], head: Callable,
               per_token: Sequence[torch.Tensor | None] = (), states: States | None = None,
               detach: bool = False) -> tuple[list, States]:
    """Run ``model.backbone`` over input_ids (batch, L) int64 chunk by chunk (see the module docstring).

    ``head(model, hidden_states, *per_token_chunk)`` maps each chunk's hidden states (batch, C, d_model) to
    the chunk's result; ``per_token`` tensors (batch, L, ...) or None are sliced along L with the ids.
    When autograd records, every chunk but the last is checkpointed (the last one's backward runs first, so keeping
    its activations costs no more memory than recomputing them). Returns (the results of the
    chunks in order, the states after the last token).
    """
    lengths = chunk_lengths(input_ids.shape[1], chunks)
    recording = torch.is_grad_enabled()
    results, start = [], 0
    for i, length in enumerate(lengths):
        window = slice(start, start + length)
        start += length
        if detach:
            states = detach_states(states)
        sliced = tuple(None if t is None else t[:, window] for t in per_token)
        args = (model, head, input_ids[:, window], sliced, states)
        # the last chunk keeps its activations: its backward comes first, and would recompute them at once
        checkpointed = recording and i < len(lengths) - 1
        result, states = checkpoint(_chunk, *args, use_reentrant=False) if checkpointed else _chunk(*args)
        results.append(result)
    return results, states


def _loss_sum(model, hidden_states: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return token_loss_sum(model.lm_head(hidden_states), labels)


def _logits(model, hidden_states: torch.Tensor) -> torch.Tensor:
    return model.lm_head(hidden_states)


def causal_lm_chunked(model, input_ids: torch.Tensor, labels: torch.Tensor | None, chunks: int | Sequence[int],
                      states: States | None = None, detach: bool = False,
                      pad_token_id: int | None = None) -> ChunkedLMOutput:
    """Causal LM ``model`` (a :class:`~mamba_bio_audio.models.MambaLMHeadModel`) over input_ids (batch, L)
    int64 in chunks (a chunk size or explicit lengths, see :func:`chunk_lengths`), starting from ``states``
    (None: a fresh sequence).

    With labels (batch, L) int64 (the aligned target of each position, counted as :mod:`mamba_bio_audio.targets` says)
    the loss is the mean cross entropy over all counted targets, exactly as
    :func:`~mamba_bio_audio.losses.token_loss` on the whole sequence (0 with a gradient path when nothing counts), and no logits are kept; without
    labels the logits are returned.
    """
    if labels is None:
        pieces, states = run_chunks(model, input_ids, chunks, _logits, states=states, detach=detach)
        return ChunkedLMOutput(loss=None, logits=torch.cat(pieces, dim=1), states=states)
    labels = counted_targets(labels.to(input_ids.device), pad_token_id)
    pieces, states = run_chunks(model, input_ids, chunks, _loss_sum, (labels,), states=states, detach=detach)
    count = int(counted_mask(labels).sum())
    loss = torch.stack(pieces).sum() / max(count, 1)
    return ChunkedLMOutput(loss=loss, logits=None, states=states)


def _summary(model, hidden_states: torch.Tensor, mask: torch.Tensor | None) -> PoolSummary:
    return summarize(hidden_states, mask)


def pool_summary_chunked(model, input_ids: torch.Tensor, mask: torch.Tensor | None,
                         chunks: int | Sequence[int], detach: bool = False) -> PoolSummary:
    """Pooling summary (:mod:`~mamba_bio_audio.modules.pooling`) of the backbone's hidden states over
    input_ids (batch, L), run in chunks; ``mask`` (batch, L) bool marks real tokens (None: all). Merging the
    chunks' summaries gives exactly the summary of the whole sequence, so every pooling works chunked."""
    pieces, _ = run_chunks(model, input_ids, chunks, _summary, (mask,), detach=detach)
    summary = pieces[0]
    for piece in pieces[1:]:
        summary = merge(summary, piece)
    return summary
