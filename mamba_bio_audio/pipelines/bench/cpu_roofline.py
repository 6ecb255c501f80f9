"""What the CPU can do, measured now, and what a Mamba LM asks of it: the ceilings ``bench cpu`` divides by.

* :func:`matmul_rate`: GFLOP/s of ``torch.mm`` at the in_proj's shape, (2·d_inner, d_model) @ (d_model, batch·L)
  fp32, the model's biggest GEMM (the machine's practical matmul ceiling at these shapes);
* :func:`scan_rate`: state updates/s of the selective scan forward alone at the model's shape (batch, d_inner,
  L, N), the rate the scan reaches outside the model;
* :func:`train_flops` / :func:`decode_flops_per_token`: the GEMM FLOPs of a training step (forward + backward =
  3 × the forward's 2·MACs) and of one decoded token (2 × the weights every token multiplies).
"""
from __future__ import annotations

import torch

from mamba_bio_audio import ops
from mamba_bio_audio.pipelines.bench.timing import median_seconds

__all__ = ["matmul_rate", "scan_rate", "projection_macs_per_token", "train_flops", "decode_flops_per_token",
           "scan_updates"]

_CPU = torch.device("cpu")


def matmul_rate(d_model: int, d_inner: int, tokens: int, repeats: int = 5) -> float:
    """GFLOP/s of fp32 ``(2·d_inner, d_model) @ (d_model, tokens)`` on the CPU (median of ``repeats``)."""
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(2 * d_inner, d_model, generator=generator)
    x = torch.randn(d_model, tokens, generator=generator)
    seconds = median_seconds(lambda: weight @ x, _CPU, repeats)
    return 2 * weight.shape[0] * d_model * tokens / seconds / 1e9


def scan_rate(batch: int, d_inner: int, n_state: int, length: int, repeats: int = 3) -> float:
    """State updates/s (batch·d_inner·L·N per call) of the scan forward on the CPU backend, fp32, with z, D and
    delta_bias + softplus as the Mamba block feeds it."""
    generator = torch.Generator().manual_seed(0)
    u, delta, z = (torch.randn(batch, d_inner, length, generator=generator) for _ in range(3))
    B, C = (torch.randn(batch, n_state, length, generator=generator) for _ in range(2))
    A = -torch.arange(1, n_state + 1, dtype=torch.float32).repeat(d_inner, 1)
    D, bias = torch.ones(d_inner), torch.full((d_inner,), -4.0)
    with torch.no_grad():
        seconds = median_seconds(lambda: ops.selective_scan_fn(u, delta, A, B, C, D, z=z, delta_bias=bias,
                                                               delta_softplus=True, backend="cpu"), _CPU, repeats)
    return batch * d_inner * length * n_state / seconds


def _mixers(model) -> list:
    return [layer.mixer for layer in model.backbone.layers]


def projection_macs_per_token(model) -> int:
    """Multiply-accumulates per token of every GEMM of a Mamba LM: in_proj, x_proj, dt_proj, out_proj of each
    layer, and the LM head."""
    macs = sum(m.in_proj.weight.numel() + m.x_proj.weight.numel() + m.dt_proj.weight.numel()
               + m.out_proj.weight.numel() for m in _mixers(model))
    return macs + model.lm_head.weight.numel()


def train_flops(model, tokens: int) -> float:
    """GEMM FLOPs of one training step over ``tokens`` tokens: forward 2·MACs, backward twice that."""
    return 3 * 2 * projection_macs_per_token(model) * tokens


def decode_flops_per_token(model) -> float:
    """GEMM FLOPs of one decoded token (the scan, conv and norms add O(d_inner·N) more, under 2 % here)."""
    return 2 * projection_macs_per_token(model)


def scan_updates(model, batch: int, length: int) -> int:
    """State updates of one forward pass (batch·d_inner·L·N summed over layers)."""
    return sum(batch * m.d_inner * length * m.d_state for m in _mixers(model))
