"""SaShiMi U-Net whose blocks are Mamba blocks (Gu & Dao 2023, §4.4), and its audio LM.

Layout (``unet=True`` of ``state-spaces/s4`` ``models/sashimi/sashimi.py``), for pools [p0, p1] and width D::

    D  @ L      : n blocks ─────────────── skips ─────────────── n blocks   (+ skip after every layer)
                   DownPool(p0)                                  UpPool(p0, causal shift)
    2D @ L/p0   :     n blocks ──────── skips ──────── n blocks
                       DownPool(p1)                   UpPool(p1, causal shift)
    4D @ L/p0p1 :            n center blocks (+ skip around them)

A Mamba block is ``Block`` (LayerNorm → Mamba mixer) used as a residual: y = x + mixer(norm(x)). On the way
down every layer's input is saved; on the way up every layer's output gets the mirrored saved tensor added.
The LM embeds 256 mu-law classes, runs the U-Net, applies a final LayerNorm and a Linear(D → 256) head.

Contract (SaShiMi's ``SequenceModule``): ``forward(x, state) -> (y, state)`` runs in parallel over any length
and, given a state from ``allocate_inference_cache``, continues from it and leaves the state after the last
sample; ``step(x, state) -> (y, state)`` consumes one sample at O(1) amortised cost: the stage below stage i
runs only on every ``pool[i]``-th sample, DownPool buffers, UpPool replays its group. Stepping, chunked
forwards and one whole forward give the same outputs (up to fp32 rounding).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from functools import partial

import torch
from torch import nn

from mamba_bio_audio.generation import InferenceParams
from mamba_bio_audio.losses import token_loss
from mamba_bio_audio.models.base import PreTrainedModel, init_weights
from mamba_bio_audio.models.fast_decode import FastSashimiStep
from mamba_bio_audio.models.lm import CausalLMOutput, causal_targets
from mamba_bio_audio.models.mamba_folders import MAMBA_SHAPE_FIELDS
from mamba_bio_audio.models.mixer_model import create_block
from mamba_bio_audio.models.sashimi_config import SashimiConfig
from mamba_bio_audio.modules.block import Block
from mamba_bio_audio.modules.sashimi_pool import DownPool, UpPool

__all__ = ["SashimiState", "SashimiBackbone", "SashimiLM"]


@dataclass
class SashimiState:
    """Recurrent state of the U-Net after ``seqlen_offset`` samples (every row of the batch in lockstep).

    layers: layer_idx → (conv_state (batch, d_inner, d_conv), ssm_state (batch, d_inner, d_state) fp32) of each
    Mamba mixer; down, up: one :class:`PoolState` per pooling stage, outer first. Updated in place."""

    seqlen_offset: int
    layers: dict
    down: list
    up: list
    fast_step: object | None = field(default=None, repr=False)  # models/fast_decode.FastSashimiStep, or None


def _block_forward(block: Block, x: torch.Tensor, params: InferenceParams | None) -> torch.Tensor:
    """x (batch, L, width) → x + mixer(norm(x)); the mixer reads and writes its state through ``params``."""
    if x.shape[1] == 0:
        return x
    hidden, residual = block(x, inference_params=params)
    return hidden + residual


def _block_step(block: Block, x: torch.Tensor, state: SashimiState) -> torch.Tensor:
    """x (batch, width) → x + mixer.step(norm(x)), updating the mixer's state in place."""
    conv_state, ssm_state = state.layers[block.layer_idx]
    out, _, _ = block.mixer.step(block.norm(x)[:, None], conv_state, ssm_state)
    return x + out[:, 0]


class SashimiBackbone(nn.Module):
    """x (batch, L, d_model) → (batch, L, d_model), normalised by ``norm_f``.

    Keys: ``down_blocks.{stage}.{i}.{norm,mixer}.*``, ``down_pools.{stage}.linear.*``, ``center.{i}.*``,
    ``up_pools.{stage}.linear.*``, ``up_blocks.{stage}.{i}.*``, ``norm_f.*`` (stage 0 is the outer one).
    """

    def __init__(self, config: SashimiConfig, device=None, dtype=None):
        super().__init__()
        factory_kwargs = {"device": device, "dtype": dtype}
        self.config = config
        widths, layer_ids = config.widths, itertools.count()

        def blocks(width: int) -> nn.ModuleList:
            return nn.ModuleList(
                create_block(width, ssm_cfg=config.ssm_cfg, norm_epsilon=config.norm_epsilon,
                             layer_idx=next(layer_ids), **factory_kwargs)
                for _ in range(config.n_layers))

        stages = range(len(config.pool))
        self.down_blocks = nn.ModuleList(blocks(widths[i]) for i in stages)
        self.down_pools = nn.ModuleList(DownPool(widths[i], config.expand, config.pool[i], **factory_kwargs)
                                        for i in stages)
        self.center = blocks(widths[-1])
        self.up_pools = nn.ModuleList(UpPool(widths[i + 1], config.expand, config.pool[i], **factory_kwargs)
                                      for i in stages)
        self.up_blocks = nn.ModuleList(blocks(widths[i]) for i in stages)
        self.norm_f = nn.LayerNorm(config.d_model, eps=config.norm_epsilon, **factory_kwargs)

    def _all_blocks(self):
        return itertools.chain(*self.down_blocks, self.center, *self.up_blocks)

    def allocate_inference_cache(self, batch_size: int, max_seqlen: int | None = None, dtype=None) -> SashimiState:
        """A zeroed state for ``batch_size`` streams. ``max_seqlen`` is unused: the state does not grow."""
        return SashimiState(
            seqlen_offset=0,
            layers={block.layer_idx: block.allocate_inference_cache(batch_size, max_seqlen, dtype=dtype)
                    for block in self._all_blocks()},
            down=[pool.allocate_state(batch_size, dtype) for pool in self.down_pools],
            up=[pool.allocate_state(batch_size, dtype) for pool in self.up_pools],
        )

    def _stage_params(self, state: SashimiState | None, batch_size: int) -> list:
        """Per stage (outer first, center last): InferenceParams over ``state.layers`` at the number of samples
        that stage has consumed, or None without a state."""
        stages = len(self.config.pool) + 1
        if state is None:
            return [None] * stages
        strides = [1, *itertools.accumulate(self.config.pool, lambda a, b: a * b)]
        return [InferenceParams(max_seqlen=0, max_batch_size=batch_size, seqlen_offset=state.seqlen_offset // s,
                                key_value_memory_dict=state.layers) for s in strides]

    def forward(self, x: torch.Tensor, state: SashimiState | None = None):
        """x (batch, L, d_model), any L ≥ 0 → (y (batch, L, d_model), state). With a state, x continues the
        sequence the state has seen and the state advances by L, in place and outside autograd (prefill for
        sampling, not chunked training); without, x starts a sequence."""
        length, params = x.shape[1], self._stage_params(state, x.shape[0])
        skips = []
        for i, (blocks, pool) in enumerate(zip(self.down_blocks, self.down_pools)):
            for block in blocks:
                skips.append(x)
                x = _block_forward(block, x, params[i])
            skips.append(x)
            x = pool(x, None if state is None else state.down[i])
        center_in = x
        for block in self.center:
            x = _block_forward(block, x, params[-1])
        x = x + center_in
        for i in reversed(range(len(self.up_pools))):
            skip = skips.pop()
            x = self.up_pools[i](x, skip.shape[1], None if state is None else state.up[i]) + skip
            for block in self.up_blocks[i]:
                x = _block_forward(block, x, params[i]) + skips.pop()
        if state is not None:
            state.seqlen_offset += length
        return self.norm_f(x), state

    def step(self, x: torch.Tensor, state: SashimiState):
        """x (batch, d_model), the next sample → (y (batch, d_model), state); the state advances in place."""
        skips = []
        top = len(self.down_pools) - 1  # the deepest stage whose up path runs on this sample
        for i, (blocks, pool) in enumerate(zip(self.down_blocks, self.down_pools)):
            for block in blocks:
                skips.append(x)
                x = _block_step(block, x, state)
            skips.append(x)
            x = pool.step(x, state.down[i])
            if x is None:
                top = i
                break
        else:
            center_in = x
            for block in self.center:
                x = _block_step(block, x, state)
            x = x + center_in
        for i in range(top, -1, -1):
            x = self.up_pools[i].step(x, state.up[i]) + skips.pop()
            for block in self.up_blocks[i]:
                x = _block_step(block, x, state) + skips.pop()
        state.seqlen_offset += 1
        return self.norm_f(x), state


class SashimiLM(PreTrainedModel):
    """input_ids (batch, L) int64 mu-law classes → next-sample logits (batch, L, vocab_size).

    Keys: ``embedding.weight`` (vocab, D), ``backbone.*`` (:class:`SashimiBackbone`), ``lm_head.{weight,bias}``
    (untied, as SaShiMi). Init: ``mamba_ssm``'s :func:`~mamba_bio_audio.models.base.init_weights` over all
    ``config.n_blocks`` blocks.
    """

    config_class = SashimiConfig
    head_type = "causal_lm"
    _shape_fields = {**MAMBA_SHAPE_FIELDS, "embedding.weight": ("vocab_size", "d_model"),
                     "lm_head.weight": ("vocab_size", "d_model"), "lm_head.bias": ("vocab_size",)}
    _presence_fields = {"_blocks.": "n_layers", "center.": "n_layers", "_pools.": "pool"}

    def __init__(self, config: SashimiConfig, device=None, dtype=None):
        super().__init__(config)
        factory_kwargs = {"device": device, "dtype": dtype}
        self.embedding = nn.Embedding(config.vocab_size, config.d_model, **factory_kwargs)
        self.backbone = SashimiBackbone(config, **factory_kwargs)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, **factory_kwargs)
        self.apply(partial(init_weights, n_layer=config.n_blocks, initializer_range=config.initializer_range))

    def allocate_inference_cache(self, batch_size: int, max_seqlen: int | None = None, dtype=None, *,
                                 fast: bool = True) -> SashimiState:
        """A zeroed :class:`SashimiState` for ``batch_size`` streams (see :meth:`SashimiBackbone.forward`).
        ``fast`` (keyword only): let :meth:`step` take the fused CPU step
        (:class:`~mamba_bio_audio.models.fast_decode.FastSashimiStep`) where it applies; False: always the generic
        step."""
        state = self.backbone.allocate_inference_cache(batch_size, max_seqlen, dtype=dtype)
        if fast:
            state.fast_step = FastSashimiStep.build(self, state, batch_size)
        return state

    def forward(self, input_ids: torch.Tensor, state: SashimiState | None = None,
                labels: torch.Tensor | None = None, *, targets: torch.Tensor | None = None) -> CausalLMOutput:
        """input_ids (batch, L) int64 (the inputs: targets shifted right, start token 128 first). With a state
        the ids continue the state's sequence and the state advances in place. ``labels`` (batch, L) int64 are
        shifted inside (position t is trained on ``labels[t + 1]``, as in transformers); ``targets`` (keyword
        only) are already aligned. Targets count as :mod:`mamba_bio_audio.targets` says; the loss is the mean
        cross entropy in nats (fp32)."""
        targets = causal_targets(labels, targets)
        hidden, _ = self.backbone(self.embedding(input_ids), state)
        logits = self.lm_head(hidden)
        loss = None if targets is None else token_loss(logits, targets)
        return CausalLMOutput(logits=logits, loss=loss)

    @torch.no_grad()
    def prefill(self, input_ids: torch.Tensor, state: SashimiState):
        """input_ids (batch, T) int64 continuing the state's sequence → (logits (batch, T, vocab_size), state
        advanced by T in place), in one parallel pass."""
        return self.forward(input_ids, state).logits, state

    def step(self, input_ids: torch.Tensor, state: SashimiState):
        """input_ids (batch,) int64, the next input sample → (logits (batch, vocab_size), state), without autograd;
        fused where the state's ``fast_step`` accepts it."""
        fast = state.fast_step
        if fast is not None and fast.accepts(input_ids):
            return fast(input_ids, state), state
        with torch.no_grad():
            hidden, state = self.backbone.step(self.embedding(input_ids), state)
            return self.lm_head(hidden), state
