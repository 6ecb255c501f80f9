"""RMSNorm with the optional fused residual add of ``mamba_ssm.ops.triton.layer_norm.RMSNorm``."""
from __future__ import annotations

import torch
from torch import nn

from mamba_bio_audio import ops

__all__ = ["RMSNorm"]


class RMSNorm(nn.Module):
    """y = x / sqrt(mean(x²) + eps) · weight over the last dim; statistics in fp32 (``ops.rms_norm_fn``).

    ``weight`` (hidden_size,) starts at ones; there is no bias (``self.bias`` is None, as upstream).
    """

    def __init__(self, hidden_size: int, eps: float = 1e-5, device=None, dtype=None):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(hidden_size, device=device, dtype=dtype))
        self.register_parameter("bias", None)

    def forward(self, x, residual=None, prenorm: bool = False, residual_in_fp32: bool = False):
        """x, residual (..., hidden_size). Returns normed(x + residual) in x.dtype, and with ``prenorm`` also
        the sum (the next residual; fp32 when ``residual_in_fp32``)."""
        return ops.rms_norm_fn(x, self.weight, self.bias, residual=residual, eps=self.eps, prenorm=prenorm,
                               residual_in_fp32=residual_in_fp32)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"
