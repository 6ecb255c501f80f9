"""(Residual add +) RMSNorm in pure PyTorch: the oracle of the ``triton`` backend beside this file, whose function
has the signature of :func:`rms_norm_ref`.

x, residual (..., hidden), any float dtype; weight, bias (hidden,). Statistics in fp32. The positional arguments
are the first four of ``mamba_ssm.ops.triton.layer_norm.rms_norm_fn`` / ``rms_norm_ref`` (``bias`` positional, may
be None), the rest keyword-only (upstream's ``x1``, ``dropout_p``, ... sit between them; ``ops.rms_norm_fn`` takes
upstream's whole list).
"""
from __future__ import annotations

import torch

__all__ = ["rms_norm_ref"]


def rms_norm_ref(x, weight, bias, residual=None, *, eps=1e-6, prenorm=False, residual_in_fp32=False):
    """(Residual add +) RMSNorm over the last dim, statistics in fp32: normed = summed · rstd · weight (+ bias).

    x, residual (..., hidden); weight, bias (hidden,) (bias None: none). The post-add sum is the new residual, kept in fp32 when
    ``residual_in_fp32`` (else in x.dtype). Returns normed (x.dtype), and (normed, residual_out) when ``prenorm``.
    """
    dtype = x.dtype
    summed = x.float() if residual is None else x.float() + residual.float()
    rstd = torch.rsqrt(summed.pow(2).mean(dim=-1, keepdim=True) + eps)
    out = summed * rstd * weight.float()
    out = (out if bias is None else out + bias.float()).to(dtype)
    if not prenorm:
        return out
    residual_out = summed if residual_in_fp32 else summed.to(dtype)
    return out, residual_out
