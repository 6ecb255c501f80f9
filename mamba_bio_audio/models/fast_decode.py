"""The fused CPU decode step of Mamba LMs and SaShiMi: about one numba call per residual block per token.

The generic step (``Mamba.step`` through :mod:`mamba_bio_audio.ops`) validates every argument and runs about
twenty small PyTorch ops per layer per token; at batch 1 that dispatch, not the arithmetic, is the time. Here the
shapes are checked once, when the decoding state is allocated, and each token runs the kernels of
``ops.cpu_decode_kernels()`` on numpy views of the model's parameters and of the state's tensors: the conv and SSM
states (and SaShiMi's pool buffers) are the ones in the state object, updated in place, so the generic path
(prefill, chunked prefill, a generic step) and this one can follow each other. A whole block is one
``block_step`` call (add → norm → in_proj → conv → x_proj / dt_proj → state update → gate → out_proj [→ add → norm
→ gated MLP]) at every batch size: its projections are numba GEMMs as fast as torch's on one thread from batch 16
to 64 and faster below (``cpu_block.linear``), and they never wake a thread pool, which on a busy machine costs
milliseconds per call.

What it handles (:func:`unsupported`): fp32 models on the CPU whose blocks are plain ``Block``s holding a plain
Mamba-1 mixer (no ablation switch, SiLU, conv state of ``d_conv`` steps), LayerNorm or RMSNorm, with or without
the gated MLP; everything else decodes through the generic step. A step falls back to the generic one (the
model's ``step``, which records no autograd, asks :meth:`FastMambaStep.accepts`; :meth:`~FastMambaStep.applies`
also refuses while autograd records) when the input is not a CPU tensor of the state's batch, the kernel settings
name a backend other than ``cpu``, or a parameter of the model was replaced or given new storage after the state
was allocated (``module.weight = ...``, ``param.data = ...``, ``model.to(dtype)``: a state views the storage it was
built on). The weights are read in place at every step, so in-place changes (an optimizer step,
``load_state_dict``) are seen; ``A = -exp(A_log)`` is cached and recomputed when ``A_log``'s version changes.

Per token at batch 1 (the 4-layer, d_model 256 LM, 2-core VM, 146-157 µs in all): the four block calls take
about 130 µs, most of it the projections' weights streamed from L3; the parameter check about 9 µs (43 parameters'
identity and storage, their objects cold after the weights went through the caches); the embedding, the final
norm and head and the new logits tensor about 9 µs.
"""
from __future__ import annotations

import functools
import operator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mamba_bio_audio import ops
from mamba_bio_audio.models.mixer_model import MixerModel
from mamba_bio_audio.modules.block import Block, GatedMLP, final_norm
from mamba_bio_audio.modules.mamba import Mamba
from mamba_bio_audio.modules.rms_norm import RMSNorm

__all__ = ["FastMambaStep", "FastSashimiStep", "unsupported"]

_EMPTY = np.zeros(0, dtype=np.float32)
_VERSION = operator.attrgetter("_version")


def _array(t: torch.Tensor | None) -> np.ndarray:
    """A numpy view of ``t`` (fp32, C-contiguous: checked by :func:`unsupported`), or an empty array for None."""
    return _EMPTY if t is None else t.detach().numpy()


def _norm_unsupported(norm: nn.Module) -> str | None:
    if type(norm) is RMSNorm and norm.bias is None:
        return None
    if type(norm) is nn.LayerNorm and norm.elementwise_affine and norm.weight is not None \
            and len(norm.normalized_shape) == 1:
        return None
    return f"norm {type(norm).__name__} (LayerNorm or RMSNorm with weights only)"


def _mixer_unsupported(mixer: nn.Module) -> str | None:
    if type(mixer) is not Mamba:
        return f"mixer {type(mixer).__name__} (plain Mamba-1 only)"
    if not getattr(mixer, "is_default_layer", True):
        return "a Mamba mixer with ablation switches"
    if (type(mixer.conv1d) is not nn.Conv1d or type(mixer.dt_proj) is not nn.Linear or mixer.activation != "silu"
            or mixer.x_proj.out_features != mixer.dt_rank + 2 * mixer.d_state or mixer.x_proj.bias is not None):
        return "a Mamba mixer with a replaced conv, dt projection, activation or x_proj"
    return None


def _block_unsupported(block: nn.Module) -> str | None:
    if type(block) is not Block:
        return f"block {type(block).__name__} (Block only)"
    for reason in (_norm_unsupported(block.norm), _mixer_unsupported(block.mixer)):
        if reason:
            return reason
    if block.mlp is not None:
        if type(block.mlp) is not GatedMLP or block.mlp.activation is not F.silu:
            return f"MLP {type(block.mlp).__name__} (GatedMLP with SiLU only)"
        if type(block.norm2) is not type(block.norm) or block.norm2.eps != block.norm.eps:
            return "an MLP norm that differs from the mixer norm"
    return None


def unsupported(module: nn.Module, blocks) -> str | None:
    """Why ``module`` (its ``blocks``) cannot take the fused step, or None when it can: every parameter fp32,
    C-contiguous and on the CPU, every block supported."""
    for name, param in module.named_parameters():
        if param.device.type != "cpu" or param.dtype != torch.float32 or not param.is_contiguous():
            return f"parameter {name} ({param.dtype}, {param.device}; fp32 contiguous CPU only)"
    for block in blocks:
        reason = _block_unsupported(block)
        if reason:
            return reason
    return None


class _Parameters:
    """The parameter objects of some modules, and the storage each had, when a fused step was built on numpy views
    of them. :meth:`unchanged` is checked before every step: per parameter one dict lookup, one identity and one
    data pointer, in C loops (``map``): about 5 µs for the 43 parameters of a 4-layer LM when they are in cache,
    8.5 µs in a decoding loop, where they are not."""

    def __init__(self, *modules: nn.Module):
        owners = [(m._parameters, n, p) for module in modules for m in module.modules()
                  for n, p in m._parameters.items() if p is not None]
        self.dicts = [owner for owner, _, _ in owners]
        self.names = [name for _, name, _ in owners]
        self.params = [param for _, _, param in owners]
        self.pointers = list(map(torch.Tensor.data_ptr, self.params))

    def unchanged(self) -> bool:
        """Whether every module still holds the same parameter objects over the same storage: a replaced
        parameter (``module.weight = nn.Parameter(...)``, ``load_state_dict(assign=True)``) or replaced data
        (``param.data = ...``, ``model.to(dtype)``) is not what the views see."""
        return (all(map(operator.is_, map(dict.get, self.dicts, self.names), self.params))
                and list(map(torch.Tensor.data_ptr, self.params)) == self.pointers)


def _embed(kernels, table: np.ndarray, input_ids: torch.Tensor, out: np.ndarray) -> None:
    """out (batch, D) ← the embedding rows of input_ids (batch,), refused as the embedding refuses them (numpy
    would wrap negative ids)."""
    ids = input_ids.numpy()
    if not kernels.embed(table, ids, out):
        raise IndexError(f"token ids must be in [0, {table.shape[0]}); got values in [{ids.min()}, {ids.max()}]")


def _logits(shape: tuple) -> np.ndarray:
    """A new logits array (batch, vocab) fp32: each step returns its own."""
    return np.empty(shape, dtype=np.float32)


def _linear_args(linear: nn.Linear) -> tuple:
    """``cpu_block.linear``'s weight, bias, has_bias for one nn.Linear."""
    return _array(linear.weight), _array(linear.bias), linear.bias is not None


def _norm_args(norm: nn.Module) -> tuple:
    bias = getattr(norm, "bias", None)
    return _array(norm.weight), _array(bias), bias is not None, np.float32(norm.eps), type(norm) is RMSNorm


class _BlockCall:
    """One Block over its decoding state: the kernel arguments, and the scratch buffers of its batch."""

    def __init__(self, kernels, block: Block, conv_state: torch.Tensor, ssm_state: torch.Tensor, batch: int):
        mixer = block.mixer
        if (conv_state.dtype != torch.float32 or tuple(conv_state.shape) != (batch, mixer.d_inner, mixer.d_conv)
                or not conv_state.is_contiguous() or ssm_state.dtype != torch.float32 or not ssm_state.is_contiguous()
                or tuple(ssm_state.shape) != (batch, mixer.d_inner, mixer.d_state)):
            raise ValueError(f"the state of layer {mixer.layer_idx} does not fit the fused step: conv_state "
                             f"{tuple(conv_state.shape)} {conv_state.dtype}, ssm_state {tuple(ssm_state.shape)}")
        self.a_log = mixer.A_log
        self.a = np.empty(tuple(mixer.A_log.shape), dtype=np.float32)
        mlp = block.mlp
        hidden = mlp.fc2.in_features if mlp is not None else 0
        scratch = lambda *shape: np.zeros(shape, dtype=np.float32)  # noqa: E731
        mlp_args = (_EMPTY, _EMPTY, False, _EMPTY.reshape(0, 0), _EMPTY, False, _EMPTY.reshape(0, 0), _EMPTY, False)
        if mlp is not None:
            mlp_args = (*_norm_args(block.norm2)[:3], *_linear_args(mlp.fc1), *_linear_args(mlp.fc2))
        self.args = (
            *_norm_args(block.norm), *_linear_args(mixer.in_proj),
            _array(mixer.conv1d.weight).reshape(mixer.d_inner, mixer.d_conv), _array(mixer.conv1d.bias),
            mixer.conv1d.bias is not None, _array(conv_state), _array(mixer.x_proj.weight),
            _array(mixer.dt_proj.weight), _array(mixer.dt_proj.bias), self.a, _array(mixer.D), _array(ssm_state),
            *_linear_args(mixer.out_proj), mlp is not None, *mlp_args,
            scratch(batch, mixer.d_model), scratch(batch, 2 * mixer.d_inner), scratch(batch, mixer.d_inner),
            scratch(batch, mixer.dt_rank + 2 * mixer.d_state), scratch(batch, mixer.d_inner), scratch(mixer.d_inner),
            scratch(mixer.d_state), scratch(mixer.d_state), scratch(batch, 2 * hidden), scratch(batch, hidden),
        )
        width = scratch(batch, mixer.d_model)  # hidden and resid's type, for the compiled version
        self.block_step = kernels.compiled_for(kernels.block_step, width, width, True, True, *self.args)

    def refresh(self) -> None:
        """A = -exp(A_log) from A_log's current values."""
        with torch.no_grad():
            self.a[...] = -torch.exp(self.a_log.float()).numpy()

    def __call__(self, hidden: np.ndarray, resid: np.ndarray, first: bool, sum_out: bool) -> None:
        """The block in place (``cpu_block.block_step``'s contract): hidden, resid (B, D) C-contiguous fp32."""
        self.block_step(hidden, resid, first, sum_out, *self.args)


def _settings_allow() -> bool:
    return ops.settings().backend in (None, "cpu")


class _FusedStep:
    """What the two fused steps share: the checks before a step, from ``batch``, ``parameters`` (a
    :class:`_Parameters`) and ``blocks`` (their :class:`_BlockCall`), set by the subclass."""

    batch: int
    parameters: _Parameters
    blocks: list
    a_versions: list | None = None  # the blocks' A_log versions their A was last computed at (None: never)

    @functools.cached_property
    def a_logs(self) -> list:
        return [block.a_log for block in self.blocks]

    def __deepcopy__(self, memo) -> None:
        return None  # a copied state holds copied tensors that this step's views do not see: it steps generically

    def accepts(self, input_ids: torch.Tensor) -> bool:
        """Whether this step may run for ``input_ids`` inside the model's ``step``, which records no autograd:
        (batch,) on the CPU, the settings' backend cpu or unset, the model's parameters those the state was built on
        (objects and storage). Refreshes the blocks' A where A_log changed."""
        if (not input_ids.is_cpu or input_ids.shape != (self.batch,) or not _settings_allow()
                or not self.parameters.unchanged()):
            return False
        versions = list(map(_VERSION, self.a_logs))
        if versions != self.a_versions:  # one comparison a step; A_log rarely changes while decoding
            for block in self.blocks:
                block.refresh()
            self.a_versions = versions
        return True

    def applies(self, input_ids: torch.Tensor) -> bool:
        """Whether this step may run for ``input_ids``: autograd off, and :meth:`accepts`."""
        return not torch.is_grad_enabled() and self.accepts(input_ids)


class FastMambaStep(_FusedStep):
    """The fused step of a causal LM over a :class:`~mamba_bio_audio.models.mixer_model.MixerModel` of Mamba blocks:
    ``step(input_ids (batch,) int64) -> logits (batch, padded_vocab) fp32`` (a new tensor each call), the layer
    states in ``cache`` (layer_idx → (conv_state, ssm_state)) updated in place."""

    def __init__(self, model: nn.Module, cache: dict, batch: int):
        backbone = model.backbone
        self.kernels = kernels = ops.cpu_decode_kernels()
        self.batch = batch
        self.blocks = [_BlockCall(kernels, layer, *cache[i], batch) for i, layer in enumerate(backbone.layers)]
        embedding = backbone.get_submodule(backbone.embedding_name)
        self.parameters = _Parameters(model)
        width = backbone.norm_f.weight.shape[0]
        self.hidden, self.resid, self.normed = (np.zeros((batch, width), dtype=np.float32) for _ in range(3))
        # each block's compiled kernel and whole argument tuple, built once: a step is then one call per block
        self.block_calls = [(block.block_step, (self.hidden, self.resid, i == 0, False, *block.args))
                            for i, block in enumerate(self.blocks)]
        self.final_args = (self.hidden, self.resid, not self.blocks, *_norm_args(backbone.norm_f), self.normed,
                           *_linear_args(model.lm_head))
        self.logits_shape = (batch, model.lm_head.weight.shape[0])
        self.final_step = kernels.compiled_for(kernels.final_step, *self.final_args, _logits(self.logits_shape))
        self.embedding = _array(embedding.weight)

    @staticmethod
    def build(model: nn.Module, cache: dict, batch: int) -> FastMambaStep | None:
        """The fused step for ``model`` (a CausalLM) and its zeroed ``cache``, or None where it does not apply."""
        backbone = getattr(model, "backbone", None)
        if type(backbone) is not MixerModel or not isinstance(getattr(model, "lm_head", None), nn.Linear) \
                or len(cache) != len(backbone.layers):
            return None
        embedding = backbone.get_submodule(backbone.embedding_name)
        if _norm_unsupported(backbone.norm_f) or backbone.final_norm is not final_norm \
                or type(embedding) is not nn.Embedding or embedding.max_norm is not None \
                or unsupported(model, backbone.layers):
            return None
        if any(not isinstance(cache.get(i), tuple) or len(cache[i]) != 2
               or any(t.dtype != torch.float32 or not t.is_contiguous() for t in cache[i])
               for i in range(len(backbone.layers))):
            return None
        return FastMambaStep(model, cache, batch)

    def __call__(self, input_ids: torch.Tensor) -> torch.Tensor:
        _embed(self.kernels, self.embedding, input_ids, self.hidden)
        for block_step, args in self.block_calls:
            block_step(*args)
        logits = _logits(self.logits_shape)
        self.final_step(*self.final_args, logits)
        return torch.from_numpy(logits)


class FastSashimiStep(_FusedStep):
    """The fused step of a :class:`~mamba_bio_audio.models.sashimi.SashimiLM` (``SashimiBackbone.step``'s U-Net
    walk): ``step(input_ids (batch,) int64, state) -> logits (batch, vocab) fp32``, the block and pool states of
    ``state`` updated in place."""

    def __init__(self, model: nn.Module, state, batch: int):
        backbone = model.backbone
        self.kernels = kernels = ops.cpu_decode_kernels()
        self.batch = batch
        calls = {block.layer_idx: _BlockCall(kernels, block, *state.layers[block.layer_idx], batch)
                 for block in backbone._all_blocks()}
        self.blocks = list(calls.values())
        self.down_blocks = [[calls[b.layer_idx] for b in blocks] for blocks in backbone.down_blocks]
        self.center = [calls[b.layer_idx] for b in backbone.center]
        self.up_blocks = [[calls[b.layer_idx] for b in blocks] for blocks in backbone.up_blocks]
        # (linear args, pool, buffer (B, pool, width), the same buffer as (B, pool * width): the pool's linear's side)
        self.down_pools = [(_linear_args(p.linear), p.pool, _array(s.buffer), _array(s.buffer).reshape(batch, -1))
                           for p, s in zip(backbone.down_pools, state.down)]
        self.up_pools = [(_linear_args(p.linear), p.pool, _array(s.buffer), _array(s.buffer).reshape(batch, -1))
                         for p, s in zip(backbone.up_pools, state.up)]
        widths = backbone.config.widths
        self.pooled = [np.zeros((batch, w), dtype=np.float32) for w in widths[1:]]
        self.resid = [np.zeros((batch, w), dtype=np.float32) for w in widths]
        self.normed = np.zeros((batch, widths[0]), dtype=np.float32)
        self.embedded = np.zeros((batch, widths[0]), dtype=np.float32)
        self.norm_f, self.head = _norm_args(backbone.norm_f), _linear_args(model.lm_head)
        self.logits_shape = (batch, model.lm_head.weight.shape[0])
        self.final_step = kernels.compiled_for(kernels.final_step, self.normed, self.resid[0], True, *self.norm_f,
                                               self.normed, *self.head, _logits(self.logits_shape))
        self.embedding = _array(model.embedding.weight)
        self.parameters = _Parameters(model)

    @staticmethod
    def build(model: nn.Module, state, batch: int) -> FastSashimiStep | None:
        """The fused step for ``model`` and its zeroed ``state``, or None where it does not apply."""
        backbone = model.backbone
        if type(backbone.norm_f) is not nn.LayerNorm or _norm_unsupported(backbone.norm_f) \
                or type(model.embedding) is not nn.Embedding or model.embedding.max_norm is not None \
                or unsupported(model, list(backbone._all_blocks())):
            return None
        tensors = [s.buffer for s in (*state.down, *state.up)] + [t for pair in state.layers.values() for t in pair]
        if any(t.dtype != torch.float32 or not t.is_contiguous() for t in tensors):
            return None
        return FastSashimiStep(model, state, batch)

    def __call__(self, input_ids: torch.Tensor, state) -> torch.Tensor:
        k = self.kernels
        x = self.embedded  # blocks change it in place; skips, pool buffers and the centre keep copies
        _embed(k, self.embedding, input_ids, x)
        skips = []
        stages = len(self.down_pools)
        top = stages - 1  # the deepest stage whose up path runs on this sample
        for i in range(stages):
            for block in self.down_blocks[i]:
                skips.append(x.copy())
                block(x, self.resid[i], True, True)
            skips.append(x.copy())
            linear, pool, buffer, flat = self.down_pools[i]
            pool_state = state.down[i]
            buffer[:, pool_state.index] = x
            pool_state.index += 1
            if pool_state.index < pool:
                top, x = i, None
                break
            pool_state.index = 0
            x = self.pooled[i]
            k.linear(flat, *linear, x)
        else:
            center_in = x.copy()
            for block in self.center:
                block(x, self.resid[stages], True, True)
            x += center_in
        for i in range(top, -1, -1):
            linear, pool, buffer, flat = self.up_pools[i]
            pool_state = state.up[i]
            y = buffer[:, pool_state.index].copy()
            pool_state.index += 1
            if (pool_state.index == pool) != (x is not None):  # the generic UpPool.step's checks
                raise ValueError(f"the pool states of stage {i} are out of step (UpPool index {pool_state.index - 1}"
                                 f" of {pool}, a pooled input {'given' if x is not None else 'missing'})")
            if x is not None:
                pool_state.index = 0
                k.linear(x, *linear, flat)
            x = y + skips.pop()
            for block in self.up_blocks[i]:
                block(x, self.resid[i], True, True)
                x += skips.pop()
        state.seqlen_offset += 1
        logits = _logits(self.logits_shape)
        self.final_step(x, self.resid[0], True, *self.norm_f, self.normed, *self.head, logits)
        return torch.from_numpy(logits)
