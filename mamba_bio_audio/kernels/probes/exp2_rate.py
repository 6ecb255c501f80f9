"""A Triton kernel that evaluates exp2 and nothing else of note: the exponential rate against which ``bench scan
--floors`` sets the selective scan's exponential floor (the scan's kernels evaluate ``tl.exp2`` in fp32 once per
(batch, channel, step, state)).

x (n,) fp32 in [0, 1] → x after ``steps`` iterations of x ← exp2(x / 2), which stays in [1, 2]: each element
costs ``steps`` dependent exp2 evaluations (and as many multiplies) for one load and one store, so the kernel
is bound by the exponential unit, not by memory. Importing this module builds the kernel, so under Triton's
interpreter ``TRITON_INTERPRET=1`` must be set first.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK = 1024


@triton.jit
def _exp2_chain_kernel(x_ptr, out_ptr, n, STEPS: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask, other=0.0)
    for _ in range(STEPS):
        x = tl.exp2(x * 0.5)
    tl.store(out_ptr + offs, x, mask=mask)


def exp2_chain(x: torch.Tensor, steps: int) -> torch.Tensor:
    """x (n,) fp32, contiguous → (n,) fp32 after ``steps`` iterations of x ← exp2(x / 2): n · steps exp2."""
    out = torch.empty_like(x)
    _exp2_chain_kernel[(triton.cdiv(x.numel(), BLOCK),)](x, out, x.numel(), STEPS=steps, BLOCK=BLOCK, num_warps=4)
    return out
