"""The Transformer++ baseline of the paper's DNA and language comparisons, behind the Mamba models' interfaces.

Transformer++ [P §4.2]: pre-norm blocks of causal multi-head self-attention with rotary position embeddings,
then a SwiGLU MLP, RMSNorm, no biases, tied embedding. The blocks are the Mamba models' own :class:`Block`
(Add → RMSNorm → attention → Add → RMSNorm → GatedMLP, residual in fp32), the attention is PyTorch's
``scaled_dot_product_attention`` (FlashAttention or memory-efficient kernels where available), and decoding
keeps a key/value cache in ``inference_params``. :class:`TransformerLMHeadModel` and
:class:`TransformerForSequenceClassification` are the Mamba LM and classifier with this backbone: same forward,
``step``, ``generate``, losses, pooling and ``save_pretrained``; a Mamba experiment swaps the backbone by
swapping the config (``mamba_bio_audio.models.factory.load_preset("transformer_dna_1.4m")``).
"""
from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from mamba_bio_audio.config import TransformerConfig
from mamba_bio_audio.models.classification import MambaForSequenceClassification
from mamba_bio_audio.models.lm import MambaLMHeadModel
from mamba_bio_audio.models.mixer_model import _init_weights
from mamba_bio_audio.modules.block import Block, GatedMLP, final_norm, run_block
from mamba_bio_audio.modules.rms_norm import RMSNorm

__all__ = ["CausalSelfAttention", "TransformerForSequenceClassification", "TransformerLMHeadModel",
           "TransformerModel", "apply_rotary"]


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


class TransformerModel(nn.Module):
    """input_ids (batch, L) int64 → hidden states (batch, L, d_model) normalised by ``norm_f``.

    Keys: ``embedding.weight``, ``layers.{i}.{norm, norm2}.weight``, ``layers.{i}.mixer.{in_proj, out_proj}.weight``,
    ``layers.{i}.mlp.{fc1, fc2}.weight``, ``norm_f.weight``. Initialised like the Mamba backbone (GPT-2 scaling of
    ``out_proj`` and ``fc2`` by 1/√(2·n_layer)).
    """

    def __init__(self, config: TransformerConfig, initializer_cfg: dict | None = None, device=None, dtype=None):
        super().__init__()
        factory_kwargs = {"device": device, "dtype": dtype}
        self.residual_in_fp32 = config.residual_in_fp32
        self.checkpoint_blocks = config.checkpoint_blocks
        self.embedding = nn.Embedding(config.padded_vocab_size, config.d_model, **factory_kwargs)
        norm_cls = partial(RMSNorm, eps=config.norm_epsilon, **factory_kwargs)
        mlp_cls = partial(GatedMLP, hidden_features=config.d_intermediate, multiple_of=1, **factory_kwargs)
        self.layers = nn.ModuleList(
            Block(config.d_model,
                  partial(CausalSelfAttention, n_head=config.n_head, rope_theta=config.rope_theta, layer_idx=i,
                          **factory_kwargs),
                  mlp_cls, norm_cls=norm_cls, fused_add_norm=True, residual_in_fp32=config.residual_in_fp32)
            for i in range(config.n_layer)
        )
        self.norm_f = norm_cls(config.d_model)
        self.apply(partial(_init_weights, n_layer=config.n_layer, n_residuals_per_layer=2,
                           **{"initializer_range": config.initializer_range, **(initializer_cfg or {})}))

    @classmethod
    def from_config(cls, config: TransformerConfig, initializer_cfg: dict | None = None, device=None, dtype=None):
        return cls(config, initializer_cfg=initializer_cfg, device=device, dtype=dtype)

    def allocate_inference_cache(self, batch_size: int, max_seqlen: int, dtype=None) -> dict:
        """{layer_idx: (k_cache, v_cache)} zeroed, for ``InferenceParams.key_value_memory_dict``."""
        return {i: layer.allocate_inference_cache(batch_size, max_seqlen, dtype=dtype)
                for i, layer in enumerate(self.layers)}

    def forward(self, input_ids: torch.Tensor, inference_params=None) -> torch.Tensor:
        hidden_states = self.embedding(input_ids)
        residual = None
        checkpointed = self.checkpoint_blocks and inference_params is None
        for layer in self.layers:
            hidden_states, residual = run_block(layer, hidden_states, residual, checkpointed=checkpointed,
                                                inference_params=inference_params)
        return final_norm(self.norm_f, hidden_states, residual, True, self.residual_in_fp32)


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


class TransformerLMHeadModel(MambaLMHeadModel):
    """input_ids (batch, L) int64 → next-token logits (batch, L, padded_vocab): the causal LM of
    :class:`~mamba_bio_audio.models.MambaLMHeadModel` on the Transformer++ backbone."""

    backbone_cls = TransformerModel
    config_class = TransformerConfig
    _shape_fields = _SHAPE_FIELDS
    _presence_fields = {}


class TransformerForSequenceClassification(MambaForSequenceClassification):
    """input_ids (batch, L) int64 → class logits (batch, num_labels): the pad-aware pooling classifier of
    :class:`~mamba_bio_audio.models.MambaForSequenceClassification` on the Transformer++ backbone."""

    backbone_cls = TransformerModel
    config_class = TransformerConfig
    _shape_fields = _SHAPE_FIELDS
    _presence_fields = {}
