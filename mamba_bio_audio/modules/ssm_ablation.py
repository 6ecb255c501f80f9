"""Ablation switches of the Mamba mixer (Gu & Dao 2023, §4.6, Tables 6-10): the pieces that replace a default part.

The switches are ``ssm_cfg`` keys (checked by :func:`mamba_bio_audio.config.check_ssm_cfg`); their defaults are
the released layer, which then builds none of the modules below (its state-dict keys do not change):

* ``use_conv=False``: no short convolution; the conv is replaced by :class:`IdentityConv` (a fixed kernel
  ``[0, ..., 0, 1]``, no bias, no parameter), so x ← SiLU(x) on every path (forward, chunks, step).
* ``selective_dt`` / ``selective_B`` / ``selective_C`` = False: Δ, B or C input-independent. Δ_d =
  softplus(dt_proj.bias_d) (:class:`InputIndependentDt`: the bias stays a parameter, the low-rank weight is a
  zero buffer); B and C become learned N-vectors shared by all channels and all tokens (the selective B_t, C_t
  are also shared by the channels), held by :class:`SelectionSplit`, which cuts ``x_proj``'s output into the
  selective parts only. All three off is an S4D-style LTI layer: a causal convolution of each channel with
  K_{d,k} = Σ_n C_n exp(k Δ_d A_{d,n}) Δ_d B_n.
* ``A_init``: ``"s4d_real"`` (A_n = -(n + 1), the default) or ``"s4d_lin"``: the real part of S4D-Lin,
  A_n = -1/2 for every n (paper Table 8's real "-1/2" row). S4D-Lin's imaginary part (n·πi) is left out: the
  scan kernels take a real fp32 A.
"""
from __future__ import annotations

import math

import torch
from einops import repeat
from torch import nn

__all__ = ["ABLATION_DEFAULTS", "IdentityConv", "InputIndependentDt", "SelectionSplit", "a_log_init",
           "is_default"]

ABLATION_DEFAULTS = {"use_conv": True, "selective_dt": True, "selective_B": True, "selective_C": True,
                     "A_init": "s4d_real"}


def is_default(switches: dict) -> bool:
    """True when every switch in ``switches`` holds its default (the released layer)."""
    return all(switches[key] == value for key, value in ABLATION_DEFAULTS.items())


def a_log_init(A_init: str, d_inner: int, d_state: int, device=None) -> torch.Tensor:
    """log(-A) (d_inner, d_state) fp32 for ``A_init`` "s4d_real" (A_n = -(n + 1)) or "s4d_lin" (A_n = -1/2)."""
    if A_init == "s4d_real":
        A = torch.arange(1, d_state + 1, dtype=torch.float32, device=device)
    elif A_init == "s4d_lin":
        A = torch.full((d_state,), 0.5, dtype=torch.float32, device=device)
    else:
        raise ValueError(f"A_init must be 's4d_real' or 's4d_lin'; got {A_init!r}")
    return torch.log(repeat(A, "n -> d n", d=d_inner)).contiguous()


class IdentityConv(nn.Module):
    """Stands in for the depthwise ``conv1d`` when ``use_conv=False``: ``weight`` (d_inner, 1, d_conv) is the
    fixed kernel [0, ..., 0, 1] (a buffer, not saved) and ``bias`` is None, so the conv op passes x through."""

    def __init__(self, d_inner: int, d_conv: int, device=None, dtype=None):
        super().__init__()
        weight = torch.zeros(d_inner, 1, d_conv, device=device, dtype=dtype)
        weight[..., -1] = 1.0
        self.register_buffer("weight", weight, persistent=False)
        self.bias = None


class InputIndependentDt(nn.Module):
    """Stands in for ``dt_proj`` when ``selective_dt=False``: ``weight`` (d_inner, dt_rank) is a zero buffer
    (not saved) and ``bias`` (d_inner,) is the trained parameter, so Δ_d = softplus(bias_d) for every token."""

    def __init__(self, dt_proj: nn.Linear):
        super().__init__()
        self.register_buffer("weight", torch.zeros_like(dt_proj.weight), persistent=False)
        self.bias = dt_proj.bias  # keeps its inverse-softplus init and its _no_reinit tag


class SelectionSplit(nn.Module):
    """Cuts ``x_proj``'s output (..., width) into (dt_low (..., dt_rank), B (..., N), C (..., N)), where only
    the selective parts come from ``x_proj`` (``width`` = their sizes summed); an input-independent Δ gets
    dt_low = 0 (see :class:`InputIndependentDt`), an input-independent B or C its learned N-vector, broadcast."""

    def __init__(self, dt_rank: int, d_state: int, selective_dt: bool, selective_B: bool, selective_C: bool,
                 device=None):
        super().__init__()
        self.dt_rank, self.d_state = dt_rank, d_state
        self.selective = {"dt": selective_dt, "B": selective_B, "C": selective_C}
        sizes = {"dt": dt_rank, "B": d_state, "C": d_state}
        self.split_sizes = [sizes[name] for name, on in self.selective.items() if on]  # x_proj's output parts
        if not selective_B:  # S4D's B init (ones)
            self.B = nn.Parameter(torch.ones(d_state, device=device, dtype=torch.float32))
        if not selective_C:  # unit-variance readout of the N states
            self.C = nn.Parameter(torch.randn(d_state, device=device, dtype=torch.float32) / math.sqrt(d_state))
        for param in self.parameters():  # SSM parameters, like A_log and D
            param._no_weight_decay = True

    @property
    def width(self) -> int:
        """Output features ``x_proj`` must produce."""
        return sum(self.split_sizes)

    def forward(self, x_dbl: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        parts = iter(torch.split(x_dbl, self.split_sizes, dim=-1) if self.split_sizes else ())
        lead = x_dbl.shape[:-1]
        dt = next(parts) if self.selective["dt"] else x_dbl.new_zeros(*lead, self.dt_rank)
        B = next(parts) if self.selective["B"] else self.B.to(x_dbl.dtype).expand(*lead, self.d_state)
        C = next(parts) if self.selective["C"] else self.C.to(x_dbl.dtype).expand(*lead, self.d_state)
        return dt, B, C
