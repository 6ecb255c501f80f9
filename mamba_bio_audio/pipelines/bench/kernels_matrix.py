"""The launch configurations ``bench kernels --matrix`` compiles: every configuration the launchers' heuristics can
choose across the supported ranges, each reached through a real plan of ``kernels/launch_plan.py``.

What picks a configuration, and the sizes below that reach each choice:

* scan (``scan_config``, ``forward_layout``, ``backward_num_warps``): BLOCK_N = next_pow2(N), N 1..256;
  BLOCK_L = next_pow2(L) clamped to 16..64 and at most 4096 / BLOCK_N (L 5, 40, 4096; N 256);
  BLOCK_D = 4096 / (BLOCK_N · BLOCK_L) capped by d_inner and by the groups' channels (1..64); forward: SUB
  steps per sub-chunk and 1..8 warps by BLOCK_D and BLOCK_N; backward: 8 warps for a full 4096-element tile,
  else 4; the HAS_* flags (D, z, delta_bias, initial_state, d last_state, softplus), groups, dtype and
  deterministic (partials vs atomics, one writer per group);
* conv: W 2..4; BLOCK_L = next_pow2(L) clamped to 16..256, BLOCK_D = 2048 / BLOCK_L; bias, initial_state, SiLU;
  decode update: T, state length, BLOCK_D = min(64, next_pow2(dim));
* RMSNorm: BLOCK_H = next_pow2(H) and num_warps = BLOCK_H / 256 clamped to 1..16 (H 64, 768, 2048, 16384), residual,
  prenorm, residual_in_fp32, dtype;
* decode step: (BLOCK_M, num_warps) by N tier (16, 32, 64, 128, 256), groups, the HAS_* flags.

``default`` marks the launches a model makes at its default settings (a Mamba block's training and decode
steps): those must not spill.
"""
from __future__ import annotations

__all__ = ["MATRIX"]

F32, BF16, F16 = "fp32", "bf16", "fp16"

# (label, plan, sizes, options, default)
MATRIX: list[tuple[str, str, tuple, dict, bool]] = [
    # a Mamba block as a model runs it: training step (bf16 and fp32, deterministic too) and decode step
    ("training step 768 bf16", "training_step", (2, 768, 4096, BF16), {}, True),
    ("training step 768 fp32", "training_step", (2, 768, 4096, F32), {}, True),
    ("training step 768 bf16 deterministic", "training_step", (2, 768, 4096, BF16), {"deterministic": True}, True),
    ("decode step 768 bf16", "decode_step", (256, 768, BF16), {}, True),
    ("decode step 768 fp32", "decode_step", (1, 768, F32), {}, True),
    # scan: the N tiers (BLOCK_N 1..256: BLOCK_D 64..1, BLOCK_L 64..16), each with other choices off or on: L tiers
    # (BLOCK_L 16 from L, 64), optional inputs, groups (one program per group, or atomics), fp16, 4 warps below a
    # full tile, forward alone
    ("scan N=1 L=5 (BLOCK_L 16), no D/z/bias/softplus", "scan", (2, 64, 1, 5, F32),
     {"has_D": False, "has_z": False, "has_bias": False, "softplus": False}, False),
    ("scan N=4 L=40 fp16, initial state, d last_state", "scan", (2, 64, 4, 40, F16),
     {"initial_state": True, "dlast": True, "z_from_in_proj": False}, False),
    ("scan N=64 groups 2, one program per group", "scan", (2, 2, 64, 4096, BF16), {"groups": 2}, False),
    ("scan N=256 (BLOCK_L 16) groups 2, atomics", "scan", (2, 64, 256, 4096, BF16), {"groups": 2}, False),
    ("scan N=16 d_inner 2 (half tile) forward only", "scan", (1, 2, 16, 4096, F32), {"backward": False}, False),
    *[(f"scan N=16 L={n} (BLOCK_L {n}) forward only", "scan", (1, 64, 16, n, BF16), {"backward": False}, False)
      for n in (16, 32)],
    # conv: widths, L tiers (BLOCK_L 16 .. 256), optional inputs
    *[(f"conv W={w}", "conv", (2, 64, 4096, w, BF16), {}, False) for w in (2, 3)],
    ("conv L=5 no bias/SiLU, initial state", "conv", (2, 64, 5, 4, F32),
     {"has_bias": False, "silu": False, "initial_state": True, "x_from_in_proj": False}, False),
    ("conv update T=4 W=2 no bias/SiLU", "conv_update", (2, 64, 2, F16), {"steps": 4, "has_bias": False, "silu": False},
     False),
    # RMSNorm: BLOCK_H / num_warps tiers, residual handling
    ("rms_norm H=64 no residual", "rms_norm", (64, 64, F32), {"residual": False, "prenorm": False}, False),
    ("rms_norm H=2048 residual in bf16", "rms_norm", (64, 2048, BF16), {"residual_in_fp32": False}, False),
    ("rms_norm H=16384 fp32", "rms_norm", (64, 16384, F32), {}, False),
    # decode step: the N tiers of the block table, groups, optional inputs off
    *[(f"state update N={n}", "state_update", (2, 64, n, F32), {}, False) for n in (1, 32, 64, 128, 256)],
    ("state update groups 2, no D/z/bias/softplus", "state_update", (2, 64, 16, BF16),
     {"groups": 2, "has_D": False, "has_z": False, "has_bias": False, "softplus": False}, False),
]
