"""``mamba-bio-audio bench memory``: peak training memory and tokens/s versus sequence length, for the DNA
Mamba models unchunked and chunked (``chunk_size``: state passing, each chunk recomputed in backward) against
their parameter-matched Transformer++, in one run.

Every point is a fresh process (:mod:`.train_step`): causal-LM training steps (forward, backward, AdamW) at
batch ``--batch`` on seeded random DNA. On CPU the memory is the peak resident set size above what the process
held before the steps (``above_baseline_mb``) and in all (``peak_mb``); on CUDA it is the peak of
``torch.cuda.max_memory_allocated``. Points that run out of memory or time are recorded as such.

Checks written to the JSON:

* ``chunked_scaling``: peak memory of chunked training at the longest length over the length 4x shorter, same
  chunk (target: at most 1.5x; in all and above the baseline);
* ``dna_7m_2^20`` (CUDA): the 7M model chunked at L = 2^20, batch 1, at most 40 GB (moonshot 24 GB).
"""
from __future__ import annotations

import argparse

from mamba_bio_audio.pipelines.bench import budget
from mamba_bio_audio.pipelines.reporting import sweep_report
from mamba_bio_audio.pipelines.reporting.bench_results import start
from mamba_bio_audio.pipelines.bench.train_step import measure

from mamba_bio_audio.models.factory import config_from_dict, load_preset

# device -> defaults: log2 lengths, model sizes, chunk, longest unchunked Mamba and Transformer++ (log2)
DEFAULTS = {
    "cpu": {"lengths": "10,12,14,16", "sizes": "1.4m", "chunk_size": 4096, "max_unchunked": 14,
            "max_transformer": 14},
    "cuda": {"lengths": "10,12,14,16,18,20", "sizes": "1.4m,7m", "chunk_size": 65536, "max_unchunked": 20,
             "max_transformer": 20},
}
VARIANTS = ("mamba", "mamba-chunked", "transformer")
TARGET_RATIO = 1.5
TARGET_7M_GB, MOONSHOT_7M_GB = 40.0, 24.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto: cuda when available (default: %(default)s)")
    parser.add_argument("--lengths", default=None,
                        help="comma-separated log2 sequence lengths (default: cpu 10,12,14,16; cuda 10,...,20)")
    parser.add_argument("--sizes", default=None, help="DNA preset sizes (dna_<size>, transformer_dna_<size>); "
                        "default: cpu 1.4m, cuda 1.4m,7m")
    parser.add_argument("--chunk-size", type=int, default=None, help="chunk of the chunked runs "
                        "(default: cpu 4096, cuda 65536)")
    parser.add_argument("--max-unchunked", type=int, default=None,
                        help="longest log2 length for unchunked Mamba (default: cpu 14, cuda 20)")
    parser.add_argument("--max-transformer", type=int, default=None,
                        help="longest log2 length for Transformer++ (default: cpu 14, cuda 20)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"subset of {', '.join(VARIANTS)}")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per point (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=0, help="untimed steps after priming (default: %(default)s)")
    sweep_report.add_run_arguments(parser, malloc_mmap_threshold=65536)
    budget.add_argument(parser)


def resolve_device(choice: str) -> str:
    import torch

    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available")
    return choice


def _csv(text: str, allowed=None) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items or (allowed is not None and any(item not in allowed for item in items)):
        raise ValueError(f"expected a comma-separated subset of {', '.join(allowed)}; got {text!r}"
                         if allowed else f"expected a comma-separated list; got {text!r}")
    return items


def _points(args, device: str) -> list[dict]:
    defaults = DEFAULTS[device]
    lengths = [int(v) for v in _csv(args.lengths or defaults["lengths"])]
    chunk = args.chunk_size or defaults["chunk_size"]
    max_unchunked = defaults["max_unchunked"] if args.max_unchunked is None else args.max_unchunked
    max_transformer = defaults["max_transformer"] if args.max_transformer is None else args.max_transformer
    points = []
    for size in _csv(args.sizes or defaults["sizes"]):
        mamba = load_preset(f"dna_{size}").to_dict()
        configs = {"mamba": mamba, "transformer": load_preset(f"transformer_dna_{size}").to_dict(),
                   "mamba-chunked": config_from_dict({**mamba, "chunk_size": chunk}).to_dict()}  # checks the chunk
        for variant in _csv(args.variants, VARIANTS):
            longest = {"mamba": max_unchunked, "transformer": max_transformer}.get(variant, max(lengths))
            for log2 in (n for n in lengths if n <= longest):
                points.append({"size": size, "variant": variant, "log2_len": log2, "config": configs[variant],
                               "arch": "transformer" if variant == "transformer" else "mamba"})
    return points


def _chunked_scaling(rows: list[dict], chunk: int) -> list[dict]:
    checks = []
    for size in sorted({r["size"] for r in rows}):
        done = {r["log2_len"]: r for r in rows
                if r["size"] == size and r["variant"] == "mamba-chunked" and "peak_mb" in r}
        if not done:
            continue
        longest = max(done)
        if longest - 2 not in done:
            continue
        short, long_ = done[longest - 2], done[longest]
        ratio = long_["peak_mb"] / short["peak_mb"]
        above = long_["above_baseline_mb"] / short["above_baseline_mb"]
        checks.append({"size": size, "chunk_size": chunk, "lengths": [2 ** (longest - 2), 2 ** longest],
                       "peak_mb": [short["peak_mb"], long_["peak_mb"]], "ratio": round(ratio, 3),
                       "above_baseline_mb": [short["above_baseline_mb"], long_["above_baseline_mb"]],
                       "ratio_above_baseline": round(above, 3), "target": TARGET_RATIO,
                       "meets_target": ratio <= TARGET_RATIO and above <= TARGET_RATIO})
    return checks


def _seven_m_check(rows: list[dict]) -> dict | None:
    row = next((r for r in rows if r["size"] == "7m" and r["variant"] == "mamba-chunked" and r["log2_len"] == 20),
               None)
    if row is None or "peak_mb" not in row:
        return None
    gb = row["peak_mb"] / 1024
    return {"peak_gb": round(gb, 2), "target_gb": TARGET_7M_GB, "meets_target": gb <= TARGET_7M_GB,
            "moonshot_gb": MOONSHOT_7M_GB, "meets_moonshot": gb <= MOONSHOT_7M_GB,
            "tokens_per_s": row["tokens_per_s"]}


def _panels(rows: list[dict], memory_key: str, memory_label: str) -> list[dict]:
    series_mem, series_tps = {}, {}
    for size in sorted({r["size"] for r in rows}):
        for variant in VARIANTS:
            mine = sorted((r for r in rows if r["size"] == size and r["variant"] == variant),
                          key=lambda r: r["log2_len"])
            if mine:
                xs = [2 ** r["log2_len"] for r in mine]
                series_mem[f"{variant} {size}"] = (xs, [r.get(memory_key) for r in mine])
                series_tps[f"{variant} {size}"] = (xs, [r.get("tokens_per_s") for r in mine])
    return [
        {"title": "peak training memory vs sequence length", "xlabel": "sequence length (tokens)",
         "ylabel": memory_label, "series": series_mem, "logx": True, "logy": True},
        {"title": "training throughput vs sequence length", "xlabel": "sequence length (tokens)",
         "ylabel": "tokens / s", "series": series_tps, "logx": True, "logy": True},
    ]


def run(args) -> int:
    device = resolve_device(args.device)
    if args.batch < 1 or args.steps < 1 or args.warmup < 0:
        raise ValueError("--batch and --steps must be >= 1, --warmup >= 0")
    chunk = args.chunk_size or DEFAULTS[device]["chunk_size"]
    allowance = budget.TimeBudget(args.time_budget)
    run_start = start()
    rows = []
    for point in _points(args, device):
        spec = {"arch": point["arch"], "config": point["config"], "batch": args.batch,
                "seq_len": 2 ** point["log2_len"], "steps": args.steps, "warmup": args.warmup, "device": device,
                "amp": args.amp, "seed": args.seed, "threads": args.threads,
                "malloc_mmap_threshold": args.malloc_mmap_threshold}
        result = allowance.run_point(measure, spec, args.timeout)
        row = {key: point[key] for key in ("size", "variant", "log2_len")} | {"seq_len": spec["seq_len"]} | result
        rows.append(row)
        figures = result.get("error") or (f"peak {result['peak_mb']:9.1f} MB (+{result['above_baseline_mb']:.1f} MB "
                                          f"over {result['baseline_mb']:.1f}), {result['tokens_per_s']:9.1f} tokens/s")
        print(f"{point['variant']:13s} {point['size']:>5s} L 2^{point['log2_len']:<2d}: {figures}", flush=True)
    checks = {"chunked_scaling": _chunked_scaling(rows, chunk)}
    if device == "cuda":
        checks["dna_7m_2^20"] = _seven_m_check(rows)
    memory_key, label = ("above_baseline_mb", "peak RSS above baseline (MB)") if device == "cpu" \
        else ("peak_mb", "peak CUDA memory allocated (MB)")
    report = {
        "parameters": {"device": device, "batch": args.batch, "chunk_size": chunk, "steps": args.steps,
                       "warmup": args.warmup,
                       "time_budget_s": args.time_budget,
                       "threads": args.threads or "default", "amp_bf16": args.amp and device == "cuda",
                       "malloc_mmap_threshold": args.malloc_mmap_threshold, "seed": args.seed},
        "checks": checks,
        "results": rows,
    }
    sweep_report.write("memory", report, args.out_dir, _panels(rows, memory_key, label), run_start)
    for check in checks["chunked_scaling"]:
        print(f"chunked {check['size']} L {check['lengths'][1]} vs {check['lengths'][0]} (chunk {chunk}): peak "
              f"x{check['ratio']}, above baseline x{check['ratio_above_baseline']} (target <= {TARGET_RATIO}): "
              f"{'ok' if check['meets_target'] else 'MISSED'}")
    return 0
