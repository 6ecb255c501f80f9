"""``MambaForSequenceClassification``: the Mamba backbone, pad-aware pooling over the sequence and a linear head.

The paper's Great Apes head uses "only the last element" of the output (``pooling: last``). Pooling skips PAD
positions (``attention_mask`` when given, else ids equal to ``config.pad_token_id``): ``last`` is the last real
token, ``mean`` averages real tokens. Pad on the right: the model is causal, so right padding does not change
the hidden states of the real tokens, while left padding does.

With ``config.chunk_size`` the backbone runs in chunks with state passing and the chunks' pooling summaries are
merged (:func:`.chunked.pool_summary_chunked`): the same logits and gradients for every pooling, with the
activation memory of one chunk; ``config.tbptt`` detaches the states between chunks.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from mamba_bio_audio.checkpoint import MAMBA_PRESENCE_FIELDS, MAMBA_SHAPE_FIELDS, PretrainedMixin, classification_loss
from mamba_bio_audio.config import MambaConfig
from mamba_bio_audio.models import chunked
from mamba_bio_audio.models.mixer_model import MixerModel
from mamba_bio_audio.modules.pooling import merge, pooled, summarize

__all__ = ["MambaForSequenceClassification", "SequenceClassifierOutput"]

_POOL_CACHE_KEY = "pooling"  # beside the layers' integer keys in inference_params.key_value_memory_dict


class SequenceClassifierOutput(NamedTuple):
    """logits (batch, num_labels) in the activation dtype; loss: scalar fp32 when labels were given."""

    logits: torch.Tensor
    loss: torch.Tensor | None = None


class MambaForSequenceClassification(PretrainedMixin, nn.Module):
    """input_ids (batch, L) int64 → class logits (batch, num_labels).

    Keys: ``backbone.*`` (as in :class:`~mamba_bio_audio.models.MambaLMHeadModel`) and ``score.weight``
    (num_labels, d_model), initialised N(0, initializer_range). Loading a pretrained LM folder keeps the
    backbone, ignores ``lm_head.weight`` and initialises ``score``.
    """

    backbone_cls = MixerModel  # builds the backbone from the config (the Transformer++ baseline swaps it)
    config_class = MambaConfig
    head_type = "classification"
    _shape_fields = MAMBA_SHAPE_FIELDS
    _presence_fields = MAMBA_PRESENCE_FIELDS
    _keys_allowed_missing = ("score.weight",)
    _keys_allowed_unexpected = ("lm_head.weight",)

    def __init__(self, config: MambaConfig, initializer_cfg: dict | None = None, device=None, dtype=None):
        super().__init__()
        self.config = config
        self.backbone = self.backbone_cls.from_config(config, initializer_cfg=initializer_cfg, device=device,
                                                      dtype=dtype)
        self.score = nn.Linear(config.d_model, config.num_labels, bias=False, device=device, dtype=dtype)
        nn.init.normal_(self.score.weight, std=config.initializer_range)

    def allocate_inference_cache(self, batch_size: int, max_seqlen: int | None = None, dtype=None):
        """A zeroed streaming state (``InferenceParams``) for ``batch_size`` sequences; see :meth:`step`."""
        from mamba_bio_audio.generation import InferenceParams

        cache = self.backbone.allocate_inference_cache(batch_size, max_seqlen, dtype=dtype)
        return InferenceParams(max_seqlen=max_seqlen, max_batch_size=batch_size, key_value_memory_dict=cache)

    def _real_tokens(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor | None:
        if attention_mask is not None:
            return attention_mask.to(device=input_ids.device, dtype=torch.bool)
        if self.config.pad_token_id is not None:
            return input_ids != self.config.pad_token_id
        return None

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, inference_params=None) -> SequenceClassifierOutput:
        """input_ids (batch, L) int64; attention_mask (batch, L), 1 at real tokens; labels (batch,) int64 class
        ids (float targets when num_labels == 1: regression with MSE).

        With ``inference_params`` the pooling summary of the tokens seen so far is kept in the cache, so the
        logits after a chunk are those of the whole sequence up to it (streaming classification).
        """
        mask = self._real_tokens(input_ids, attention_mask)
        if self.config.chunk_size is not None and inference_params is None:
            summary = chunked.pool_summary_chunked(self, input_ids, mask, self.config.chunk_size,
                                                   detach=self.config.tbptt)
            dtype = self.score.weight.dtype
        else:
            hidden_states = self.backbone(input_ids, inference_params=inference_params)
            summary = summarize(hidden_states, mask)
            dtype = hidden_states.dtype
        if inference_params is not None:
            cache = inference_params.key_value_memory_dict
            if inference_params.seqlen_offset > 0 and _POOL_CACHE_KEY in cache:
                summary = merge(cache[_POOL_CACHE_KEY], summary)
            cache[_POOL_CACHE_KEY] = summary
        logits = self.score(pooled(summary, self.config.pooling).to(dtype))
        loss = None if labels is None else classification_loss(logits, labels, self.config.num_labels)
        return SequenceClassifierOutput(logits=logits, loss=loss)

    @torch.no_grad()
    def step(self, input_ids: torch.Tensor, inference_params, attention_mask: torch.Tensor | None = None):
        """Consume input_ids (batch, T) after the tokens already seen, advance ``seqlen_offset`` by T and return
        the logits (batch, num_labels) of the sequence so far."""
        logits = self.forward(input_ids, attention_mask=attention_mask, inference_params=inference_params).logits
        inference_params.seqlen_offset += input_ids.shape[1]
        return logits
