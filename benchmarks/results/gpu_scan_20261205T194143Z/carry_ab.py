"""A/B in one process: the scan with the carry pass as one Triton launch vs its PyTorch twin (the old code), and
without a split (segments=1). Prints JSON lines. Ran on the H100 at commit f48b8d5 (``PYTHONPATH=. python3
carry_ab.py``), where the twin still lived in ``triton_kernels``; it is ``reference.chain_segments_ref`` now."""
import json
import time

import torch

from mamba_bio_audio.kernels.selective_scan import triton_kernels as tk
from mamba_bio_audio.kernels.selective_scan.reference import chain_segments_ref
from mamba_bio_audio.kernels.selective_scan.triton import selective_scan_tuned

cuda = torch.cuda.is_available()
dev = "cuda" if cuda else "cpu"
shapes = [(1, 1024, 2048), (1, 1024, 16384), (1, 1024, 65536), (8, 2048, 2048)] if cuda else [(1, 8, 64)]
N = 16 if cuda else 4


def timer(fn):
    if cuda:
        from triton.testing import do_bench
        return do_bench(fn, warmup=25, rep=100)
    t = time.perf_counter(); fn(); return (time.perf_counter() - t) * 1e3


kernel, twin = tk.chain_segments, chain_segments_ref
for b, d, L in shapes:
    g = torch.Generator().manual_seed(0)
    def r(*s, scale=1.0, dt=torch.bfloat16):
        return (torch.randn(*s, generator=g) * scale).to(dev, dt).requires_grad_()
    u, delta, z = r(b, d, L), r(b, d, L, scale=0.5), r(b, d, L)
    B, C = r(b, N, L), r(b, N, L)
    A = (-0.5 - torch.rand(d, N, generator=g)).to(dev).requires_grad_()
    D, bias = r(d, dt=torch.float32), r(d, scale=0.3, dt=torch.float32)
    dout = torch.randn(b, d, L, generator=g).to(dev, torch.bfloat16)
    leaves = [u, delta, z, B, C, A, D, bias]
    for variant, chain, segs in (("carry kernel", kernel, None), ("carry pytorch", twin, None), ("no split", kernel, 1)):
        tk.chain_segments = chain
        def fwd():
            with torch.no_grad():
                selective_scan_tuned(u, delta, A, B, C, D, z, bias, True, segments=segs)
        def fb():
            for t in leaves:
                t.grad = None
            selective_scan_tuned(u, delta, A, B, C, D, z, bias, True, segments=segs).backward(dout)
        fwd(); fb()
        print(json.dumps({"shape": [b, d, N, L], "variant": variant, "fwd_ms": round(timer(fwd), 4),
                          "fwd_bwd_ms": round(timer(fb), 4)}), flush=True)
tk.chain_segments = kernel
