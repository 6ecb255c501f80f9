"""The physical floors of the selective scan on a device, from rates measured in the run that uses them.

* **Bandwidth floor**: the bytes the scan must move, once each in their dtype, over the device's copy bandwidth
  (bytes read + written per second of ``dst.copy_(src)`` on one buffer). Forward: u, δ, z, B, C read and out
  written, s · batch · L · (4 · d_inner + 2 · N) bytes for element size s (ungrouped B/C). Backward adds dout,
  u, δ, z, B, C read and du, dδ, dz, dB, dC written, s · batch · L · (7 · d_inner + 4 · N). The (d_inner, N)
  parameters, their gradients and the chunk states a kernel may save are left out: a floor, not a model of one
  kernel.
* **Exponential floor**: batch · d_inner · L · N exp2 evaluations forward, twice that forward+backward (the
  backward evaluates them again), over the exp2 rate of a kernel that does little else
  (``kernels/probes/exp2_rate.py``, through ``ops.probe``, on
  CUDA or under Triton's interpreter), or of ``torch.exp2`` over one buffer where Triton cannot run.

A time's multiple of the floor is time / max(bandwidth floor, exponential floor); 1 is the physical limit.
"""
from __future__ import annotations

import torch

from mamba_bio_audio import ops
from mamba_bio_audio.pipelines.bench.timing import median_seconds

COPY_BYTES = {"cuda": 1 << 30, "cpu": 1 << 26}  # one buffer, far beyond every cache
EXP2_ELEMENTS = {"cuda": (1 << 22, 256), "interpreter": (4096, 4), "cpu": (1 << 22, 1)}  # (elements, exp2 each)


def copy_bandwidth(device: torch.device, repeats: int = 5) -> dict:
    """Bytes read + written per second of a copy between two buffers of ``COPY_BYTES`` on ``device``."""
    nbytes = COPY_BYTES["cuda" if device.type == "cuda" else "cpu"]
    src = torch.ones(nbytes, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    seconds = median_seconds(lambda: dst.copy_(src), device, repeats)
    return {"copy_bytes_per_s": 2 * nbytes / seconds, "copy_buffer_bytes": nbytes}


def _triton_runs(device: torch.device) -> bool:
    if device.type != "cuda" and not ops.triton_interpreter_on():
        return False
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def exp2_rate(device: torch.device, repeats: int = 5) -> dict:
    """exp2 evaluations per second on ``device`` and how they were measured."""
    if _triton_runs(device):
        exp2_chain = ops.probe("exp2_rate.exp2_chain")
        kind = "cuda" if device.type == "cuda" else "interpreter"
        n, steps = EXP2_ELEMENTS[kind]
        x = torch.rand(n, device=device)
        seconds = median_seconds(lambda: exp2_chain(x, steps), device, repeats)
        method = f"Triton exp2 chain, {steps} per element over {n} fp32" + (" (interpreter)" if kind != "cuda" else "")
    else:
        n, steps = EXP2_ELEMENTS["cpu"]
        x = torch.rand(n, device=device)
        seconds = median_seconds(lambda: torch.exp2(x), device, repeats)
        method = f"torch.exp2 over {n} fp32"
    return {"exp2_per_s": n * steps / seconds, "exp2_method": method}


def measure(device: torch.device) -> dict:
    """The rates the floors divide by, measured now on ``device``."""
    return {"device": device.type} | copy_bandwidth(device) | exp2_rate(device)


def scan_work(shape, itemsize: int) -> dict:
    """Bytes and exp2 evaluations the scan of ``shape`` = (batch, d_inner, N, L) must spend, forward and
    forward+backward, for inputs of ``itemsize`` bytes per element."""
    batch, d_inner, n_state, length = shape
    forward = itemsize * batch * length * (4 * d_inner + 2 * n_state)
    backward = itemsize * batch * length * (7 * d_inner + 4 * n_state)
    exps = batch * d_inner * length * n_state
    return {"bytes_fwd": forward, "bytes_fwd_bwd": forward + backward, "exp2_fwd": exps, "exp2_fwd_bwd": 2 * exps}


def floor_fields(work: dict, rates: dict, fwd_ms: float, fwd_bwd_ms: float) -> dict:
    """Per direction: both floors in ms and the measured time as a multiple of the larger one."""
    fields = {}
    for direction, measured in (("fwd", fwd_ms), ("fwd_bwd", fwd_bwd_ms)):
        bandwidth_ms = work[f"bytes_{direction}"] / rates["copy_bytes_per_s"] * 1e3
        exp_ms = work[f"exp2_{direction}"] / rates["exp2_per_s"] * 1e3
        fields |= {f"bandwidth_floor_{direction}_ms": round(bandwidth_ms, 4),
                   f"exp2_floor_{direction}_ms": round(exp_ms, 4),
                   f"x_floor_{direction}": round(measured / max(bandwidth_ms, exp_ms), 3)}
    return fields
