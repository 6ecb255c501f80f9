"""``mamba-bio-audio bench generate``: autoregressive audio sampling speed of a SaShiMi preset, in samples per
second per stream and in total, for batches of 1 ... 256 streams, on the CPU and on CUDA when there is one.

Each timing is one :func:`~mamba_bio_audio.audio_generation.sample_audio` call on a randomly initialised (seeded)
fp32 model: state allocation, ``--samples`` recurrent steps from the start token, the draws (temperature 1,
whole vocabulary) and the exact log-probabilities. ``--samples`` should be a multiple of the product of the pools
so every phase of the U-Net (the deeper stages run on every p-th / p²-th sample only) weighs its share. The
paper-scale targets are for ``sc09_small`` on a GPU: 16,000 samples/s for one stream (real
time at 16 kHz) and 2M samples/s in total at batch 256. The JSON records the load average before the run: other
work on the machine slows every figure.

``--fast-vs-generic`` adds, in the same run, the CPU decode step fused by
:mod:`mamba_bio_audio.models.fast_decode` against the generic one (``allocate_inference_cache(..., fast=False)``),
greedy, through :mod:`~mamba_bio_audio.pipelines.bench.decode_speed`: SaShiMi's CPU twin (the quickstart's audio model,
``audio/piano_sashimi_cpu``: 1.10M parameters) at batch 1, 16 and 64, and a Mamba LM of 4 layers, d_model 256, N 16
(issue 22's model) at batch 1, ``--compare-steps`` steps each, with the speedups and issue 22's targets
(``fast_vs_generic`` in the JSON).

``--decode-steps N`` adds the decode loop alone (``decode`` in the JSON): ``model.step`` on a (batch,) token
tensor and a Gumbel-max draw from the whole vocabulary into the same tensor, N steps (rounded up to a multiple of
the pools' product) after one warm-up pass through every phase of the U-Net; its latency per step and samples/s,
run eagerly and, on CUDA, replayed from CUDA graphs: one ``torch.cuda.CUDAGraph`` per phase (the phase decides
which stages run), captured after a warm-up on a side stream and replayed in order, the state updated in place.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from mamba_bio_audio.pipelines.reporting.bench_results import start, write_result

from mamba_bio_audio import ops
from mamba_bio_audio.audio_generation import sample_audio
from mamba_bio_audio.config import MambaConfig
from mamba_bio_audio.models import MambaLMHeadModel
from mamba_bio_audio.models.sashimi import SashimiLM
from mamba_bio_audio.models.sashimi_config import SashimiConfig
from mamba_bio_audio.pipelines.bench.decode_speed import measure_decode, measure_sashimi_sampling
from mamba_bio_audio.pipelines.bench.int_lists import int_list
from mamba_bio_audio.pipelines.bench.timing import failure, sync
from mamba_bio_audio.tokenizers import MU_LAW_START_TOKEN

TARGETS = {"preset": "sc09_small", "device": "cuda", "single_stream_samples_per_s": 16_000,
           "batch_256_total_samples_per_s": 2_000_000}
# --fast-vs-generic: the models and issue 22's CPU targets (speedups over the generic step measured in the same run)
SASHIMI_CPU_TWIN = {"preset": "youtubemix", "d_model": 64, "n_layers": 1, "pool": [4, 4]}  # audio/piano_sashimi_cpu
SASHIMI_BATCHES = (1, 16, 64)
MAMBA_LM = {"d_model": 256, "n_layer": 4, "vocab_size": 12, "ssm_cfg": {"d_state": 16}}
CPU_TARGETS = {"mamba_lm_batch_1_speedup": 10.0, "mamba_lm_batch_1_tokens_per_s": 1_800,
               "sashimi_batch_16_speedup": 5.0, "sashimi_batch_64_total_samples_per_s": 16_000}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="sc09_small",
                        help=f"SaShiMi preset, one of {', '.join(SashimiConfig.available_presets())} "
                             "(default: %(default)s)")
    parser.add_argument("--batch-sizes", default="1,2,4,8,16,32,64,128,256",
                        help="comma-separated numbers of streams (default: %(default)s)")
    parser.add_argument("--samples", type=int, default=256, help="timed samples per stream (default: %(default)s)")
    parser.add_argument("--devices", default=None,
                        help="comma-separated torch devices (default: cpu, and cuda when available)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--decode-steps", type=int, default=0,
                        help="also time the decode loop alone, eager and with CUDA graphs, over this many steps "
                             "(default: %(default)s: off)")
    parser.add_argument("--fast-vs-generic", action="store_true",
                        help="also compare the fused CPU decode step with the generic one (SaShiMi's CPU twin at batch "
                             "1, 16, 64; a 4-layer d_model 256 Mamba LM at batch 1), in this run")
    parser.add_argument("--compare-steps", type=int, default=512,
                        help="decode steps per --fast-vs-generic timing (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"), help="where the JSON goes")


def _parse_sizes(text: str) -> list[int]:
    return int_list(text, "--batch-sizes", lambda v: v >= 1, "positive integers")


def _time_sampling(model: SashimiLM, batch: int, samples: int, seed: int) -> float:
    """Wall seconds of one seeded ``sample_audio`` call (its result is copied to the CPU: synchronised)."""
    started = time.perf_counter()
    sample_audio(model, batch, samples, seed=seed)
    return time.perf_counter() - started


def _bench_device(config: SashimiConfig, device: torch.device, sizes: list[int], samples: int, seed: int) -> list:
    torch.manual_seed(seed)
    model = SashimiLM(config, device=device).eval()
    warmup = config.total_pool  # one pass through every phase of the U-Net
    results = []
    for batch in sizes:
        _time_sampling(model, batch, warmup, seed)
        wall = _time_sampling(model, batch, samples, seed)
        per_stream = samples / wall
        results.append({"device": device.type, "backend": ops.resolve_backend(device), "batch": batch,
                        "samples": samples, "wall_s": round(wall, 4),
                        "samples_per_s_per_stream": round(per_stream, 1),
                        "samples_per_s_total": round(per_stream * batch, 1)})
        print(f"{device.type:5s} batch {batch:4d}  {per_stream:10.1f} samples/s per stream  "
              f"{per_stream * batch:12.1f} samples/s total", flush=True)
    return results


def _draw_step(model, tokens: torch.Tensor, state) -> None:
    """One decode step from ``tokens`` (batch,) int64 and a Gumbel-max draw of the next tokens into it (exact
    sampling at temperature 1 over the first ``vocab_size`` logits)."""
    logits, _ = model.step(tokens, state)
    logits = logits[:, :model.config.vocab_size].float()
    noise = torch.rand(logits.shape, device=logits.device)
    tokens.copy_((logits - torch.log(-torch.log(noise))).argmax(-1))


def _captured_steps(model, tokens: torch.Tensor, state, period: int) -> list:
    """One CUDA graph of :func:`_draw_step` per phase, captured after a warm-up pass on a side stream; the
    phases come back to the first one after each pass, so replaying the graphs in order continues the loop."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(period):
            _draw_step(model, tokens, state)
    torch.cuda.current_stream().wait_stream(side)
    pool = torch.cuda.graph_pool_handle()  # replayed in capture order, never concurrently: one pool is safe
    graphs = []
    for _ in range(period):
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=pool):
            _draw_step(model, tokens, state)
        graphs.append(graph)
    return graphs


@torch.no_grad()
def time_decode(model, batch: int, steps: int, graphs: bool, seed: int) -> dict:
    """Latency of the decode loop at ``batch`` streams over ``steps`` steps, eager or replayed from CUDA graphs."""
    device = next(model.parameters()).device
    period = getattr(model.config, "total_pool", 1)
    steps = -(-steps // period) * period
    row = {"device": device.type, "backend": ops.resolve_backend(device), "batch": batch,
           "mode": "cuda_graph" if graphs else "eager", "steps": steps}
    if graphs and device.type != "cuda":
        return row | {"skipped": "CUDA graphs need a CUDA device"}
    torch.manual_seed(seed)
    state = model.allocate_inference_cache(batch)
    tokens = torch.full((batch,), MU_LAW_START_TOKEN, dtype=torch.long, device=device)
    if graphs:
        try:
            captured = _captured_steps(model, tokens, state, period)
        except RuntimeError as err:
            return row | {"error": f"capture failed: {failure(err)}"}
        step = [graph.replay for graph in captured]
    else:
        for _ in range(period):  # warm-up: one pass through every phase
            _draw_step(model, tokens, state)
        step = [lambda: _draw_step(model, tokens, state)] * period
    sync(device)
    started = time.perf_counter()
    for i in range(steps):
        step[i % period]()
    sync(device)
    wall = time.perf_counter() - started
    return row | {"wall_s": round(wall, 4), "latency_ms": round(wall / steps * 1e3, 4),
                  "samples_per_s_per_stream": round(steps / wall, 1),
                  "samples_per_s_total": round(batch * steps / wall, 1)}


def _bench_decode(config: SashimiConfig, device: torch.device, sizes: list[int], steps: int, seed: int) -> list:
    torch.manual_seed(seed)
    model = SashimiLM(config, device=device).eval()
    rows = []
    for batch in sizes:
        for graphs in (False, True):
            try:
                row = time_decode(model, batch, steps, graphs, seed)
            except Exception as err:  # written down with the rows measured so far, not the end of the run
                row = {"device": device.type, "batch": batch, "mode": "cuda_graph" if graphs else "eager",
                       "error": failure(err)}
            rows.append(row)
            figures = row.get("skipped") or row.get("error") or (
                f"{row['latency_ms']:8.3f} ms/step  {row['samples_per_s_per_stream']:10.1f} samples/s per stream  "
                f"{row['samples_per_s_total']:12.1f} samples/s total")
            print(f"{device.type:5s} batch {batch:4d}  decode {row['mode']:10s}  {figures}", flush=True)
    return rows


def _compare_row(model: str, batch: int, generic: dict, fast: dict, rate: str) -> dict:
    speedup = fast[rate] / generic[rate]
    print(f"cpu   {model:16s} batch {batch:3d}  generic {generic[rate]:10.1f}  fast {fast[rate]:10.1f}  {rate}  "
          f"{speedup:6.2f}x  (fast path: {fast['path']})", flush=True)
    return {"model": model, "batch": batch, "rate": rate, "generic": generic, "fast": fast,
            "speedup": round(speedup, 2)}


def fast_vs_generic(steps: int, seed: int) -> dict:
    """The fused CPU decode step against the generic one, side by side in this process (see the module
    docstring): {"rows": one per model and batch, "meets_targets": issue 22's CPU targets}."""
    torch.manual_seed(seed)
    preset, overrides = SASHIMI_CPU_TWIN["preset"], {k: v for k, v in SASHIMI_CPU_TWIN.items() if k != "preset"}
    sashimi = SashimiLM(SashimiConfig.from_preset(preset, **overrides)).eval()
    samples = -(-steps // sashimi.config.total_pool) * sashimi.config.total_pool
    rows = []
    for batch in SASHIMI_BATCHES:
        generic, fast = (measure_sashimi_sampling(sashimi, batch=batch, samples=samples, seed=seed, fast=f)
                         for f in (False, True))
        rows.append(_compare_row("sashimi_cpu_twin", batch, generic, fast, "samples_per_s_total"))
    torch.manual_seed(seed)
    lm = MambaLMHeadModel(MambaConfig(**MAMBA_LM)).eval()
    generic, fast = (measure_decode(lm, batch=1, tokens=steps, seed=seed, fast=f) for f in (False, True))
    rows.append(_compare_row("mamba_lm_4x256", 1, generic, fast, "tokens_per_s"))
    by = {(r["model"], r["batch"]): r for r in rows}
    lm_row, s16, s64 = by[("mamba_lm_4x256", 1)], by[("sashimi_cpu_twin", 16)], by[("sashimi_cpu_twin", 64)]
    verdict = {
        "mamba_lm_batch_1_speedup": lm_row["speedup"] >= CPU_TARGETS["mamba_lm_batch_1_speedup"],
        "mamba_lm_batch_1_tokens_per_s": lm_row["fast"]["tokens_per_s"] >= CPU_TARGETS["mamba_lm_batch_1_tokens_per_s"],
        "sashimi_batch_16_speedup": s16["speedup"] >= CPU_TARGETS["sashimi_batch_16_speedup"],
        "sashimi_batch_64_total_samples_per_s":
            s64["fast"]["samples_per_s_total"] >= CPU_TARGETS["sashimi_batch_64_total_samples_per_s"],
    }
    return {"models": {"sashimi_cpu_twin": {**SASHIMI_CPU_TWIN, "params": sum(p.numel() for p in sashimi.parameters())},
                       "mamba_lm_4x256": {**MAMBA_LM, "params": sum(p.numel() for p in lm.parameters())}},
            "steps": steps, "sashimi_samples": samples, "torch_threads": torch.get_num_threads(),
            "targets": CPU_TARGETS, "meets_targets": verdict, "rows": rows}


def _meets_targets(preset: str, results: list) -> dict | None:
    """For sc09_small on CUDA: whether batch 1 and batch 256 reach the targets (None when not measured)."""
    if preset != TARGETS["preset"]:
        return None
    by_batch = {r["batch"]: r for r in results if r["device"] == TARGETS["device"] and "samples_per_s_total" in r}
    verdict = {}
    if 1 in by_batch:
        verdict["single_stream"] = by_batch[1]["samples_per_s_per_stream"] >= TARGETS["single_stream_samples_per_s"]
    if 256 in by_batch:
        verdict["batch_256_total"] = by_batch[256]["samples_per_s_total"] >= TARGETS["batch_256_total_samples_per_s"]
    return verdict or None


def run(args) -> int:
    config = SashimiConfig.from_preset(args.preset)
    sizes = _parse_sizes(args.batch_sizes)
    if args.samples < 1:
        raise ValueError(f"--samples must be >= 1; got {args.samples}")
    if args.decode_steps < 0:
        raise ValueError(f"--decode-steps must be >= 0; got {args.decode_steps}")
    if args.compare_steps < 1:
        raise ValueError(f"--compare-steps must be >= 1; got {args.compare_steps}")
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1; got {args.threads}")
        torch.set_num_threads(args.threads)
    names = args.devices.split(",") if args.devices else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    devices = [torch.device(name.strip()) for name in names if name.strip()]
    if any(device.type == "cuda" for device in devices) and not torch.cuda.is_available():
        raise ValueError("--devices names cuda but torch sees no CUDA device")
    run_start = start()
    results, decode = [], []
    for device in devices:
        results += _bench_device(config, device, sizes, args.samples, args.seed)
        if args.decode_steps:
            decode += _bench_decode(config, device, sizes, args.decode_steps, args.seed)
    compared = fast_vs_generic(args.compare_steps, args.seed) if args.fast_vs_generic else None
    report = {
        "parameters": {"preset": args.preset, "config": config.to_dict(), "dtype": "float32",
                       "params": sum(p.numel() for p in SashimiLM(config, device="meta").parameters()),
                       "samples_per_stream": args.samples, "warmup_samples": config.total_pool, "seed": args.seed,
                       "decode_steps": args.decode_steps,
                       "sampling": "temperature 1, whole vocabulary, exact log-probabilities recorded"},
        "targets": TARGETS,
        "meets_targets": _meets_targets(args.preset, results),
        "results": results,
        "decode": decode,
        "decode_meets_targets": {mode: _meets_targets(args.preset, [r for r in decode if r["mode"] == mode])
                                 for mode in ("eager", "cuda_graph")} if decode else None,
        "fast_vs_generic": compared,
    }
    write_result(args.out_dir, "generate", report, started=run_start)
    return 0
