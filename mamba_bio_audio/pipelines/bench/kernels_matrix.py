"""The launch configurations ``bench kernels --matrix`` compiles: every configuration the launchers' heuristics can
choose across the supported ranges, each reached through a real plan of ``kernels/launch_plan.py``.

What picks a configuration, and the sizes below that reach each choice:

* scan (``scan_config``, ``forward_plan`` / ``forward_layout``, ``backward_layout``, ``scan_segments``): N 1..256;
  BLOCK_L = 16 whatever L (L 5, 40, 4096); tiles (SUB, NK, BLOCK_D, NL) with NL lanes on the states (N 1: 1;
  N 4: 4; N 16: 4 forward, 8 backward; N 64: 16; N 256: 32), NK = N / NL, BLOCK_D from ``scan_config`` (64 / N)
  raised to one warp's channels and capped by d_inner and by the groups' channels (1..64), 1 or 2 warps (the
  backward at N 256: 4); the
  forward's wider layout (NL 8) when NL 4 leaves fewer than 16 warps per SM (batch 8, d_inner 2048 on an H100);
  segments along L (grid axis 2) when a grid has fewer than 16 warps per SM, with the first-pass kernels
  ``_scan_fwd_local_kernel`` / ``_scan_bwd_local_kernel``; the HAS_* flags (D, z, delta_bias, initial_state,
  d last_state, softplus), groups, dtype and deterministic (partials vs atomics, one writer per group);
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
    # the scan shape (d_inner 2048, batch 8, L 2048): the forward's wider layout on an H100, no segments
    ("scan 8x2048x2048 bf16 forward (NL 8)", "scan", (8, 2048, 16, 2048, BF16), {"backward": False}, True),
    ("decode step 768 bf16", "decode_step", (256, 768, BF16), {}, True),
    ("decode step 768 fp32", "decode_step", (1, 768, F32), {}, True),
    # scan: the N tiers (NL 1..32, BLOCK_D 64..1), each with other choices off or on: L short and long (one
    # segment, many), optional inputs, groups (one program per group, or atomics), fp16, forward alone
    ("scan N=1 L=5 (one partial chunk), no D/z/bias/softplus", "scan", (2, 64, 1, 5, F32),
     {"has_D": False, "has_z": False, "has_bias": False, "softplus": False}, False),
    ("scan N=4 L=40 fp16, initial state, d last_state", "scan", (2, 64, 4, 40, F16),
     {"initial_state": True, "dlast": True, "z_from_in_proj": False}, False),
    ("scan N=64 groups 2, one program per group", "scan", (2, 2, 64, 4096, BF16), {"groups": 2}, False),
    ("scan N=256 (NL 32, NK 8) groups 2, atomics", "scan", (2, 64, 256, 4096, BF16), {"groups": 2}, False),
    ("scan N=16 d_inner 2 (part of a warp's channels)", "scan", (1, 2, 16, 4096, F32), {}, False),
    ("scan N=16 L=16 (one chunk) forward only", "scan", (1, 64, 16, 16, BF16), {"backward": False}, False),
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
