"""``mamba-bio-audio bench scan``: selective scan forward and forward+backward time of every available backend,
and its speed-up over the pure-torch reference measured in the same run on the same device.

Inputs are as the Mamba block feeds the scan: z gate, D skip, delta_bias + softplus (dt initialised in
[1e-3, 1e-1] as upstream), A = -(1 ... N) (S4D-real), ungrouped B/C, seeded random activations. Each shape is
``BATCHxD_INNERxNxL`` with an optional ``:bf16`` / ``:fp16`` suffix for u, delta, z, B, C. "forward" runs under
``torch.no_grad``; "forward+backward" computes the gradients of every input for a fixed random output gradient.
Each figure is the median of ``--repeats`` runs after one warm-up run (JIT compilation, allocator). State updates
per second are batch * d_inner * L * N / time. The JSON records the load average before and after the run:
other work on the machine slows every figure.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import numba
import torch

from mamba_bio_audio.pipelines.reporting.bench_results import load_average
from rich.console import Console
from rich.table import Table

from mamba_bio_audio import ops
from mamba_bio_audio.atomic import write_text_atomic

DEFAULT_SHAPES = "1x512x16x16384,4x256x16x2048,1x1536x16x2048,2x512x16x4096:bf16"
QUICK_SHAPES = "1x24x4x70,2x16x4x40:bf16"
HEADLINE = {"shape": [1, 512, 16, 16384], "dtype": "float32", "backend": "cpu", "min_speedup_fwd_bwd": 20.0}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
INPUT_NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shapes", default=DEFAULT_SHAPES,
                        help="comma-separated BATCHxD_INNERxNxL[:bf16|:fp16] (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help=f"tiny grid ({QUICK_SHAPES}), one repeat: a smoke test")
    parser.add_argument("--backends", default=None,
                        help="comma-separated subset of reference, cpu, triton (default: reference, cpu, and triton "
                             "when CUDA is available)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per figure (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch and numba CPU threads (default: their choice, one per core)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON path (default: benchmarks/results/scan-<device>-<YYYYMMDD>.json)")


def parse_shapes(text: str) -> list[tuple[tuple[int, int, int, int], str]]:
    """'1x512x16x16384,2x64x16x4096:bf16' -> [((1, 512, 16, 16384), 'fp32'), ((2, 64, 16, 4096), 'bf16')]."""
    shapes = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        match = re.fullmatch(r"(\d+)x(\d+)x(\d+)x(\d+)(?::(\w+))?", item)
        if not match or (match[5] or "fp32") not in DTYPES or min(int(g) for g in match.groups()[:4]) < 1:
            raise ValueError(f"--shapes entries must be BATCHxD_INNERxNxL[:bf16|:fp16] with positive sizes; "
                             f"got {item!r}")
        shapes.append((tuple(int(g) for g in match.groups()[:4]), match[5] or "fp32"))
    if not shapes:
        raise ValueError("--shapes is empty")
    return shapes


def make_inputs(shape, dtype: torch.dtype, device: torch.device, seed: int) -> dict:
    """The scan's inputs for ``shape`` = (batch, d_inner, N, L), initialised like the Mamba block's."""
    batch, d_inner, n_state, length = shape
    gen = torch.Generator().manual_seed(seed)

    def randn(*size, scale=1.0, dt=dtype):
        return (torch.randn(*size, generator=gen) * scale).to(device=device, dtype=dt)

    dt_init = torch.exp(torch.rand(d_inner, generator=gen) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
    return dict(
        u=randn(batch, d_inner, length),
        delta=randn(batch, d_inner, length, scale=0.5),
        A=-torch.arange(1, n_state + 1, dtype=torch.float32).repeat(d_inner, 1).to(device),
        B=randn(batch, n_state, length),
        C=randn(batch, n_state, length),
        D=torch.ones(d_inner, device=device),
        z=randn(batch, d_inner, length),
        delta_bias=(dt_init + torch.log(-torch.expm1(-dt_init))).to(device),  # inverse softplus
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_seconds(step, device: torch.device, repeats: int) -> float:
    step()  # warm-up: JIT compilation, allocator, caches
    times = []
    for _ in range(repeats):
        _sync(device)
        started = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def time_backend(backend: str, inputs: dict, repeats: int, seed: int) -> tuple[float, float]:
    """(forward seconds, forward+backward seconds) of ``ops.selective_scan_fn`` with ``backend``."""
    device = inputs["u"].device
    leaves = {name: t.detach().requires_grad_() for name, t in inputs.items()}
    gen = torch.Generator().manual_seed(seed + 1)
    grad_out = torch.randn(inputs["u"].shape, generator=gen).to(device=device, dtype=inputs["u"].dtype)

    def scan(tensors):
        return ops.selective_scan_fn(*(tensors[name] for name in INPUT_NAMES), delta_softplus=True, backend=backend)

    def forward():
        with torch.no_grad():
            scan(inputs)

    def forward_backward():
        torch.autograd.grad(scan(leaves), list(leaves.values()), grad_out)

    return _median_seconds(forward, device, repeats), _median_seconds(forward_backward, device, repeats)


def available_backends(requested: str | None) -> list[str]:
    cuda = torch.cuda.is_available()
    if requested is None:
        return ["reference", "cpu"] + (["triton"] if cuda else [])
    names = [name.strip() for name in requested.split(",") if name.strip()]
    unknown = [name for name in names if name not in ops.BACKENDS]
    if unknown or not names:
        raise ValueError(f"--backends must be a comma-separated subset of {', '.join(ops.BACKENDS)}; got {requested!r}")
    if "triton" in names and not cuda:
        raise ValueError("--backends names triton but torch sees no CUDA device")
    return names


def _device_of(backend: str) -> torch.device:
    return torch.device("cuda" if backend == "triton" else "cpu")


def _plan(backends: list[str]) -> list[tuple[torch.device, list[str]]]:
    """[(device, backends to time there)]: the reference first on each device, as the baseline of the others."""
    others = [b for b in backends if b != "reference"]
    devices = list(dict.fromkeys(_device_of(b) for b in others)) or [torch.device("cpu")]
    baseline = ["reference"] if "reference" in backends else []
    return [(device, baseline + [b for b in others if _device_of(b) == device]) for device in devices]


def bench_shape(shape, dtype_name: str, backends: list[str], repeats: int, seed: int) -> list[dict]:
    """One row per (device, backend) for ``shape`` = (batch, d_inner, N, L)."""
    batch, d_inner, n_state, length = shape
    updates = batch * d_inner * length * n_state
    rows = []
    for device, names in _plan(backends):
        inputs = make_inputs(shape, DTYPES[dtype_name], device, seed)
        baseline = None
        for backend in names:
            fwd, fwd_bwd = time_backend(backend, inputs, repeats, seed)
            if backend == "reference":
                baseline = (fwd, fwd_bwd)
            rows.append({
                "shape": list(shape), "dtype": str(DTYPES[dtype_name]).removeprefix("torch."), "device": device.type,
                "backend": backend, "fwd_ms": round(fwd * 1e3, 3), "fwd_bwd_ms": round(fwd_bwd * 1e3, 3),
                "speedup_fwd": round(baseline[0] / fwd, 2) if baseline else None,
                "speedup_fwd_bwd": round(baseline[1] / fwd_bwd, 2) if baseline else None,
                "state_updates_per_s_fwd": round(updates / fwd),
                "state_updates_per_s_fwd_bwd": round(updates / fwd_bwd),
            })
    return rows


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _headline(rows: list[dict]) -> dict | None:
    """Whether the CPU backend reaches its target speed-up at the headline shape (None when not measured)."""
    for row in rows:
        if (row["shape"], row["dtype"], row["backend"]) == (HEADLINE["shape"], HEADLINE["dtype"], HEADLINE["backend"]):
            if row["speedup_fwd_bwd"] is not None:
                return {"speedup_fwd_bwd": row["speedup_fwd_bwd"],
                        "meets_target": row["speedup_fwd_bwd"] >= HEADLINE["min_speedup_fwd_bwd"]}
    return None


def print_table(rows: list[dict], console: Console) -> None:
    short = {str(t).removeprefix("torch."): name for name, t in DTYPES.items()}
    table = Table(title="selective scan with z, D, delta_bias + softplus: median ms, speed-up over the reference, "
                        "M state updates/s")
    for column in ("B×D×N×L", "dtype", "backend", "fwd ms", "f+b ms", "×ref fwd", "×ref f+b", "Mupd/s fwd",
                   "Mupd/s f+b"):
        table.add_column(column, justify="left" if column in ("dtype", "backend") else "right", no_wrap=True)
    for row in rows:
        ratio = [f"{row[k]:.1f}" if row[k] is not None else "-" for k in ("speedup_fwd", "speedup_fwd_bwd")]
        table.add_row("×".join(map(str, row["shape"])), short[row["dtype"]], f"{row['backend']} ({row['device']})",
                      f"{row['fwd_ms']:.1f}", f"{row['fwd_bwd_ms']:.1f}", *ratio,
                      f"{row['state_updates_per_s_fwd'] / 1e6:.0f}", f"{row['state_updates_per_s_fwd_bwd'] / 1e6:.0f}")
    console.print(table)


def run(args) -> int:
    shapes = parse_shapes(QUICK_SHAPES if args.quick else args.shapes)
    repeats = 1 if args.quick else args.repeats
    if repeats < 1:
        raise ValueError(f"--repeats must be >= 1; got {repeats}")
    backends = available_backends(args.backends)
    if args.threads is not None:
        if not 1 <= args.threads <= ops.max_cpu_threads():
            raise ValueError(f"--threads must be between 1 and {ops.max_cpu_threads()}; got {args.threads}")
        ops.set_cpu_threads(args.threads)
    console = Console()
    if not console.is_terminal:  # logs and pipes: room for the whole table instead of rich's 80 columns
        console = Console(width=130)
    load_before = load_average()
    rows = []
    for shape, dtype_name in shapes:
        console.print(f"scan {'×'.join(map(str, shape))} {dtype_name}: {', '.join(backends)}")
        rows += bench_shape(shape, dtype_name, backends, repeats, args.seed)
    print_table(rows, console)
    cuda_name = torch.cuda.get_device_name() if "triton" in backends else None
    now = datetime.now(timezone.utc)
    report = {
        "benchmark": "scan",
        "date": now.isoformat(timespec="seconds"),
        "machine": {"cpu": _cpu_name(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "torch_threads": torch.get_num_threads(), "numba_threads": ops.cpu_threads(),
                    "cuda": cuda_name, "loadavg_before": load_before, "loadavg_after": load_average()},
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "numba": numba.__version__},
        "parameters": {"repeats": repeats, "warmup_runs": 1, "statistic": "median", "seed": args.seed,
                       "inputs": "z, D, delta_bias + softplus, ungrouped B/C, A = -(1..N)"},
        "headline": dict(HEADLINE, result=_headline(rows)),
        "results": rows,
    }
    device_slug = re.sub(r"[^a-z0-9]+", "-", cuda_name.lower()).strip("-") if cuda_name else "cpu"
    out = args.out or Path("benchmarks/results") / f"scan-{device_slug}-{now:%Y%m%d}.json"
    write_text_atomic(out, json.dumps(report, indent=2) + "\n")
    console.print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="python -m mamba_bio_audio.pipelines.bench.scan", description=__doc__)
    add_arguments(_parser)
    raise SystemExit(run(_parser.parse_args()))
