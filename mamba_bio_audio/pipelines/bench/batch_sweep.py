"""``mamba-bio-audio bench train``: training memory and tokens/s versus batch size at L = 2048, Mamba against
Transformer++: the setting of the paper's Table 15 (125M-class models, one A100 80GB).

On CUDA the models are the 125M class (Mamba: 24 layers of width 768; Transformer++: 12 layers of width 768,
12 heads, SwiGLU 2048; GPT-2 vocabulary; bf16 autocast) at batch 1 ... 32, and the JSON carries Table 15's
figures beside ours (``reference_gb``). On CPU the same comparison runs at small shapes (width 128, Mamba 4
layers, Transformer++ 2 layers, byte vocabulary) at batch 1 ... 8. Each point is a fresh process
(:mod:`.train_step`): forward, backward and AdamW on seeded random tokens; the memory is the CUDA allocator's
peak, or on CPU the peak resident set size above the process's baseline. Points run batch by batch, both
architectures at each batch, so a sweep cut short by ``--time-budget`` still compares them.
"""
from __future__ import annotations

import argparse

from mamba_bio_audio.pipelines.bench import budget
from mamba_bio_audio.pipelines.reporting import sweep_report
from mamba_bio_audio.pipelines.bench.memory import resolve_device
from mamba_bio_audio.pipelines.reporting.bench_results import start
from mamba_bio_audio.pipelines.bench.train_step import measure

# device -> arch -> config fields
SHAPES = {
    "cuda": {
        "mamba": {"d_model": 768, "n_layer": 24, "vocab_size": 50277},
        "transformer": {"d_model": 768, "n_layer": 12, "n_head": 12, "d_intermediate": 2048, "vocab_size": 50277},
    },
    "cpu": {
        "mamba": {"d_model": 128, "n_layer": 4, "vocab_size": 256},
        "transformer": {"d_model": 128, "n_layer": 2, "n_head": 4, "d_intermediate": 440, "vocab_size": 256},
    },
}
BATCHES = {"cuda": "1,2,4,8,16,32", "cpu": "1,2,4,8"}
# Gu & Dao 2023, Table 15: GB at batch 1, 2, 4, 8, 16, 32; L 2048; A100 80GB.
TABLE_15_GB = {
    "transformer": {1: 4.6, 2: 5.2, 4: 6.9, 8: 11.5, 16: 20.7, 32: 34.5},
    "mamba": {1: 4.8, 2: 5.8, 4: 7.3, 8: 12.3, 16: 23.1, 32: 38.2},
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto: cuda when available (default: %(default)s)")
    parser.add_argument("--batches", default=None, help="comma-separated batch sizes (default: cpu 1,2,4,8; "
                        "cuda 1,2,4,8,16,32)")
    parser.add_argument("--seq-len", type=int, default=2048, help="tokens per sequence (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per point (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps after priming (default: %(default)s)")
    parser.add_argument("--checkpoint-blocks", action="store_true", help="per-block activation checkpointing")
    sweep_report.add_run_arguments(parser, malloc_mmap_threshold=0)
    budget.add_argument(parser)


def run(args) -> int:
    device = resolve_device(args.device)
    batches = [int(b) for b in (args.batches or BATCHES[device]).split(",") if b.strip()]
    if not batches or min(batches) < 1 or args.seq_len < 2 or args.steps < 1 or args.warmup < 0:
        raise ValueError("--batches must be positive integers, --seq-len >= 2, --steps >= 1, --warmup >= 0")
    allowance = budget.TimeBudget(args.time_budget)
    run_start = start()
    rows = []
    for batch in batches:
        for arch, shape in SHAPES[device].items():
            config = shape | {"checkpoint_blocks": args.checkpoint_blocks}
            spec = {"arch": arch, "config": config, "batch": batch, "seq_len": args.seq_len, "steps": args.steps,
                    "warmup": args.warmup, "device": device, "amp": args.amp, "seed": args.seed,
                    "threads": args.threads, "malloc_mmap_threshold": args.malloc_mmap_threshold}
            result = allowance.run_point(measure, spec, args.timeout)
            row = {"arch": arch, "batch": batch, "seq_len": args.seq_len} | result
            if device == "cuda" and args.seq_len == 2048:
                row["reference_gb"] = TABLE_15_GB[arch].get(batch)
            rows.append(row)
            figures = result.get("error") or (f"peak {result['peak_mb']:9.1f} MB (+{result['above_baseline_mb']:.1f} "
                                              f"MB), {result['tokens_per_s']:9.1f} tokens/s, "
                                              f"{result['params'] / 1e6:.2f}M parameters")
            print(f"{arch:11s} batch {batch:3d}: {figures}", flush=True)
    memory_key, label = ("above_baseline_mb", "peak RSS above baseline (MB)") if device == "cpu" \
        else ("peak_mb", "peak CUDA memory allocated (MB)")
    series_mem, series_tps = {}, {}
    for arch in SHAPES[device]:
        mine = [r for r in rows if r["arch"] == arch]
        series_mem[arch] = ([r["batch"] for r in mine], [r.get(memory_key) for r in mine])
        series_tps[arch] = ([r["batch"] for r in mine], [r.get("tokens_per_s") for r in mine])
        if device == "cuda":
            series_mem[f"{arch} (paper Tab. 15)"] = (list(TABLE_15_GB[arch]),
                                                    [gb * 1024 for gb in TABLE_15_GB[arch].values()])
    panels = [
        {"title": f"training memory vs batch, L {args.seq_len}", "xlabel": "batch (sequences)", "ylabel": label,
         "series": series_mem, "logx": True},
        {"title": f"training throughput vs batch, L {args.seq_len}", "xlabel": "batch (sequences)",
         "ylabel": "tokens / s", "series": series_tps, "logx": True},
    ]
    report = {
        "parameters": {"device": device, "shapes": SHAPES[device], "seq_len": args.seq_len, "steps": args.steps,
                       "time_budget_s": args.time_budget,
                       "warmup": args.warmup, "checkpoint_blocks": args.checkpoint_blocks,
                       "threads": args.threads or "default", "amp_bf16": args.amp and device == "cuda",
                       "malloc_mmap_threshold": args.malloc_mmap_threshold, "seed": args.seed},
        "reference": "Gu & Dao 2023, Table 15: A100 80GB, 125M models, L 2048" if device == "cuda" else None,
        "results": rows,
    }
    sweep_report.write("train", report, args.out_dir, panels, run_start)
    return 0
