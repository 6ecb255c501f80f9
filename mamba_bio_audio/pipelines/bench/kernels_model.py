"""A static model of a compiled launch on a GPU: occupancy, waves and a lower bound on its time. A model, not a
measurement; ``benchmarks/gpu_check.sh`` measures the same kernels on the GPU named in :data:`CALIBRATE_AGAINST`.

* Occupancy: resident blocks per SM from registers (allocated per warp in units of 256, per SM sub-partition),
  shared memory (the kernel's plus 1 KiB reserved per block) and warps (64 per SM, 32 blocks).
* Waves: programs / (SMs · resident blocks per SM).
* Static lower bound, the largest of four times:
  - issue: warp-instructions (SASS inner loop · iterations + the rest, per warp, times warps) at 4 per cycle per SM
    over the SMs the grid occupies (fewer than 4 resident warps issue fewer);
  - MUFU: MUFU thread-operations (exp2, rcp, lg2, ...) at 16 per cycle per SM;
  - DRAM: every tensor the launch reads or writes, once, at the DRAM bandwidth;
  - chain: a program's iterations run one after another: ceil(waves) · iterations · the loop's warp-instructions
    at one per cycle (the least one warp needs to issue its own stream; latencies come on top).
* Physical floor (:mod:`.floors`, the scan's floors at the device's exp2 rate and bandwidth): for the scan, the
  larger of its compulsory bytes and its exponentials; for the other kernels, their bytes at bandwidth.
"""
from __future__ import annotations

import math

from mamba_bio_audio.pipelines.bench import floors

__all__ = ["DEVICES", "CALIBRATE_AGAINST", "element_work", "launch_bytes", "occupancy", "bound", "is_split_pass",
           "scan_floor_ms"]

MUFU_PER_CYCLE = 16  # per SM, sm_80 and sm_90 (CUDA C programming guide, arithmetic instruction throughput)
ISSUE_PER_CYCLE = 4  # warp-instructions per SM: one per sub-partition
SMSP = 4
DEVICES = {
    "H100": {"name": "NVIDIA H100 SXM5 80GB", "arch": "sm_90", "sms": 132, "clock_hz": 1.83e9,
             "dram_bytes_per_s": 3.35e12, "smem_per_sm": 228 * 1024, "regs_per_sm": 65536, "max_warps": 64,
             "max_blocks": 32},
    "A100": {"name": "NVIDIA A100 SXM4 80GB", "arch": "sm_80", "sms": 108, "clock_hz": 1.41e9,
             "dram_bytes_per_s": 2.039e12, "smem_per_sm": 164 * 1024, "regs_per_sm": 65536, "max_warps": 64,
             "max_blocks": 32},
}
CALIBRATE_AGAINST = "H100"


def named_args(launch) -> dict:
    """The launch's positional arguments by the kernel's parameter names."""
    names = launch.kernel.arg_names
    return dict(zip(names, launch.args)) | launch.kwargs


def element_work(name: str, launch) -> tuple[int, int, str]:
    """(elements per inner-loop iteration, iterations per program, element unit) of a launch of kernel ``name``."""
    a = named_args(launch)
    if name in ("_scan_fwd_kernel", "_scan_fwd_local_kernel", "_scan_bwd_local_kernel"):  # a sub-chunk each
        return (a["BLOCK_D"] * a["SUB"] * a["N"], a["chunks_per_seg"] * (a["BLOCK_L"] // a["SUB"]),
                "channel·step·state")
    if name == "_scan_bwd_kernel":  # one iteration per chunk (its sub-chunks unrolled)
        return a["BLOCK_D"] * a["BLOCK_L"] * a["N"], a["chunks_per_seg"], "channel·step·state"
    if name in ("_conv_fwd_kernel", "_conv_bwd_kernel"):
        return a["BLOCK_D"] * a["BLOCK_L"], 1, "channel·step"
    if name == "_conv_update_kernel":
        return a["BLOCK_D"] * a["T"], 1, "channel·step"
    if name == "_rms_fwd_kernel":
        return a["H"], 1, "row·column"
    if name == "_rms_bwd_kernel":
        return a["H"], math.ceil(a["M"] / launch.grid[0]), "row·column"
    if name == "_state_update_kernel":
        return a["BLOCK_M"] * a["N"], 1, "channel·state"
    if name == "_chain_segments_kernel":  # one iteration per segment after the first
        return a["BLOCK"], max(1, a["n_seg"] - 1), "channel·state·segment"
    raise ValueError(f"no work model for kernel {name}")


def launch_bytes(launch) -> int:
    """Bytes of the distinct tensors a launch is given (placeholders for absent inputs are other arguments)."""
    seen = {}
    for arg in launch.args:
        if hasattr(arg, "element_size") and hasattr(arg, "numel"):
            seen[id(arg)] = arg.numel() * arg.element_size()
    return sum(seen.values())


def occupancy(registers: int, shared_bytes: int, num_warps: int, device: dict) -> dict:
    """Resident blocks and warps per SM and the limiting resource."""
    regs_per_warp = math.ceil(registers * 32 / 256) * 256
    warps_by_regs = (device["regs_per_sm"] // SMSP // regs_per_warp) * SMSP
    per_block_smem = math.ceil(shared_bytes / 128) * 128 + 1024
    limits = {"warps": device["max_warps"] // num_warps, "registers": warps_by_regs // num_warps,
              "shared_memory": device["smem_per_sm"] // per_block_smem, "blocks": device["max_blocks"]}
    blocks = min(limits.values())
    return {"blocks_per_sm": blocks, "warps_per_sm": blocks * num_warps,
            "occupancy": round(blocks * num_warps / device["max_warps"], 4),
            "limited_by": min(limits, key=limits.get)}


def is_split_pass(name: str) -> bool:
    """A launch a split along L adds to a scan direction (its first pass, ``_scan_*_local_kernel``, and the carry
    pass, ``_chain_segments_kernel``): no floor of its own, its time counts against its direction's floor."""
    return name.endswith("_local_kernel") or name == "_chain_segments_kernel"


def scan_floor_ms(launch, name: str, device: dict) -> float:
    """The physical floor of one scan kernel (forward, or backward = fwd+bwd minus fwd) on ``device``; 0 for a
    split's passes (:func:`is_split_pass`)."""
    if is_split_pass(name):
        return 0.0
    a = named_args(launch)
    u, A = a["u_ptr"], a["A_ptr"]
    batch, d_inner, length = u.shape
    work = floors.scan_work((batch, d_inner, A.shape[1], length), u.element_size())
    rates = {"copy_bytes_per_s": device["dram_bytes_per_s"],
             "exp2_per_s": device["sms"] * MUFU_PER_CYCLE * device["clock_hz"]}
    fields = floors.floor_fields(work, rates, 1.0, 1.0)
    fwd = max(fields["bandwidth_floor_fwd_ms"], fields["exp2_floor_fwd_ms"])
    if name == "_scan_fwd_kernel":
        return fwd
    bwd_bytes_ms = fields["bandwidth_floor_fwd_bwd_ms"] - fields["bandwidth_floor_fwd_ms"]
    return max(bwd_bytes_ms, fields["exp2_floor_fwd_ms"])


def bound(name: str, launch, compiled, loop, whole, device: dict) -> dict:
    """Occupancy, waves, the four times (ms), the static bound, the floor and their ratio for one launch."""
    occ = occupancy(compiled.registers, compiled.shared_bytes, compiled.num_warps, device)
    programs = math.prod(launch.grid)
    per_sm = occ["blocks_per_sm"] * device["sms"]
    waves = programs / per_sm
    _, iterations, _ = element_work(name, launch)
    warps = compiled.num_warps
    rest = whole.instructions - loop.instructions
    warp_instr = programs * warps * (loop.instructions * iterations + rest)

    def mufu(m):
        return m.groups["mufu_ex2"] + m.groups["mufu_other"]

    mufu_per_warp = mufu(loop) * iterations + mufu(whole) - mufu(loop)
    active_sms = min(device["sms"], programs)
    resident_warps = min(occ["blocks_per_sm"], math.ceil(programs / device["sms"])) * warps
    clock = device["clock_hz"]
    times = {
        "issue_ms": warp_instr / (clock * active_sms * min(ISSUE_PER_CYCLE, resident_warps)) * 1e3,
        "mufu_ms": programs * warps * 32 * mufu_per_warp / (clock * active_sms * MUFU_PER_CYCLE) * 1e3,
        "dram_ms": launch_bytes(launch) / device["dram_bytes_per_s"] * 1e3,
        "chain_ms": math.ceil(waves) * iterations * loop.instructions / clock * 1e3,
    }
    static = max(times.values())
    scan_part = name.startswith("_scan_") or is_split_pass(name)
    floor = scan_floor_ms(launch, name, device) if scan_part else times["dram_ms"]
    return occ | {"programs": programs, "waves": round(waves, 3), **{k: _sig(v) for k, v in times.items()},
                  "bound_ms": _sig(static), "bound_by": max(times, key=times.get).removesuffix("_ms"),
                  "floor_ms": _sig(floor), "bound_over_floor": round(static / floor, 3) if floor else None}


def _sig(x: float) -> float:
    """``x`` to 6 significant digits (times span microseconds of a decode step to seconds of a 1M-token step)."""
    return float(f"{x:.6g}")
