"""``mamba-bio-audio bench scan-tune``: a sweep of the Triton scan's launch knobs, forward and backward timed
separately, and the best point of each beside the default launch configuration, measured in the same run.

Knobs: CHUNK (steps per chunk; the backward must use the forward's, since the forward saves one state per chunk)
and BLOCK_D (channels per program; the backward may use its own). Points whose (BLOCK_D, next_pow2(N), CHUNK)
tile exceeds ``--max-tile`` fp32 elements are left out (the kernels hold several such tiles in registers).
``num_warps`` is not an argument of the kernels' custom ops, so it is not swept; the JSON says so.

The kernels are called through their registered custom ops, ``torch.ops.mamba_bio_audio.selective_scan_fwd`` and
``selective_scan_bwd`` (schemas in ``docs/triton_kernels.md``), which ``ops.kernel`` loads. The forward timed is
the training forward (chunk states saved); the backward is timed on the states of one forward and a fixed output
gradient. The default is ``ops.selective_scan_fn`` on the triton backend with grad-requiring inputs (its
autograd path, so its forward saves the states too); its backward is ``torch.autograd.grad`` of that forward.
Inputs as in ``bench scan`` (:func:`.scan.make_inputs`). Each figure is the median of ``--repeats`` runs after
one warm-up run.

``--compile-workers K``: before timing, K child processes run every point once at the first shape, so the
kernels are compiled into Triton's on-disk cache in parallel (on a GPU, compilation dominates a sweep); the timed
process then loads them from the cache.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from mamba_bio_audio import ops
from mamba_bio_audio.atomic import write_text_atomic
from mamba_bio_audio.pipelines.bench import budget
from mamba_bio_audio.pipelines.bench.scan import DTYPES, INPUT_NAMES, make_inputs, parse_shapes
from mamba_bio_audio.pipelines.bench.timing import failure, median_seconds
from mamba_bio_audio.pipelines.reporting.bench_results import host_info, load_average

MODULE = "mamba_bio_audio.pipelines.bench.scan_tune"
DEFAULT_SHAPES = "1x1024x16x65536:bf16,8x2048x16x2048:bf16"
NUM_WARPS_NOTE = "not swept: the scan's custom ops take no num_warps argument"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shapes", default=DEFAULT_SHAPES,
                        help="comma-separated BATCHxD_INNERxNxL[:bf16|:fp16] (default: %(default)s)")
    parser.add_argument("--chunks", default="32,64,128", help="CHUNK values, powers of two (default: %(default)s)")
    parser.add_argument("--block-d", default="1,2,4,8,16", help="BLOCK_D values, powers of two (default: %(default)s)")
    parser.add_argument("--max-tile", type=int, default=8192,
                        help="largest BLOCK_D * next_pow2(N) * CHUNK swept (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per point (default: %(default)s)")
    parser.add_argument("--compile-workers", type=int, default=0,
                        help="child processes that compile every point before timing (default: %(default)s: none)")
    parser.add_argument("--interpret", action="store_true",
                        help="CPU tensors under Triton's interpreter (TRITON_INTERPRET=1 set before the start): a "
                             "smoke test")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # "I/K": compile points I, I+K, ...
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON path (default: benchmarks/results/scan_tune_<UTC stamp>.json)")
    budget.add_argument(parser)


def _powers_of_two(text: str, option: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or any(v < 1 or v & (v - 1) for v in values):
        raise ValueError(f"{option} must be comma-separated powers of two; got {text!r}")
    return values


def grid(chunks: list[int], block_ds: list[int], n_state: int, max_tile: int) -> list[tuple[int, int]]:
    """(CHUNK, BLOCK_D) points whose (BLOCK_D, next_pow2(N), CHUNK) tile has at most ``max_tile`` elements."""
    block_n = 1 << max(n_state - 1, 0).bit_length()
    return [(chunk, block_d) for chunk in chunks for block_d in block_ds if block_d * block_n * chunk <= max_tile]


def _device(interpret: bool) -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda")
    ops.resolve_backend(torch.device("cpu"), "triton")  # refuses unless TRITON_INTERPRET=1
    if not interpret:
        raise ValueError("bench scan-tune needs a CUDA device (or --interpret under TRITON_INTERPRET=1)")
    return torch.device("cpu")


class Problem:
    """One shape's inputs, in the layout the custom ops take (B, C as (batch, 1, N, L)), and a fixed output
    gradient."""

    def __init__(self, shape, dtype_name: str, device: torch.device, seed: int):
        ops.kernel("selective_scan_fn", "triton")  # imports the triton backend, which registers the custom ops
        self.fwd_op = torch.ops.mamba_bio_audio.selective_scan_fwd
        self.bwd_op = torch.ops.mamba_bio_audio.selective_scan_bwd
        self.device = device
        self.inputs = make_inputs(shape, DTYPES[dtype_name], device, seed)
        gen = torch.Generator().manual_seed(seed + 1)
        self.grad_out = torch.randn(self.inputs["u"].shape, generator=gen).to(device=device,
                                                                               dtype=self.inputs["u"].dtype)
        x = self.inputs
        self.tensors = (x["u"], x["delta"], x["A"], x["B"].unsqueeze(1), x["C"].unsqueeze(1), x["D"], x["z"],
                        x["delta_bias"])

    def forward(self, chunk: int, block_d: int):
        """The training forward: (out, last_state, chunk states)."""
        return self.fwd_op(*self.tensors, None, True, chunk, block_d, True, False)

    def backward(self, states, chunk: int, block_d: int):
        return self.bwd_op(*self.tensors, states, self.grad_out, None, True, chunk, block_d, False)

    def time_forward(self, chunk: int, block_d: int, repeats: int) -> float:
        return median_seconds(lambda: self.forward(chunk, block_d), self.device, repeats)

    def time_backward(self, states, chunk: int, block_d: int, repeats: int) -> float:
        return median_seconds(lambda: self.backward(states, chunk, block_d), self.device, repeats)

    def time_default(self, repeats: int) -> tuple[float, float]:
        """(forward s, backward s) of ``ops.selective_scan_fn`` on the triton backend, through autograd."""
        leaves = {name: t.detach().requires_grad_() for name, t in self.inputs.items()}

        def forward():
            return ops.selective_scan_fn(*(leaves[name] for name in INPUT_NAMES), delta_softplus=True,
                                         backend="triton")

        fwd = median_seconds(forward, self.device, repeats)
        out = forward()
        bwd = median_seconds(lambda: torch.autograd.grad(out, list(leaves.values()), self.grad_out,
                                                         retain_graph=True), self.device, repeats)
        return fwd, bwd


def _worker(args, points: list[tuple[int, int]]) -> int:
    index, count = (int(v) for v in args.worker.split("/"))
    (shape, dtype_name), *_ = parse_shapes(args.shapes)
    problem = Problem(shape, dtype_name, _device(args.interpret), args.seed)
    for chunk, block_d in points[index::count]:
        _, _, states = problem.forward(chunk, block_d)
        problem.backward(states, chunk, block_d)
    return 0


def _compile_in_workers(args, count: int, allowance: budget.TimeBudget) -> dict:
    """Run ``count`` worker processes over the points; what happened, for the JSON."""
    base = [sys.executable, "-m", MODULE, "--shapes", args.shapes, "--chunks", args.chunks, "--block-d",
            args.block_d, "--max-tile", str(args.max_tile), "--seed", str(args.seed)]
    base += ["--interpret"] if args.interpret else []
    started = time.perf_counter()
    timeout = None if allowance.deadline is None else max(allowance.left(), 1.0)
    workers = [subprocess.Popen(base + ["--worker", f"{i}/{count}"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True) for i in range(count)]
    failed = []
    for i, worker in enumerate(workers):
        try:
            _, err = worker.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.communicate()
            failed.append({"worker": i, "error": "timeout"})
            continue
        if worker.returncode != 0:
            failed.append({"worker": i, "error": (err.strip().splitlines() or [f"exit {worker.returncode}"])[-1][:300]})
    return {"count": count, "wall_s": round(time.perf_counter() - started, 2), "failed": failed}


def _point_row(shape, dtype_name, direction, chunk, block_d, seconds=None, error=None, default_s=None) -> dict:
    row = {"shape": list(shape), "dtype": dtype_name, "direction": direction, "chunk": chunk, "block_d": block_d}
    if error is not None:
        return row | {"error": error}
    return row | {"ms": round(seconds * 1e3, 4), "speedup_over_default": round(default_s / seconds, 3)}


def sweep_shape(shape, dtype_name: str, points, repeats: int, seed: int, device: torch.device,
                allowance: budget.TimeBudget) -> tuple[dict, list[dict]]:
    """(the default's figures, one row per (direction, point)) for ``shape``."""
    problem = Problem(shape, dtype_name, device, seed)
    default_fwd, default_bwd = problem.time_default(repeats)
    default = {"shape": list(shape), "dtype": dtype_name, "fwd_ms": round(default_fwd * 1e3, 4),
               "bwd_ms": round(default_bwd * 1e3, 4)}
    rows, last_cost = [], 0.0
    for chunk in sorted({c for c, _ in points}):
        states = None
        for block_d in [b for c, b in points if c == chunk]:
            for direction in ("fwd", "bwd"):
                if not allowance.allows(last_cost):
                    rows.append(_point_row(shape, dtype_name, direction, chunk, block_d, error=budget.NOT_RUN))
                    continue
                started = time.perf_counter()
                try:
                    if direction == "fwd":
                        seconds = problem.time_forward(chunk, block_d, repeats)
                        states = states if states is not None else problem.forward(chunk, block_d)[2]
                    elif states is None:
                        raise RuntimeError("no forward at this CHUNK produced states")
                    else:
                        seconds = problem.time_backward(states, chunk, block_d, repeats)
                    rows.append(_point_row(shape, dtype_name, direction, chunk, block_d, seconds,
                                           default_s=default_fwd if direction == "fwd" else default_bwd))
                except Exception as err:  # a point that does not compile or launch is a finding, not the end
                    rows.append(_point_row(shape, dtype_name, direction, chunk, block_d, error=failure(err)))
                last_cost = time.perf_counter() - started
    return default, rows


def best_points(rows: list[dict]) -> list[dict]:
    """The fastest point per (shape, direction)."""
    best = {}
    for row in rows:
        key = (tuple(row["shape"]), row["dtype"], row["direction"])
        if "ms" in row and (key not in best or row["ms"] < best[key]["ms"]):
            best[key] = row
    return list(best.values())


def run(args) -> int:
    shapes = parse_shapes(args.shapes)
    chunks = _powers_of_two(args.chunks, "--chunks")
    block_ds = _powers_of_two(args.block_d, "--block-d")
    if args.repeats < 1 or args.compile_workers < 0:
        raise ValueError("--repeats must be >= 1 and --compile-workers >= 0")
    if any(shape[2] != shapes[0][0][2] for shape, _ in shapes):
        raise ValueError("--shapes must share one N (the grid's tile size depends on it)")
    points = grid(chunks, block_ds, shapes[0][0][2], args.max_tile)
    if not points:
        raise ValueError(f"no (CHUNK, BLOCK_D) point has a tile within --max-tile {args.max_tile}")
    if args.worker is not None:
        return _worker(args, points)
    device = _device(args.interpret)
    allowance = budget.TimeBudget(args.time_budget)
    load_before = load_average()
    compiled = _compile_in_workers(args, args.compile_workers, allowance) if args.compile_workers else None
    defaults, rows = [], []
    for shape, dtype_name in shapes:
        default, shape_rows = sweep_shape(shape, dtype_name, points, args.repeats, args.seed, device, allowance)
        defaults.append(default)
        rows += shape_rows
    best = best_points(rows)
    for default in defaults:
        print(f"default {'×'.join(map(str, default['shape']))} {default['dtype']}: fwd {default['fwd_ms']:.3f} ms, "
              f"bwd {default['bwd_ms']:.3f} ms")
    for row in best:
        print(f"best {row['direction']} {'×'.join(map(str, row['shape']))} {row['dtype']}: CHUNK {row['chunk']}, "
              f"BLOCK_D {row['block_d']}: {row['ms']:.3f} ms ({row['speedup_over_default']:.2f}x the default)")
    for row in rows:
        if "error" in row and row["error"] != budget.NOT_RUN:
            print(f"{row['direction']} CHUNK {row['chunk']} BLOCK_D {row['block_d']}: {row['error']}")
    now = datetime.now(timezone.utc)
    report = {
        "benchmark": "scan_tune",
        "date": now.isoformat(timespec="seconds"),
        "machine": host_info() | {"cuda": torch.cuda.get_device_name() if device.type == "cuda" else None,
                                  "loadavg_before": load_before, "loadavg_after": load_average()},
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
        "parameters": {"chunks": chunks, "block_d": block_ds, "max_tile": args.max_tile, "repeats": args.repeats,
                       "warmup_runs": 1, "statistic": "median", "seed": args.seed, "num_warps": NUM_WARPS_NOTE,
                       "interpreted": device.type == "cpu", "time_budget_s": args.time_budget,
                       "compile_workers": compiled},
        "defaults": defaults,
        "best": best,
        "results": rows,
    }
    out = args.out or Path("benchmarks/results") / f"scan_tune_{now:%Y%m%dT%H%M%SZ}.json"
    write_text_atomic(out, json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__)
    add_arguments(_parser)
    raise SystemExit(run(_parser.parse_args()))
