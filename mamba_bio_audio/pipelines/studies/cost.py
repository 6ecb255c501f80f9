"""Study 5, ``cost``: training wall time per token and peak memory, Mamba against the Transformer++ of the same
parameter count, at sequence lengths 256 ... 16384, on this CPU (and on the GPU when there is one).

The models are the DNA size series' parameter-matched pair (``configs/model/dna_<size>.yaml`` and
``transformer_dna_<size>.yaml``: Gu & Dao 2023, App. E.3.2's shapes, Mamba with twice the layers). Every point is
measured by the ``bench memory`` / ``bench train`` machinery (:func:`~mamba_bio_audio.pipelines.bench.train_step.
measure`: a fresh process per point, forward + backward + AdamW on seeded random DNA; CPU memory is the peak
resident set above the process's baseline, CUDA memory the allocator's peak) at a fixed number of tokens per step
(batch = tokens / length), so time per token compares across lengths. Points run length by length, both
models at each length, under a wall-clock allowance (:class:`~mamba_bio_audio.pipelines.bench.budget.TimeBudget`),
so a cut-short run still compares them.
"""
from __future__ import annotations

from pathlib import Path

from mamba_bio_audio.models.factory import load_preset
from mamba_bio_audio.pipelines.bench.budget import NOT_RUN, TimeBudget
from mamba_bio_audio.pipelines.bench.train_step import measure
from mamba_bio_audio.pipelines.reporting.sweep_report import plot_panels

NAME = "cost"
ARCHS = {"mamba": "dna_{}", "transformer": "transformer_dna_{}"}
# size -> model size, lengths, tokens per step, timed and untimed steps, CPU threads (0: torch's choice), seconds
SIZES = {
    "quick": {"size": "250k", "lengths": [64], "tokens": 128, "steps": 1, "warmup": 0, "threads": 1,
              "budget_s": 120},
    "default": {"size": "250k", "lengths": [256, 1024, 4096, 16384], "tokens": 16384, "steps": 2, "warmup": 1,
                "threads": 0, "budget_s": 540},
    "full": {"size": "7m", "lengths": [256, 1024, 4096, 16384], "tokens": 65536, "steps": 5, "warmup": 2,
             "threads": 0, "budget_s": 3600},
}


def _devices(full: bool) -> list[str]:
    import torch

    if not torch.cuda.is_available():
        return ["cpu"]
    return ["cuda"] if full else ["cpu", "cuda"]


def _row(device: str, arch: str, length: int, batch: int, figures: dict) -> dict:
    row = {"device": device, "arch": arch, "seq_len": length, "batch": batch} | figures
    if "tokens_per_s" in figures:
        row["us_per_token"] = round(1e6 / figures["tokens_per_s"], 2)
    return row


def _ratios(rows: list[dict]) -> list[dict]:
    """Per device and length where both models ran: Mamba / Transformer++ time per token and peak memory."""
    out = []
    for device in dict.fromkeys(r["device"] for r in rows):
        for length in sorted({r["seq_len"] for r in rows}):
            pair = {r["arch"]: r for r in rows
                    if r["device"] == device and r["seq_len"] == length and "us_per_token" in r}
            if len(pair) == 2:
                m, t = pair["mamba"], pair["transformer"]
                key = "above_baseline_mb" if device == "cpu" else "peak_mb"
                out.append({"device": device, "seq_len": length,
                            "time_ratio": round(m["us_per_token"] / t["us_per_token"], 3),
                            "memory_ratio": round(m[key] / t[key], 3) if t[key] else None, "memory": key})
    return out


def _verdict(rows: list[dict], ratios: list[dict], size: str) -> list[str]:
    lines = []
    for device in dict.fromkeys(r["device"] for r in rows):
        mine = [r for r in ratios if r["device"] == device]
        if not mine:
            lines.append(f"{device}: no length where both models ran")
            continue
        longest = mine[-1]
        faster = [r["seq_len"] for r in mine if r["time_ratio"] < 1]
        where = (f"Mamba is faster per token from L {faster[0]}" if faster
                 else f"Mamba is slower per token at every length measured ({mine[0]['seq_len']} ... "
                      f"{longest['seq_len']})")
        lines.append(f"{device}, {size} models at equal parameters: {where}; at L {longest['seq_len']} Mamba / "
                     f"Transformer++ time per token x{longest['time_ratio']}, peak memory "
                     f"x{longest['memory_ratio']} ({longest['memory']})")
        skipped = sorted({r["seq_len"] for r in rows if r["device"] == device and "error" in r})
        if skipped:
            lines.append(f"{device}: not measured (out of memory, time or budget) at L {skipped}")
    return lines


def run_study(*, full: bool, seed: int, quick: bool = False) -> dict:
    """Measure every (device, length, model) point of the chosen size; see the module docstring."""
    sizes = SIZES["full" if full else "quick" if quick else "default"]
    configs = {arch: load_preset(name.format(sizes["size"])).to_dict() for arch, name in ARCHS.items()}
    allowance = TimeBudget(sizes["budget_s"])
    rows = []
    for device in _devices(full):
        for length in sizes["lengths"]:
            batch = max(1, sizes["tokens"] // length)
            for arch, config in configs.items():
                spec = {"arch": arch, "config": config, "batch": batch, "seq_len": length, "steps": sizes["steps"],
                        "warmup": sizes["warmup"], "device": device, "amp": device == "cuda", "seed": seed,
                        "threads": sizes["threads"], "malloc_mmap_threshold": 0}
                figures = allowance.run_point(measure, spec, sizes["budget_s"])
                rows.append(_row(device, arch, length, batch, figures))
                shown = figures.get("error") or (f"{rows[-1]['us_per_token']:9.1f} us/token, peak "
                                                 f"{figures['peak_mb']:.0f} MB (+{figures['above_baseline_mb']:.0f})")
                print(f"  cost {device} {arch:11s} L {length:6d} batch {batch:4d}: {shown}", flush=True)
    ratios = _ratios(rows)
    params = {arch: next((r["params"] for r in rows if r["arch"] == arch and "params" in r), None)
              for arch in configs}
    return {
        "parameters": {"size": sizes["size"], "presets": {a: n.format(sizes["size"]) for a, n in ARCHS.items()},
                       "params": params, "lengths": sizes["lengths"], "tokens_per_step": sizes["tokens"],
                       "steps": sizes["steps"], "warmup": sizes["warmup"], "threads": sizes["threads"] or "default",
                       "time_budget_s": sizes["budget_s"], "amp_bf16_on_cuda": True,
                       "memory": "CPU: peak RSS above the process baseline; CUDA: peak allocated",
                       "not_run_means": NOT_RUN},
        "results": {"points": rows, "ratios": ratios},
        "verdict": _verdict(rows, ratios, sizes["size"]),
    }


def plot(result: dict, png_path) -> None:
    """Time per token and peak memory vs length, one line per (device, model)."""
    rows = result["results"]["points"]
    time_series, memory_series = {}, {}
    for device in dict.fromkeys(r["device"] for r in rows):
        key = "above_baseline_mb" if device == "cpu" else "peak_mb"
        for arch in ARCHS:
            mine = [r for r in rows if r["device"] == device and r["arch"] == arch]
            xs = [r["seq_len"] for r in mine]
            time_series[f"{arch} ({device})"] = (xs, [r.get("us_per_token") for r in mine])
            memory_series[f"{arch} ({device}, {key})"] = (xs, [r.get(key) for r in mine])
    size = result["parameters"]["size"]
    plot_panels(Path(png_path), [
        {"title": f"training time per token, {size} models", "xlabel": "sequence length (tokens)",
         "ylabel": "microseconds / token", "series": time_series, "logx": True, "logy": True},
        {"title": "peak training memory", "xlabel": "sequence length (tokens)", "ylabel": "MB",
         "series": memory_series, "logx": True, "logy": True},
    ])
