"""``python benchmarks/scan_tune.py``: a sweep of the Triton scan's launch knobs, forward and backward timed
separately, and the best point of each beside the default launch configuration, measured in the same run. A
developer's tool for the kernels (``benchmarks/gpu_check.sh`` runs it), not part of the installed package.

Knobs: BLOCK_L (steps per tile along L), BLOCK_D (channels per program), the lanes on the states, NL (both
directions; 0: each layout's own choice) and the segments L is split into (both directions; 0: the backend's
choice, ``scan_segments``; 1: no split), given to ``ops.selective_scan_tuned`` (the op on the triton backend with
its launch configuration) as its keyword-only ``block_l``, ``block_d``, ``forward_lanes``, ``backward_lanes`` and
``segments``. Forward and backward are timed apart, so one NL value measures each direction's layout at that NL,
and ``--segments 0,1`` at short L says where the split stops paying in each direction (``gpu_check``'s ``split``
stage). Points
whose (BLOCK_D, next_pow2(N), BLOCK_L) tile exceeds ``--max-tile`` fp32 elements are left out (the kernels hold
several such tiles in registers). ``num_warps`` is not a knob of the op, so it is not swept; the JSON says so.
BLOCK_L is ``block_l`` in each row of the JSON and in ``parameters`` (results written before the rename say
``chunk`` and ``chunks``); ``benchmarks/gpu_check.py`` reads them.

Each point: the forward with grad-requiring inputs (the training forward, chunk states saved), then the backward,
``torch.autograd.grad`` of one such forward for a fixed output gradient. The default is the same without knobs.
Inputs as in ``bench scan`` (``scan.make_inputs``). Each figure is the median of ``--repeats`` runs after one
warm-up run.

``--compile-workers K``: before timing, K child processes run every point once at the first shape, so the
kernels are compiled into Triton's on-disk cache in parallel (on a GPU, compilation dominates a sweep); the timed
process then loads them from the cache.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import torch

from mamba_bio_audio import ops
from mamba_bio_audio.pipelines.bench import budget
from mamba_bio_audio.pipelines.bench.int_lists import int_list
from mamba_bio_audio.pipelines.bench.scan import DTYPES, INPUT_NAMES, make_inputs, parse_shapes
from mamba_bio_audio.pipelines.bench.timing import failure, median_seconds
from mamba_bio_audio.pipelines.reporting.bench_results import result_path, start, write_result

DEFAULT_SHAPES = "1x1024x16x65536:bf16,8x2048x16x2048:bf16"
NUM_WARPS_NOTE = "not swept: ops.selective_scan_tuned takes no num_warps knob"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shapes", default=DEFAULT_SHAPES,
                        help="comma-separated BATCHxD_INNERxNxL[:bf16|:fp16] (default: %(default)s)")
    parser.add_argument("--block-l", dest="block_l", default="16,32,64",
                        help="BLOCK_L values (steps per tile along L), powers of two (default: %(default)s)")
    parser.add_argument("--block-d", default="1,2,4,8,16", help="BLOCK_D values, powers of two (default: %(default)s)")
    parser.add_argument("--lanes", default="0",
                        help="NL values (lanes on the states, both directions): powers of two up to min(32, "
                             "next_pow2(N)), 0 for each layout's own choice (default: %(default)s)")
    parser.add_argument("--segments", default="0",
                        help="segments of L, both directions: positive counts, 0 for the backend's choice "
                             "(default: %(default)s)")
    parser.add_argument("--max-tile", type=int, default=8192,
                        help="largest BLOCK_D * next_pow2(N) * BLOCK_L swept (default: %(default)s)")
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


def _powers_of_two(text: str, option: str, zero: bool = False) -> list[int]:
    """Comma-separated powers of two (and 0 where ``zero``: each layout's own choice)."""
    return int_list(text, option, lambda v: (v == 0 and zero) or (v > 0 and not v & (v - 1)),
                    "powers of two" + (" or 0" if zero else ""))


def _counts(text: str, option: str) -> list[int]:
    """Comma-separated non-negative integers (0: the backend's choice)."""
    return int_list(text, option, lambda v: v >= 0, "non-negative integers")


def grid(block_ls: list[int], block_ds: list[int], n_state: int, max_tile: int,
         lanes: tuple[int, ...] = (0,), segments: tuple[int, ...] = (0,)) -> list[tuple[int, int, int, int]]:
    """(BLOCK_L, BLOCK_D, NL, segments) points whose (BLOCK_D, next_pow2(N), BLOCK_L) tile has at most
    ``max_tile`` elements; NL 0: each layout's own; segments 0: the backend's choice."""
    block_n = 1 << max(n_state - 1, 0).bit_length()
    return [(block_l, block_d, nl, seg) for block_l in block_ls for block_d in block_ds for nl in lanes
            for seg in segments if block_d * block_n * block_l <= max_tile]


def _device(interpret: bool) -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda")
    ops.resolve_backend(torch.device("cpu"), "triton")  # refuses unless TRITON_INTERPRET=1
    if not interpret:
        raise ValueError("bench scan-tune needs a CUDA device (or --interpret under TRITON_INTERPRET=1)")
    return torch.device("cpu")


class Problem:
    """One shape's inputs (grad-requiring leaves) and a fixed output gradient."""

    def __init__(self, shape, dtype_name: str, device: torch.device, seed: int):
        self.device = device
        inputs = make_inputs(shape, DTYPES[dtype_name], device, seed)
        self.leaves = [inputs[name].detach().requires_grad_() for name in INPUT_NAMES]
        gen = torch.Generator().manual_seed(seed + 1)
        self.grad_out = torch.randn(inputs["u"].shape, generator=gen).to(device=device, dtype=inputs["u"].dtype)

    def forward(self, block_l: int | None, block_d: int | None, lanes: int = 0, segments: int = 0) -> torch.Tensor:
        """The training forward through ``ops`` (None, lanes or segments 0: the backend's own choice of the knob)."""
        return ops.selective_scan_tuned(*self.leaves, delta_softplus=True, block_l=block_l, block_d=block_d,
                                        segments=segments or None, forward_lanes=lanes or None,
                                        backward_lanes=lanes or None)

    def backward(self, out: torch.Tensor):
        return torch.autograd.grad(out, self.leaves, self.grad_out, retain_graph=True)

    def time(self, block_l: int | None, block_d: int | None, repeats: int, lanes: int = 0,
             segments: int = 0) -> tuple[float, float]:
        """(forward s, backward s) at one point."""
        fwd = median_seconds(lambda: self.forward(block_l, block_d, lanes, segments), self.device, repeats)
        out = self.forward(block_l, block_d, lanes, segments)
        return fwd, median_seconds(lambda: self.backward(out), self.device, repeats)


def _worker(args, points: list[tuple[int, int, int, int]]) -> int:
    index, count = (int(v) for v in args.worker.split("/"))
    (shape, dtype_name), *_ = parse_shapes(args.shapes)
    problem = Problem(shape, dtype_name, _device(args.interpret), args.seed)
    for block_l, block_d, lanes, segments in points[index::count]:
        problem.backward(problem.forward(block_l, block_d, lanes, segments))
    return 0


def _compile_in_workers(args, count: int, allowance: budget.TimeBudget) -> dict:
    """Run ``count`` worker processes over the points; what happened, for the JSON."""
    base = [sys.executable, str(Path(__file__).resolve()), "--shapes", args.shapes, "--block-l", args.block_l,
            "--block-d", args.block_d, "--lanes", args.lanes, "--segments", args.segments,
            "--max-tile", str(args.max_tile),
            "--seed", str(args.seed)]
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


def _point_row(shape, dtype_name, direction, point, seconds=None, error=None, default_s=None) -> dict:
    block_l, block_d, lanes, segments = point
    row = {"shape": list(shape), "dtype": dtype_name, "direction": direction, "block_l": block_l, "block_d": block_d,
           "lanes": lanes, "segments": segments}
    if error is not None:
        return row | {"error": error}
    return row | {"ms": round(seconds * 1e3, 4), "speedup_over_default": round(default_s / seconds, 3)}


def sweep_shape(shape, dtype_name: str, points, repeats: int, seed: int, device: torch.device,
                allowance: budget.TimeBudget) -> tuple[dict, list[dict]]:
    """(the default's figures, a fwd and a bwd row per point) for ``shape``."""
    problem = Problem(shape, dtype_name, device, seed)
    default_fwd, default_bwd = problem.time(None, None, repeats)
    default = {"shape": list(shape), "dtype": dtype_name, "fwd_ms": round(default_fwd * 1e3, 4),
               "bwd_ms": round(default_bwd * 1e3, 4)}
    rows, last_cost = [], 0.0
    for point in points:
        if not allowance.allows(last_cost):
            rows += [_point_row(shape, dtype_name, d, point, error=budget.NOT_RUN) for d in ("fwd", "bwd")]
            continue
        started = time.perf_counter()
        try:
            fwd, bwd = problem.time(*point[:2], repeats, lanes=point[2], segments=point[3])
            rows += [_point_row(shape, dtype_name, "fwd", point, fwd, default_s=default_fwd),
                     _point_row(shape, dtype_name, "bwd", point, bwd, default_s=default_bwd)]
        except Exception as err:  # a point that does not compile or launch is a finding, not the end
            rows += [_point_row(shape, dtype_name, d, point, error=failure(err)) for d in ("fwd", "bwd")]
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
    block_ls = _powers_of_two(args.block_l, "--block-l")
    block_ds = _powers_of_two(args.block_d, "--block-d")
    if args.repeats < 1 or args.compile_workers < 0:
        raise ValueError("--repeats must be >= 1 and --compile-workers >= 0")
    if any(shape[2] != shapes[0][0][2] for shape, _ in shapes):
        raise ValueError("--shapes must share one N (the grid's tile size depends on it)")
    lanes = _powers_of_two(args.lanes, "--lanes", zero=True)
    segments = _counts(args.segments, "--segments")
    points = grid(block_ls, block_ds, shapes[0][0][2], args.max_tile, tuple(lanes), tuple(segments))
    if not points:
        raise ValueError(f"no (BLOCK_L, BLOCK_D) point has a tile within --max-tile {args.max_tile}")
    if args.worker is not None:
        return _worker(args, points)
    device = _device(args.interpret)
    allowance = budget.TimeBudget(args.time_budget)
    run_start = start()
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
        print(f"best {row['direction']} {'×'.join(map(str, row['shape']))} {row['dtype']}: BLOCK_L {row['block_l']}, "
              f"BLOCK_D {row['block_d']}, NL {row['lanes'] or 'default'}, segments {row['segments'] or 'default'}: "
              f"{row['ms']:.3f} ms "
              f"({row['speedup_over_default']:.2f}x the default)")
    for row in rows:
        if "error" in row and row["error"] != budget.NOT_RUN:
            print(f"{row['direction']} BLOCK_L {row['block_l']} BLOCK_D {row['block_d']} NL {row['lanes']} "
                  f"segments {row['segments']}: {row['error']}")
    report = {
        "parameters": {"device": device.type, "block_l": block_ls, "block_d": block_ds,
                       "lanes": lanes, "segments": segments, "max_tile": args.max_tile,
                       "repeats": args.repeats, "warmup_runs": 1, "statistic": "median", "seed": args.seed,
                       "num_warps": NUM_WARPS_NOTE, "interpreted": device.type == "cpu",
                       "time_budget_s": args.time_budget, "compile_workers": compiled},
        "defaults": defaults,
        "best": best,
        "results": rows,
    }
    out = args.out or result_path(Path("benchmarks/results"), "scan_tune")
    write_result(out.parent, "scan_tune", report, path=out, started=run_start)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/scan_tune.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    try:
        return run(parser.parse_args(argv))
    except ValueError as err:
        print(f"scan_tune: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
