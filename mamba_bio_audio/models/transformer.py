"""The Transformer++ baseline of the paper's DNA and language comparisons, behind the Mamba models' interfaces.

Transformer++ [P §4.2]: pre-norm blocks of causal multi-head self-attention with rotary position embeddings,
then a SwiGLU MLP, RMSNorm, no biases, tied embedding. The blocks are the Mamba models' own :class:`Block`
(Add → RMSNorm → attention → Add → RMSNorm → GatedMLP, residual in fp32), the attention is PyTorch's
``scaled_dot_product_attention`` (FlashAttention or memory-efficient kernels where available), and decoding
keeps a key/value cache in ``inference_params``. :class:`TransformerLMHeadModel` and
:class:`TransformerForSequenceClassification` are the generic causal-LM and classifier heads over this backbone:
same forward, ``step``, ``generate``, losses, pooling and ``save_pretrained`` as the Mamba models (no chunked
training: attention reads every earlier token); a Mamba experiment swaps the backbone by
swapping the config (``mamba_bio_audio.models.factory.load_preset("transformer_dna_1.4m")``).
"""
from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from mamba_bio_audio.config import TransformerConfig
from mamba_bio_audio.models.classification import SequenceClassifier
from mamba_bio_audio.models.lm import CausalLM
from mamba_bio_audio.models.mixer_model import MixerModel
from mamba_bio_audio.modules.block import Block, GatedMLP
from mamba_bio_audio.modules.rms_norm import RMSNorm

__all__ = ["CausalSelfAttention", "TransformerForSequenceClassification", "TransformerLMHeadModel",
           "TransformerModel", "apply_rotary", "attention_block"]


def apply_rotary(x: torch.Tensor, positions: torch.Tensor, theta: float) -> torch.Tensor:
    """Rotary embedding (GPT-NeoX "rotate half" layout) of x (batch, heads, L, head_dim) at integer positions
    (L,); angles in fp32, result in x.dtype."""
    half = x.shape[-1] // 2
    inv_freq = theta ** (-torch.arange(half, device=x.device, dtype=torch.float32) / half)
    angles = positions.to(torch.float32)[:, None] * inv_freq[None, :]  # (L, half)
    cos, sin = angles.cos(), angles.sin()
    x1, x2 = x[..., :half].float(), x[..., half:2 * half].float()
    rotated = torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin, x[..., 2 * half:].float()], dim=-1)
    return rotated.to(x.dtype)


class CausalSelfAttention(nn.Module):
    """Causal multi-head self-attention with RoPE: (batch, L, d_model) → (batch, L, d_model).

    ``in_proj`` Linear(d_model, 3·d_model) gives q, k, v (in that order, heads inside), ``out_proj``
    Linear(d_model, d_model); no biases. With ``inference_params`` the keys and values go into the layer's
    cache (batch, heads, max_seqlen, head_dim) at ``seqlen_offset`` and attention reads the cache.
    """

    def __init__(self, d_model: int, n_head: int, rope_theta: float = 10000.0, layer_idx: int | None = None,
                 device=None, dtype=None):
        super().__init__()
        self.n_head = n_head
        self.head_dim = d_model // n_head
        self.rope_theta = rope_theta
        self.layer_idx = layer_idx
        self.in_proj = nn.Linear(d_model, 3 * d_model, bias=False, device=device, dtype=dtype)
        self.out_proj = nn.Linear(d_model, d_model, bias=False, device=device, dtype=dtype)

    def forward(self, hidden_states: torch.Tensor, inference_params=None) -> torch.Tensor:
        batch, length, d_model = hidden_states.shape
        q, k, v = self.in_proj(hidden_states).view(batch, length, 3, self.n_head, self.head_dim).permute(2, 0, 3, 1, 4)
        offset = 0 if inference_params is None else inference_params.seqlen_offset
        positions = torch.arange(offset, offset + length, device=hidden_states.device)
        q, k = apply_rotary(q, positions, self.rope_theta), apply_rotary(k, positions, self.rope_theta)
        if inference_params is not None:
            k, v = self._cached(inference_params, k, v, offset)
        if offset == 0:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:  # new queries see every cached key and the new keys up to their own position
            mask = positions[:, None] >= torch.arange(offset + length, device=q.device)[None, :]
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out_proj(out.transpose(1, 2).reshape(batch, length, d_model))

    def _cached(self, inference_params, k: torch.Tensor, v: torch.Tensor, offset: int):
        if self.layer_idx is None:
            raise ValueError("CausalSelfAttention.layer_idx must be set to decode with inference_params")
        cache = inference_params.key_value_memory_dict
        if self.layer_idx not in cache:
            cache[self.layer_idx] = self.allocate_inference_cache(k.shape[0], inference_params.max_seqlen)
        k_cache, v_cache = cache[self.layer_idx]
        end = offset + k.shape[2]
        if end > k_cache.shape[2] or k_cache.shape[0] != k.shape[0]:
            raise ValueError(f"the key/value cache of layer {self.layer_idx} holds batch {k_cache.shape[0]} and "
                             f"{k_cache.shape[2]} positions; got batch {k.shape[0]} up to position {end}")
        k_cache[:, :, offset:end] = k
        v_cache[:, :, offset:end] = v
        return k_cache[:, :, :end], v_cache[:, :, :end]

    def allocate_inference_cache(self, batch_size: int, max_seqlen: int, dtype=None):
        """Zeroed (k_cache, v_cache), each (batch, heads, max_seqlen, head_dim) in ``dtype`` or the weights'."""
        if max_seqlen is None:
            raise ValueError("a Transformer++ decoding state needs max_seqlen, the length of its key/value cache")
        weight = self.out_proj.weight
        shape = (batch_size, self.n_head, max_seqlen, self.head_dim)
        dtype = weight.dtype if dtype is None else dtype
        return (torch.zeros(shape, device=weight.device, dtype=dtype),
                torch.zeros(shape, device=weight.device, dtype=dtype))


def attention_block(config: TransformerConfig, layer_idx: int, device=None, dtype=None) -> Block:
    """Block ``layer_idx`` of the Transformer++: RMSNorm → :class:`CausalSelfAttention` → RMSNorm → SwiGLU MLP of
    ``config.d_intermediate`` hidden units, residual add fused into the norms."""
    factory_kwargs = {"device": device, "dtype": dtype}
    block = Block(config.d_model,
                  partial(CausalSelfAttention, n_head=config.n_head, rope_theta=config.rope_theta,
                          layer_idx=layer_idx, **factory_kwargs),
                  partial(GatedMLP, hidden_features=config.d_intermediate, multiple_of=1, **factory_kwargs),
                  norm_cls=partial(RMSNorm, eps=config.norm_epsilon, **factory_kwargs), fused_add_norm=True,
                  residual_in_fp32=config.residual_in_fp32)
    block.layer_idx = layer_idx
    return block


class TransformerModel(MixerModel):
    """input_ids (batch, L) int64 → hidden states (batch, L, d_model) normalised by ``norm_f``: the
    :class:`~mamba_bio_audio.models.mixer_model.MixerModel` with :func:`attention_block` blocks.

    Keys: ``embedding.weight``, ``layers.{i}.{norm, norm2}.weight``, ``layers.{i}.mixer.{in_proj, out_proj}.weight``,
    ``layers.{i}.mlp.{fc1, fc2}.weight``, ``norm_f.weight``. Initialised like the Mamba backbone (GPT-2 scaling of
    ``out_proj`` and ``fc2`` by 1/√(2·n_layer)).
    """

    @classmethod
    def from_config(cls, config: TransformerConfig, initializer_cfg: dict | None = None, device=None, dtype=None):
        return cls(config.d_model, config.n_layer, config.d_intermediate, config.padded_vocab_size,
                   norm_epsilon=config.norm_epsilon, rms_norm=True, fused_add_norm=True,
                   initializer_cfg={**config.init_options(), **(initializer_cfg or {})},
                   residual_in_fp32=config.residual_in_fp32, device=device, dtype=dtype,
                   checkpoint_blocks=config.checkpoint_blocks,
                   block_factory=partial(attention_block, config, device=device, dtype=dtype))


# key suffix -> the config field behind each dimension, for checkpoint errors
_SHAPE_FIELDS = {
    "embedding.weight": ("vocab_size / pad_vocab_size_multiple", "d_model"),
    "lm_head.weight": ("vocab_size / pad_vocab_size_multiple", "d_model"),
    "score.weight": ("num_labels", "d_model"),
    "mixer.in_proj.weight": ("d_model", "d_model"),
    "mixer.out_proj.weight": ("d_model", "d_model"),
    "mlp.fc1.weight": ("d_intermediate", "d_model"),
    "mlp.fc2.weight": ("d_model", "d_intermediate"),
}


class TransformerLMHeadModel(CausalLM):
    """input_ids (batch, L) int64 → next-token logits (batch, L, padded_vocab):
    :class:`~mamba_bio_audio.models.lm.CausalLM` on the Transformer++ backbone."""

    backbone_cls = TransformerModel
    config_class = TransformerConfig
    _shape_fields = _SHAPE_FIELDS


class TransformerForSequenceClassification(SequenceClassifier):
    """input_ids (batch, L) int64 → class logits (batch, num_labels): the pad-aware pooling
    :class:`~mamba_bio_audio.models.classification.SequenceClassifier` on the Transformer++ backbone."""

    backbone_cls = TransformerModel
    config_class = TransformerConfig
    _shape_fields = _SHAPE_FIELDS
