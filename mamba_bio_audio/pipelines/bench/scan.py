"""``mamba-bio-audio bench scan``: selective scan forward and forward+backward time of every available backend,
and its speed-up over the pure-torch reference measured in the same run on the same device.

Inputs are as the Mamba block feeds the scan: z gate, D skip, delta_bias + softplus (dt initialised in
[1e-3, 1e-1] as upstream), A = -(1 ... N) (S4D-real), ungrouped B/C, seeded random activations. Each shape is
``BATCHxD_INNERxNxL`` with an optional ``:bf16`` / ``:fp16`` suffix for u, delta, z, B, C. "forward" runs under
``torch.no_grad``; "forward+backward" computes the gradients of every input for a fixed random output gradient.
Each figure is the median of ``--repeats`` runs after one warm-up run (JIT compilation, allocator). State updates
per second are batch * d_inner * L * N / time. The JSON records the load average before and after the run:
other work on the machine slows every figure.

Optional figures, all measured in the same run: ``--attention`` times causal ``scaled_dot_product_attention``
(flash backend) at equal width (heads · head_dim = d_inner, head_dim 64, q/k/v in the shape's dtype) and gives
each scan time as a fraction of it (``flash_over_scan_*``: attention time / scan time); ``--floors`` measures the
device's copy bandwidth and exp2 rate (:mod:`.floors`) and gives each time as a multiple of the larger of the
scan's bandwidth and exponential floors (``x_floor_*``). ``--reference-max-length`` and
``--reference-repeats`` bound the cost of the reference (a Python loop over L); its warm-up run uses a
``REFERENCE_WARMUP_STEPS`` prefix. ``--time-budget`` skips the shapes that would not fit, estimated from the
shapes already measured. ``--interpret`` times the triton backend on CPU tensors under Triton's interpreter
(``TRITON_INTERPRET=1`` set before the start): a smoke test of this bench, not a speed.
"""
from __future__ import annotations

import argparse
import math
import re
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F

from mamba_bio_audio.pipelines.bench import budget, floors
from mamba_bio_audio.pipelines.bench.timing import failure, median_seconds
from mamba_bio_audio.pipelines.reporting.bench_results import start, write_result
from rich.console import Console
from rich.table import Table

from mamba_bio_audio import ops

DEFAULT_SHAPES = "1x512x16x16384,4x256x16x2048,1x1536x16x2048,2x512x16x4096:bf16"
QUICK_SHAPES = "1x24x4x70,2x16x4x40:bf16"
HEADLINE = {"shape": [1, 512, 16, 16384], "dtype": "float32", "backend": "cpu", "min_speedup_fwd_bwd": 20.0}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
INPUT_NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")
L_INPUTS = ("u", "delta", "B", "C", "z")  # the inputs with an L axis (last)
REFERENCE_WARMUP_STEPS = 256
HEAD_DIM = 64


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
    parser.add_argument("--interpret", action="store_true",
                        help="allow the triton backend on CPU tensors under Triton's interpreter (TRITON_INTERPRET=1 "
                             "set before the start): a smoke test, orders of magnitude slower than a GPU")
    parser.add_argument("--reference-max-length", type=int, default=None,
                        help="time the reference only for L up to this (default: at every shape)")
    parser.add_argument("--reference-repeats", type=int, default=None,
                        help="timed runs of the reference (default: --repeats)")
    parser.add_argument("--attention", action="store_true",
                        help=f"also time causal scaled_dot_product_attention (flash) at equal width, head_dim {HEAD_DIM}")
    parser.add_argument("--floors", action="store_true",
                        help="measure copy bandwidth and exp2 rate now and report each time as a multiple of the "
                             "scan's bandwidth / exponential floor")
    budget.add_argument(parser)


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


def _prefix(inputs: dict, steps: int) -> dict:
    """The first ``steps`` positions of every input with an L axis; the others unchanged."""
    return {name: t[..., :steps] if name in L_INPUTS else t for name, t in inputs.items()}


def _timed_pair(make_steps, inputs: dict, device: torch.device, repeats: int,
                warmup_inputs: dict | None = None) -> tuple[float, float]:
    """(forward s, forward+backward s) of the two steps ``make_steps(inputs)`` returns, each warmed up once on
    ``warmup_inputs`` (default: the inputs themselves)."""
    forward, forward_backward = make_steps(inputs)
    warm = make_steps(warmup_inputs) if warmup_inputs is not None else (forward, forward_backward)
    return (median_seconds(forward, device, repeats, warm[0]),
            median_seconds(forward_backward, device, repeats, warm[1]))


def _grad_like(t: torch.Tensor, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(t.shape, generator=gen).to(device=t.device, dtype=t.dtype)


def time_backend(backend: str, inputs: dict, repeats: int, seed: int,
                 warmup_length: int | None = None) -> tuple[float, float]:
    """(forward seconds, forward+backward seconds) of ``ops.selective_scan_fn`` with ``backend``; the warm-up run
    uses the first ``warmup_length`` positions when that is shorter than L."""

    def make_steps(tensors):
        leaves = {name: t.detach().requires_grad_() for name, t in tensors.items()}
        grad_out = _grad_like(tensors["u"], seed + 1)

        def scan(xs):
            return ops.selective_scan_fn(*(xs[name] for name in INPUT_NAMES), delta_softplus=True, backend=backend)

        def forward():
            with torch.no_grad():
                scan(tensors)

        def forward_backward():
            torch.autograd.grad(scan(leaves), list(leaves.values()), grad_out)

        return forward, forward_backward

    length = inputs["u"].shape[-1]
    warm = _prefix(inputs, warmup_length) if warmup_length and warmup_length < length else None
    return _timed_pair(make_steps, inputs, inputs["u"].device, repeats, warm)


def time_attention(shape, dtype: torch.dtype, device: torch.device, repeats: int, seed: int) -> dict:
    """Causal ``scaled_dot_product_attention`` on the flash backend at the width of ``shape`` = (batch, d_inner,
    N, L): q, k, v (batch, d_inner // head_dim, L, head_dim) in ``dtype``, head_dim = min(HEAD_DIM, d_inner).
    Returns its row; a refusal of the flash backend is recorded as ``error``."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    batch, d_inner, _, length = shape
    head_dim = min(HEAD_DIM, d_inner)
    heads = d_inner // head_dim
    gen = torch.Generator().manual_seed(seed + 2)
    qkv = [(torch.randn(batch, heads, length, head_dim, generator=gen) * head_dim ** -0.25).to(device=device,
                                                                                                dtype=dtype)
           for _ in range(3)]
    row = {"shape": [batch, heads, length, head_dim], "dtype": str(dtype).removeprefix("torch."),
           "device": device.type, "backend": "sdpa-flash", "causal": True, "scan_shape": list(shape)}

    def make_steps(tensors):
        leaves = [t.detach().requires_grad_() for t in tensors]
        grad_out = _grad_like(tensors[0], seed + 3)

        def attend(xs):
            with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                return F.scaled_dot_product_attention(*xs, is_causal=True)

        def forward():
            with torch.no_grad():
                attend(tensors)

        def forward_backward():
            torch.autograd.grad(attend(leaves), leaves, grad_out)

        return forward, forward_backward

    try:
        fwd, fwd_bwd = _timed_pair(make_steps, qkv, device, repeats)
    except RuntimeError as err:
        return row | {"error": failure(err)}
    return row | {"fwd_ms": round(fwd * 1e3, 3), "fwd_bwd_ms": round(fwd_bwd * 1e3, 3)}


def available_backends(requested: str | None, interpret: bool = False) -> list[str]:
    cuda = torch.cuda.is_available()
    if requested is None:
        return ["reference", "cpu"] + (["triton"] if cuda else [])
    names = [name.strip() for name in requested.split(",") if name.strip()]
    unknown = [name for name in names if name not in ops.BACKENDS]
    if unknown or not names:
        raise ValueError(f"--backends must be a comma-separated subset of {', '.join(ops.BACKENDS)}; got {requested!r}")
    if "triton" in names and not cuda:
        if not interpret:
            raise ValueError("--backends names triton but torch sees no CUDA device")
        if not ops.triton_interpreter_on():
            raise ValueError("--interpret needs TRITON_INTERPRET=1 in the environment before the start")
    return names


def _device_of(backend: str) -> torch.device:
    return torch.device("cuda" if backend == "triton" and torch.cuda.is_available() else "cpu")


def _plan(backends: list[str]) -> list[tuple[torch.device, list[str]]]:
    """[(device, backends to time there)]: the reference first on each device, as the baseline of the others."""
    others = [b for b in backends if b != "reference"]
    devices = list(dict.fromkeys(_device_of(b) for b in others)) or [torch.device("cpu")]
    baseline = ["reference"] if "reference" in backends else []
    return [(device, baseline + [b for b in others if _device_of(b) == device]) for device in devices]


def _work(shape, part: str) -> int:
    """How the cost of ``part`` (a backend, or "attention") grows with ``shape``: state updates; L for the
    reference (one Python step per position, each bound by its launches); batch · width · L² for causal
    attention."""
    batch, d_inner, n_state, length = shape
    if part == "reference":
        return length
    return batch * d_inner * length * (length if part == "attention" else n_state)


def record_cost(costs: dict, part: str, seconds: float, shape) -> None:
    """Keep the largest shape's cost of each part: fixed overheads weigh least there."""
    work = _work(shape, part)
    if part not in costs or work >= costs[part][1]:
        costs[part] = seconds, work


def bench_shape(shape, dtype_name: str, backends: list[str], repeats: int, seed: int, *,
                reference_repeats: int | None = None, reference_max_length: int | None = None,
                attention: bool = False, rates: dict | None = None, costs: dict | None = None):
    """Rows for ``shape`` = (batch, d_inner, N, L): one per (device, backend), and one per device of attention
    when ``attention``. ``rates``: device type → :func:`floors.measure` (adds the floor fields). ``costs``:
    part → (seconds, work) at its largest shape so far, updated here (for :func:`estimate_seconds`)."""
    batch, d_inner, n_state, length = shape
    dtype = DTYPES[dtype_name]
    updates = batch * d_inner * length * n_state
    work = floors.scan_work(shape, torch.empty((), dtype=dtype).element_size())
    costs = {} if costs is None else costs
    with_reference = reference_max_length is None or length <= reference_max_length
    rows, attention_rows = [], []
    for device, names in _plan(backends):
        inputs = make_inputs(shape, dtype, device, seed)
        flash = None
        if attention:
            started = time.perf_counter()
            flash = time_attention(shape, dtype, device, repeats, seed)
            record_cost(costs, "attention", time.perf_counter() - started, shape)
            attention_rows.append(flash)
            if "error" in flash:
                flash = None
        baseline = None
        for backend in names:
            if backend == "reference" and not with_reference:
                continue
            reference = backend == "reference"
            started = time.perf_counter()
            runs = (reference_repeats or repeats) if reference else repeats
            row = {"shape": list(shape), "dtype": str(dtype).removeprefix("torch."), "device": device.type,
                   "backend": backend}
            try:
                fwd, fwd_bwd = time_backend(backend, inputs, runs, seed, REFERENCE_WARMUP_STEPS if reference else None)
            except Exception as err:  # one backend failing at one shape (compilation, memory) is a finding
                rows.append(row | {"error": failure(err)})
                continue
            record_cost(costs, backend, time.perf_counter() - started, shape)
            if reference:
                baseline = (fwd, fwd_bwd)
            row |= {
                "fwd_ms": round(fwd * 1e3, 3), "fwd_bwd_ms": round(fwd_bwd * 1e3, 3),
                "speedup_fwd": round(baseline[0] / fwd, 2) if baseline else None,
                "speedup_fwd_bwd": round(baseline[1] / fwd_bwd, 2) if baseline else None,
                "state_updates_per_s_fwd": round(updates / fwd),
                "state_updates_per_s_fwd_bwd": round(updates / fwd_bwd),
            }
            if flash is not None and not reference:
                row |= {"flash_over_scan_fwd": round(flash["fwd_ms"] / row["fwd_ms"], 3),
                        "flash_over_scan_fwd_bwd": round(flash["fwd_bwd_ms"] / row["fwd_bwd_ms"], 3)}
            if rates is not None:
                row |= floors.floor_fields(work, rates[device.type], row["fwd_ms"], row["fwd_bwd_ms"])
            rows.append(row)
    return rows, attention_rows


def estimate_seconds(shape, parts: list[str], costs: dict) -> float:
    """Seconds ``shape`` should take for ``parts``, scaled from each part's largest measured shape (0 for a part
    not measured yet)."""
    return sum(seconds * _work(shape, part) / work for part, (seconds, work) in costs.items() if part in parts)


def _headline(rows: list[dict]) -> dict | None:
    """Whether the CPU backend reaches its target speed-up at the headline shape (None when not measured)."""
    for row in rows:
        if (row["shape"], row["dtype"], row["backend"]) == (HEADLINE["shape"], HEADLINE["dtype"], HEADLINE["backend"]):
            if row.get("speedup_fwd_bwd") is not None:
                return {"speedup_fwd_bwd": row["speedup_fwd_bwd"],
                        "meets_target": row["speedup_fwd_bwd"] >= HEADLINE["min_speedup_fwd_bwd"]}
    return None


def print_table(rows: list[dict], console: Console) -> None:
    short = {str(t).removeprefix("torch."): name for name, t in DTYPES.items()}
    extra = [(key, label) for key, label in (("flash_over_scan_fwd_bwd", "flash/scan f+b"),
                                             ("x_floor_fwd", "×floor fwd"), ("x_floor_fwd_bwd", "×floor f+b"))
             if any(key in row for row in rows)]
    table = Table(title="selective scan with z, D, delta_bias + softplus: median ms, speed-up over the reference, "
                        "M state updates/s")
    for column in ("B×D×N×L", "dtype", "backend", "fwd ms", "f+b ms", "×ref fwd", "×ref f+b", "Mupd/s fwd",
                   "Mupd/s f+b", *(label for _, label in extra)):
        table.add_column(column, justify="left" if column in ("dtype", "backend") else "right", no_wrap=True)
    for row in (r for r in rows if "error" not in r):
        ratio = [f"{row[k]:.1f}" if row[k] is not None else "-" for k in ("speedup_fwd", "speedup_fwd_bwd")]
        table.add_row("×".join(map(str, row["shape"])), short[row["dtype"]], f"{row['backend']} ({row['device']})",
                      f"{row['fwd_ms']:.1f}", f"{row['fwd_bwd_ms']:.1f}", *ratio,
                      f"{row['state_updates_per_s_fwd'] / 1e6:.0f}", f"{row['state_updates_per_s_fwd_bwd'] / 1e6:.0f}",
                      *(f"{row[key]:.2f}" if key in row else "-" for key, _ in extra))
    console.print(table)


def _check_counts(args) -> int:
    repeats = 1 if args.quick else args.repeats
    for name, value in (("--repeats", repeats), ("--reference-repeats", args.reference_repeats),
                        ("--reference-max-length", args.reference_max_length)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be >= 1; got {value}")
    return repeats


def run(args) -> int:
    shapes = parse_shapes(QUICK_SHAPES if args.quick else args.shapes)
    repeats = _check_counts(args)
    backends = available_backends(args.backends, args.interpret)
    if args.threads is not None:
        if not 1 <= args.threads <= ops.max_cpu_threads():
            raise ValueError(f"--threads must be between 1 and {ops.max_cpu_threads()}; got {args.threads}")
        ops.set_cpu_threads(args.threads)
    allowance = budget.TimeBudget(args.time_budget)
    console = Console()
    if not console.is_terminal:  # logs and pipes: room for the whole table instead of rich's 80 columns
        console = Console(width=150)
    run_start = start()
    devices = [device for device, _ in _plan(backends)]
    rates = {device.type: floors.measure(device) for device in devices} if args.floors else None
    rows, attention_rows, skipped, costs = [], [], [], {}
    for shape, dtype_name in shapes:
        parts = backends + (["attention"] if args.attention else [])
        if args.reference_max_length is not None and shape[3] > args.reference_max_length:
            parts = [part for part in parts if part != "reference"]
        label = f"{'×'.join(map(str, shape))} {dtype_name}"
        if not allowance.allows(estimate_seconds(shape, parts, costs)):
            skipped.append({"shape": list(shape), "dtype": dtype_name, "reason": budget.NOT_RUN})
            console.print(f"scan {label}: {budget.NOT_RUN}")
            continue
        console.print(f"scan {label}: {', '.join(parts)}")
        shape_rows, shape_attention = bench_shape(
            shape, dtype_name, backends, repeats, args.seed, reference_repeats=args.reference_repeats,
            reference_max_length=args.reference_max_length, attention=args.attention, rates=rates, costs=costs)
        rows += shape_rows
        attention_rows += shape_attention
    print_table(rows, console)
    for row in (r for r in rows if "error" in r):
        console.print(f"scan {'×'.join(map(str, row['shape']))} {row['backend']} ({row['device']}): {row['error']}")
    for row in attention_rows:
        figures = row.get("error") or f"fwd {row['fwd_ms']:.2f} ms, fwd+bwd {row['fwd_bwd_ms']:.2f} ms"
        console.print(f"causal flash attention {'×'.join(map(str, row['shape']))} (B×heads×L×head_dim) "
                      f"{row['dtype']} on {row['device']}: {figures}")
    for device, rate in (rates or {}).items():
        console.print(f"floors on {device}: copy {rate['copy_bytes_per_s'] / 1e9:.1f} GB/s, "
                      f"exp2 {rate['exp2_per_s'] / 1e9:.2f} G/s ({rate['exp2_method']})")
    cuda_name = torch.cuda.get_device_name() if any(d.type == "cuda" for d in devices) else None
    now = datetime.now(timezone.utc)
    report = {
        "parameters": {"devices": [device.type for device in devices], "repeats": repeats, "warmup_runs": 1,
                       "statistic": "median", "seed": args.seed,
                       "inputs": "z, D, delta_bias + softplus, ungrouped B/C, A = -(1..N)",
                       "reference_repeats": args.reference_repeats or repeats,
                       "reference_max_length": args.reference_max_length,
                       "reference_warmup_steps": REFERENCE_WARMUP_STEPS,
                       "attention": {"backend": "flash", "causal": True, "head_dim": HEAD_DIM} if args.attention
                       else None,
                       "interpreted": args.interpret and "triton" in backends and not torch.cuda.is_available(),
                       "time_budget_s": args.time_budget},
        "headline": dict(HEADLINE, result=_headline(rows)),
        "floors": rates,
        "results": rows,
        "attention": attention_rows,
        "skipped_shapes": skipped,
    }
    device_slug = re.sub(r"[^a-z0-9]+", "-", cuda_name.lower()).strip("-") if cuda_name else "cpu"
    out = args.out or Path("benchmarks/results") / f"scan-{device_slug}-{now:%Y%m%d}.json"
    write_result(out.parent, "scan", report, path=out, started=run_start)
    return 0


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="python -m mamba_bio_audio.pipelines.bench.scan", description=__doc__)
    add_arguments(_parser)
    raise SystemExit(run(_parser.parse_args()))
