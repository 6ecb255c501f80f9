"""The Mamba backbone (``mamba_ssm.models.mixer_seq_simple``): embedding → Blocks → add + ``norm_f``, the
registry of mixers a block can hold (:data:`MIXERS`) and the weight-decay split of its parameters
(``param_groups``).

One ``MixerModel`` serves every stack: its blocks come from a block factory (``layer_idx -> block``): the
default :func:`create_block` puts the mixer ``ssm_cfg["layer"]`` names in a
:class:`~mamba_bio_audio.modules.block.Block`;
Caduceus passes BiMamba blocks or RCPS blocks and its own embedding (:mod:`mamba_bio_audio.models.caduceus`).

A mixer class is built as ``cls(d_model, layer_idx=..., device=..., dtype=..., **ssm_cfg)`` and maps
(batch, L, d_model) → (batch, L, d_model) with ``forward(hidden_states, inference_params=None)``; to decode it
also offers ``allocate_inference_cache(batch_size, max_seqlen, dtype=None)`` and reads and writes its state in
``inference_params.key_value_memory_dict[layer_idx]``, stepping when ``inference_params.seqlen_offset > 0``.

``forward_with_state`` passes every layer's (conv_state, ssm_state) in and out with gradients: the building
block of chunked training (:mod:`mamba_bio_audio.models.chunked`). ``checkpoint_blocks`` recomputes each
block's activations in backward instead of keeping them.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch import nn

from mamba_bio_audio.config import MambaConfig
from mamba_bio_audio.models.base import init_weights
from mamba_bio_audio.modules.block import Block, GatedMLP, final_norm, run_block
from mamba_bio_audio.modules.mamba import Mamba
from mamba_bio_audio.modules.rms_norm import RMSNorm

__all__ = ["MIXERS", "MixerModel", "create_block", "param_groups"]

# ssm_cfg["layer"] -> mixer class: the one registry of mixers (a new mixer is one entry here)
MIXERS: dict[str, type[nn.Module]] = {"Mamba1": Mamba}


def create_block(d_model: int, d_intermediate: int = 0, ssm_cfg: dict | None = None, norm_epsilon: float = 1e-5,
                 rms_norm: bool = False, residual_in_fp32: bool = False, fused_add_norm: bool = False,
                 layer_idx: int | None = None, device=None, dtype=None) -> Block:
    """One Block with the mixer ``ssm_cfg["layer"]`` names in :data:`MIXERS` (default Mamba-1; the other keys
    are its keyword arguments) and, when ``d_intermediate > 0``, a GatedMLP."""
    factory_kwargs = {"device": device, "dtype": dtype}
    ssm_cfg = dict(ssm_cfg or {})
    layer = ssm_cfg.pop("layer", "Mamba1")
    if layer not in MIXERS:
        raise ValueError(f"ssm_cfg['layer'] must name a registered mixer ({', '.join(MIXERS)}); got {layer!r}")
    mixer_cls = partial(MIXERS[layer], layer_idx=layer_idx, **ssm_cfg, **factory_kwargs)
    norm_cls = partial(RMSNorm if rms_norm else nn.LayerNorm, eps=norm_epsilon, **factory_kwargs)
    mlp_cls = (nn.Identity if d_intermediate == 0
               else partial(GatedMLP, hidden_features=d_intermediate, out_features=d_model, **factory_kwargs))
    block = Block(d_model, mixer_cls, mlp_cls, norm_cls=norm_cls, fused_add_norm=fused_add_norm,
                  residual_in_fp32=residual_in_fp32)
    block.layer_idx = layer_idx
    return block


class MixerModel(nn.Module):
    """input_ids (batch, L) int64 → hidden states (batch, L, d_model), normalised by ``norm_f``.

    State-dict keys: ``embedding.weight``, ``layers.{i}.norm.weight``, ``layers.{i}.mixer.*``, ``norm_f.weight``.
    ``block_factory(layer_idx)`` builds each block (default: :func:`create_block` with these arguments);
    ``embedding`` replaces the ``nn.Embedding`` and is kept under ``embedding_name``; ``final_norm(norm_f,
    hidden_states, residual, fused_add_norm, residual_in_fp32)`` is the add + norm after the last block.
    """

    def __init__(self, d_model: int, n_layer: int, d_intermediate: int, vocab_size: int,
                 ssm_cfg: dict | None = None, norm_epsilon: float = 1e-5, rms_norm: bool = False,
                 initializer_cfg: dict | None = None, fused_add_norm: bool = False, residual_in_fp32: bool = False,
                 device=None, dtype=None, checkpoint_blocks: bool = False, *,
                 block_factory: Callable[[int], nn.Module] | None = None, embedding: nn.Module | None = None,
                 embedding_name: str = "embedding", final_norm: Callable = final_norm):
        super().__init__()
        factory_kwargs = {"device": device, "dtype": dtype}
        self.residual_in_fp32 = residual_in_fp32
        self.fused_add_norm = fused_add_norm
        self.checkpoint_blocks = checkpoint_blocks
        self.embedding_name = embedding_name
        self.final_norm = final_norm
        if embedding is None:
            embedding = nn.Embedding(vocab_size, d_model, **factory_kwargs)
        self.add_module(embedding_name, embedding)
        if block_factory is None:
            block_factory = partial(create_block, d_model, d_intermediate=d_intermediate, ssm_cfg=ssm_cfg,
                                    norm_epsilon=norm_epsilon, rms_norm=rms_norm, residual_in_fp32=residual_in_fp32,
                                    fused_add_norm=fused_add_norm, **factory_kwargs)
        self.layers = nn.ModuleList(block_factory(layer_idx=i) for i in range(n_layer))
        self.norm_f = (RMSNorm if rms_norm else nn.LayerNorm)(d_model, eps=norm_epsilon, **factory_kwargs)
        init = {"n_residuals_per_layer": 1 if d_intermediate == 0 else 2, **(initializer_cfg or {})}
        self.apply(partial(init_weights, n_layer=n_layer, **init))

    @property
    def passes_state(self) -> bool:
        """Whether every mixer offers ``forward_with_state`` (Mamba), so :meth:`forward_with_state` and chunked
        runs work; attention and the bidirectional mixers do not."""
        return all(hasattr(getattr(layer, "mixer", None), "forward_with_state") for layer in self.layers)

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """input_ids (batch, L) int64 → (batch, L, hidden) through the embedding."""
        return self.get_submodule(self.embedding_name)(input_ids)

    @classmethod
    def from_config(cls, config: MambaConfig, initializer_cfg: dict | None = None, device=None, dtype=None):
        """The backbone described by ``config`` (vocabulary padded to ``config.padded_vocab_size``)."""
        return cls(config.d_model, config.n_layer, config.d_intermediate, config.padded_vocab_size,
                   ssm_cfg=config.ssm_cfg, norm_epsilon=config.norm_epsilon, rms_norm=config.rms_norm,
                   initializer_cfg={**config.init_options(), **(initializer_cfg or {})},
                   fused_add_norm=config.fused_add_norm, residual_in_fp32=config.residual_in_fp32,
                   device=device, dtype=dtype, checkpoint_blocks=config.checkpoint_blocks)

    def allocate_inference_cache(self, batch_size: int, max_seqlen: int, dtype=None) -> dict:
        """{layer_idx: (conv_state, ssm_state)} zeroed, for ``InferenceParams.key_value_memory_dict``."""
        return {i: layer.allocate_inference_cache(batch_size, max_seqlen, dtype=dtype)
                for i, layer in enumerate(self.layers)}

    def forward(self, input_ids: torch.Tensor, inference_params=None, **mixer_kwargs) -> torch.Tensor:
        """input_ids (batch, L) int64 → normalised hidden states (batch, L, d_model)."""
        hidden_states = self.embed(input_ids)
        residual = None
        checkpointed = self.checkpoint_blocks and inference_params is None
        for layer in self.layers:
            hidden_states, residual = run_block(layer, hidden_states, residual, checkpointed=checkpointed,
                                                inference_params=inference_params, **mixer_kwargs)
        return self.final_norm(self.norm_f, hidden_states, residual, self.fused_add_norm, self.residual_in_fp32)

    def forward_with_state(self, input_ids: torch.Tensor, states: list | None = None) -> tuple[torch.Tensor, list]:
        """input_ids (batch, L) int64 that follow the tokens summarised by ``states`` (None: a fresh sequence).

        ``states`` holds one (conv_state (batch, d_inner, d_conv - 1), ssm_state (batch, d_inner, d_state) fp32)
        per layer (see :meth:`Mamba.forward_with_state`). Returns (hidden states (batch, L, d_model), the states
        after the last token), both differentiable; the hidden states equal those of one pass over all tokens.
        """
        if states is not None and len(states) != len(self.layers):
            raise ValueError(f"states must hold one (conv_state, ssm_state) per layer ({len(self.layers)}); "
                             f"got {len(states)}")
        hidden_states = self.embed(input_ids)
        residual = None
        new_states = []
        for i, layer in enumerate(self.layers):
            hidden_states, residual, state = run_block(layer.forward_with_state, hidden_states, residual,
                                                       None if states is None else states[i],
                                                       checkpointed=self.checkpoint_blocks)
            new_states.append(state)
        hidden_states = self.final_norm(self.norm_f, hidden_states, residual, self.fused_add_norm,
                                        self.residual_in_fp32)
        return hidden_states, new_states


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Optimizer parameter groups: ``weight_decay`` for weight matrices (and conv kernels), 0 for parameters
    tagged ``_no_weight_decay`` (A_log, D), biases, norm weights and embeddings.

    Tied parameters appear once; frozen ones (requires_grad False) are left out; empty groups are dropped.
    """
    no_decay_modules = (nn.Embedding, nn.LayerNorm, RMSNorm)
    decay, no_decay, seen = [], [], set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if id(param) in seen or not param.requires_grad:
                continue
            seen.add(id(param))
            if (getattr(param, "_no_weight_decay", False) or name.endswith("bias")
                    or isinstance(module, no_decay_modules)):
                no_decay.append(param)
            else:
                decay.append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [group for group in groups if group["params"]]
