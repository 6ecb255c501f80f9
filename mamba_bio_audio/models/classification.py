"""Sequence classifiers: a backbone, pad-aware pooling over the sequence and a linear head (``SequenceClassifier``
over any causal backbone, ``MambaForSequenceClassification`` on the Mamba one).

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

from mamba_bio_audio.config import MambaConfig
from mamba_bio_audio.losses import classification_loss
from mamba_bio_audio.models import chunked
from mamba_bio_audio.models.base import PreTrainedModel
from mamba_bio_audio.models.mamba_folders import MambaFolders
from mamba_bio_audio.models.mixer_model import MixerModel
from mamba_bio_audio.modules.pooling import PoolSummary, merge, pooled, summarize

__all__ = ["MambaForSequenceClassification", "SequenceClassifier", "SequenceClassifierOutput"]

_POOL_CACHE_KEY = "pooling"  # beside the layers' integer keys in inference_params.key_value_memory_dict


class SequenceClassifierOutput(NamedTuple):
    """logits (batch, num_labels) in the activation dtype; loss: scalar fp32 when labels were given."""

    logits: torch.Tensor
    loss: torch.Tensor | None = None


class SequenceClassifier(PreTrainedModel):
    """input_ids (batch, L) int64 → class logits (batch, num_labels) over any causal backbone.

    Keys: ``backbone.*`` and ``score.weight`` (num_labels, d_model), initialised N(0, initializer_range).
    Loading a pretrained LM folder keeps the backbone, ignores ``lm_head.weight`` and initialises ``score``.
    Streaming (:meth:`prefill`, :meth:`step`) keeps the pooling summary of the tokens seen so far in the
    decoding state, so the logits after a chunk are those of the whole sequence up to it.
    """

    backbone_cls: type[nn.Module] = MixerModel
    head_type = "classification"
    _keys_allowed_missing = ("score.weight",)
    _keys_allowed_unexpected = ("lm_head.weight",)

    def __init__(self, config, initializer_cfg: dict | None = None, device=None, dtype=None):
        super().__init__(config)
        self.backbone = self.backbone_cls.from_config(config, initializer_cfg=initializer_cfg, device=device,
                                                      dtype=dtype)
        self.score = self.init_head(nn.Linear(config.d_model, config.num_labels, bias=False, device=device,
                                              dtype=dtype), config.initializer_range)

    def allocate_inference_cache(self, batch_size: int, max_seqlen: int | None = None, dtype=None):
        """A zeroed streaming state (``InferenceParams``) for ``batch_size`` sequences; see :meth:`prefill`."""
        from mamba_bio_audio.generation import InferenceParams

        cache = self.backbone.allocate_inference_cache(batch_size, max_seqlen, dtype=dtype)
        return InferenceParams(max_seqlen=max_seqlen, max_batch_size=batch_size, key_value_memory_dict=cache)

    def _summary(self, input_ids: torch.Tensor, mask: torch.Tensor | None, inference_params) -> PoolSummary:
        return summarize(self.backbone(input_ids, inference_params=inference_params), mask)

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, inference_params=None) -> SequenceClassifierOutput:
        """input_ids (batch, L) int64; attention_mask (batch, L), 1 at real tokens; labels (batch,) int64 class
        ids (float targets when num_labels == 1: regression with MSE). With ``inference_params`` the pooling
        summary is merged with (and stored in) the state's."""
        mask = self.real_tokens(input_ids, attention_mask)
        summary = self._summary(input_ids, mask, inference_params)
        if inference_params is not None:
            cache = inference_params.key_value_memory_dict
            if inference_params.seqlen_offset > 0 and _POOL_CACHE_KEY in cache:
                summary = merge(cache[_POOL_CACHE_KEY], summary)
            cache[_POOL_CACHE_KEY] = summary
        logits = self.score(pooled(summary, self.config.pooling).to(self.score.weight.dtype))
        loss = None if labels is None else classification_loss(logits, labels, self.config.num_labels)
        return SequenceClassifierOutput(logits=logits, loss=loss)

    @torch.no_grad()
    def prefill(self, input_ids: torch.Tensor, state, attention_mask: torch.Tensor | None = None):
        """Consume input_ids (batch, T) after the tokens already seen → (logits (batch, num_labels) of the
        sequence so far, state advanced by T in place)."""
        logits = self.forward(input_ids, attention_mask=attention_mask, inference_params=state).logits
        state.seqlen_offset += input_ids.shape[1]
        return logits, state

    @torch.no_grad()
    def step(self, input_ids: torch.Tensor, state):
        """input_ids (batch,) int64, the next token → (logits (batch, num_labels) of the sequence so far, state
        advanced by one in place): the LMs' ``step`` convention."""
        return self.prefill(input_ids[:, None], state)


class MambaForSequenceClassification(MambaFolders, SequenceClassifier):
    """:class:`SequenceClassifier` on the Mamba backbone; with ``config.chunk_size`` the backbone runs in chunks
    with state passing and the chunks' pooling summaries are merged (:func:`.chunked.pool_summary_chunked`);
    ``config.tbptt`` detaches the states between chunks."""

    config_class = MambaConfig

    def _summary(self, input_ids: torch.Tensor, mask: torch.Tensor | None, inference_params) -> PoolSummary:
        if self.config.chunk_size is not None and inference_params is None:
            return chunked.pool_summary_chunked(self, input_ids, mask, self.config.chunk_size,
                                                detach=self.config.tbptt)
        return super()._summary(input_ids, mask, inference_params)
