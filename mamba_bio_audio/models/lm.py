"""``MambaLMHeadModel``: the causal language model of ``mamba_ssm.models.mixer_seq_simple``.

Backbone + ``lm_head`` Linear(d_model, padded_vocab, bias=False), tied to the embedding by default. The
vocabulary is padded to a multiple of ``pad_vocab_size_multiple`` (DNA: 12 → 16); padding rows never win
generation because :func:`~mamba_bio_audio.generation.generate` samples over ``config.vocab_size`` only.

With ``config.chunk_size`` the forward pass runs in chunks with state passing (:mod:`.chunked`); with
``config.tbptt`` too, the states are detached between chunks and, in training mode, carried from one batch to
the next (:meth:`MambaLMHeadModel.reset_stream` starts a new stream).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from mamba_bio_audio import generation
from mamba_bio_audio.config import MambaConfig
from mamba_bio_audio.losses import shift_labels, token_loss
from mamba_bio_audio.models import chunked
from mamba_bio_audio.models.base import PreTrainedModel
from mamba_bio_audio.models.fast_decode import FastMambaStep
from mamba_bio_audio.models.mamba_folders import MambaFolders
from mamba_bio_audio.models.mixer_model import MixerModel
from mamba_bio_audio.targets import IGNORE_INDEX

__all__ = ["CausalLM", "CausalLMOutput", "MambaLMHeadModel", "causal_targets"]


class CausalLMOutput(NamedTuple):
    """logits (batch, L', padded_vocab) in the activation dtype (None from a chunked pass with labels: keeping
    them would cost L · vocab); loss: scalar fp32 when labels or targets were given."""

    logits: torch.Tensor | None
    loss: torch.Tensor | None = None


def causal_targets(labels: torch.Tensor | None, targets: torch.Tensor | None) -> torch.Tensor | None:
    """The aligned targets (batch, L) of a causal-LM call: ``labels`` shifted (transformers' meaning: pass the
    input ids, position t is trained on ``labels[t + 1]``), or ``targets`` as given (already aligned)."""
    if labels is not None and targets is not None:
        raise ValueError("give labels (the sequence: shifted inside the model) or targets (already aligned to the "
                         "positions), not both")
    return shift_labels(labels) if labels is not None else targets


class CausalLM(PreTrainedModel):
    """input_ids (batch, L) int64 → next-token logits (batch, L, padded_vocab) over any backbone.

    Keys: ``backbone.*`` (``backbone_cls.from_config(config)``), ``lm_head.weight`` (tied to
    ``backbone.embedding.weight`` when ``config.tie_embeddings``). Decoding contract: :meth:`allocate_inference_cache`,
    :meth:`prefill`, :meth:`step` (see :mod:`mamba_bio_audio.generation`).
    """

    backbone_cls: type[nn.Module] = MixerModel
    head_type = "causal_lm"

    def __init__(self, config, initializer_cfg: dict | None = None, device=None, dtype=None):
        super().__init__(config)
        self.backbone = self.backbone_cls.from_config(config, initializer_cfg=initializer_cfg, device=device,
                                                      dtype=dtype)
        self.lm_head = nn.Linear(config.d_model, config.padded_vocab_size, bias=False, device=device, dtype=dtype)
        self.tie_weights()

    def tie_weights(self) -> None:
        if self.config.tie_embeddings:
            self.lm_head.weight = self.backbone.embedding.weight

    def tied_keys(self) -> list[tuple[str, str, str]]:
        return [("backbone.embedding.weight", "lm_head.weight", "tie_embeddings")] if self.config.tie_embeddings \
            else []

    def allocate_inference_cache(self, batch_size: int, max_seqlen: int | None = None,
                                 dtype=None, *, fast: bool = True) -> generation.InferenceParams:
        """A zeroed decoding state for ``batch_size`` sequences: ``InferenceParams`` whose
        ``key_value_memory_dict`` maps layer_idx to the layer's state (Mamba: conv_state (batch, d_inner, d_conv),
        ssm_state (batch, d_inner, d_state) fp32). ``max_seqlen`` bounds the sequence for backbones whose state
        grows (the Transformer++'s key/value cache); a Mamba state does not. ``fast`` (keyword only): let
        :meth:`step` take the fused CPU step (:mod:`~mamba_bio_audio.models.fast_decode`) where it applies;
        False: always the generic step."""
        cache = self.backbone.allocate_inference_cache(batch_size, max_seqlen, dtype=dtype)
        return generation.InferenceParams(max_seqlen=max_seqlen, max_batch_size=batch_size,
                                          key_value_memory_dict=cache,
                                          fast_step=FastMambaStep.build(self, cache, batch_size) if fast else None)

    def forward(self, input_ids: torch.Tensor, position_ids=None, inference_params=None, num_last_tokens: int = 0,
                labels: torch.Tensor | None = None, *, targets: torch.Tensor | None = None,
                **mixer_kwargs) -> CausalLMOutput:
        """input_ids (batch, L) int64. ``position_ids`` is accepted for API compatibility and unused.
        ``num_last_tokens > 0`` returns logits for the last positions only. ``labels`` (batch, L) int64 mean
        what they mean in transformers: usually the input ids themselves, shifted inside, so position t is
        trained on ``labels[t + 1]`` and the last position on nothing; ``targets`` (keyword only) are already
        aligned, position t on ``targets[t]``. The loss counts the targets
        :func:`~mamba_bio_audio.targets.counted_targets` keeps. ``inference_params`` is read and written, never
        advanced: see :meth:`prefill` and :meth:`step`."""
        targets = causal_targets(labels, targets)
        hidden_states = self.backbone(input_ids, inference_params=inference_params, **mixer_kwargs)
        return self._head(hidden_states, targets, num_last_tokens)

    def _head(self, hidden_states: torch.Tensor, targets: torch.Tensor | None, num_last_tokens: int) -> CausalLMOutput:
        if num_last_tokens > 0:
            hidden_states = hidden_states[:, -num_last_tokens:]
        logits = self.lm_head(hidden_states)
        loss = None
        if targets is not None:
            if num_last_tokens > 0:
                targets = targets[:, -num_last_tokens:]
            loss = token_loss(logits, targets, self.config.pad_token_id)
        return CausalLMOutput(logits=logits, loss=loss)

    @torch.no_grad()
    def prefill(self, input_ids: torch.Tensor, state: generation.InferenceParams):
        """Consume input_ids (batch, T) after the ``state.seqlen_offset`` tokens already seen, in one parallel
        pass from the state → (logits (batch, T, padded_vocab), state advanced by T in place)."""
        logits = self.forward(input_ids, inference_params=state).logits
        state.seqlen_offset += input_ids.shape[1]
        return logits, state

    def step(self, input_ids: torch.Tensor, state: generation.InferenceParams):
        """input_ids (batch,) int64, the next token → (next-token logits (batch, padded_vocab), state advanced
        by one in place): one recurrent step without autograd, fused where the state's ``fast_step`` accepts it
        (numpy kernels: no ``torch.no_grad`` context to enter, a few microseconds a token)."""
        fast = getattr(state, "fast_step", None)
        if fast is not None and fast.accepts(input_ids):
            logits = fast(input_ids)
        else:
            with torch.no_grad():
                logits = self.forward(input_ids[:, None], inference_params=state, num_last_tokens=1).logits[:, -1]
        state.seqlen_offset += 1
        return logits, state

    def generate(self, input_ids: torch.Tensor, max_length: int, top_k: int = 1, top_p: float = 0.0,
                 min_p: float = 0.0, temperature: float = 1.0, return_dict_in_generate: bool = False,
                 output_scores: bool = False, **kwargs):
        """``mamba_ssm``'s ``GenerationMixin.generate``: :func:`mamba_bio_audio.generation.generate` on this model
        (its keyword-only arguments through ``kwargs``)."""
        return generation.generate(self, input_ids, max_length, top_k, top_p, min_p, temperature,
                                   return_dict_in_generate, output_scores, **kwargs)


class MambaLMHeadModel(MambaFolders, CausalLM):
    """input_ids (batch, L) int64 → next-token logits (batch, L, padded_vocab): ``mamba_ssm``'s causal LM.

    Keys: ``backbone.embedding.weight``, ``backbone.layers.{i}.mixer.*``, ``backbone.norm_f.weight``,
    ``lm_head.weight``. Adds to :class:`CausalLM` the chunked and truncated-BPTT forward of
    ``config.chunk_size`` / ``config.tbptt``.
    """

    config_class = MambaConfig

    def __init__(self, config: MambaConfig, initializer_cfg: dict | None = None, device=None, dtype=None):
        super().__init__(config, initializer_cfg=initializer_cfg, device=device, dtype=dtype)
        self.stream_states: list | None = None  # tbptt: every layer's states carried between training batches

    def reset_stream(self) -> None:
        """Forget the states carried between batches (``config.tbptt``): the next batch starts new sequences."""
        self.stream_states = None

    def forward(self, input_ids: torch.Tensor, position_ids=None, inference_params=None, num_last_tokens: int = 0,
                labels: torch.Tensor | None = None, *, targets: torch.Tensor | None = None,
                **mixer_kwargs) -> CausalLMOutput:
        """:meth:`CausalLM.forward`; with ``config.chunk_size`` (and no ``inference_params``) the sequence runs in
        chunks (:mod:`.chunked`) and, given labels or targets, only the loss is returned (logits None)."""
        if self.config.chunk_size is not None and inference_params is None:
            return self._forward_chunked(input_ids, causal_targets(labels, targets), num_last_tokens)
        return super().forward(input_ids, position_ids, inference_params, num_last_tokens, labels, targets=targets,
                               **mixer_kwargs)

    def _forward_chunked(self, input_ids: torch.Tensor, labels: torch.Tensor | None,
                         num_last_tokens: int) -> CausalLMOutput:
        """``labels``: the aligned targets (batch, L) or None."""
        carry = self.config.tbptt and self.training
        states = self.stream_states if carry else None
        if states is not None and states[0][1].shape[0] != input_ids.shape[0]:
            raise ValueError(f"the tbptt stream carries states for batch {states[0][1].shape[0]}; got batch "
                             f"{input_ids.shape[0]}: call reset_stream() before changing the batch size")
        if labels is not None and num_last_tokens > 0:
            labels = labels.to(input_ids.device).clone()
            labels[:, :-num_last_tokens] = IGNORE_INDEX
        out = chunked.causal_lm_chunked(self, input_ids, labels, self.config.chunk_size, states=states,
                                        detach=self.config.tbptt, pad_token_id=self.config.pad_token_id)
        if carry:
            self.stream_states = chunked.detach_states(out.states)
        logits = out.logits
        if logits is not None and num_last_tokens > 0:
            logits = logits[:, -num_last_tokens:]
        return CausalLMOutput(logits=logits, loss=out.loss)
