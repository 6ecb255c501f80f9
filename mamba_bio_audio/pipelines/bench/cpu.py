"""``mamba-bio-audio bench cpu``: a Mamba LM's CPU training step and decoding against what the machine can do,
and against the peers, in one process.

In order, on one seeded causal LM (fp32; default 4 layers, d_model 256, N 16, batch 2, L 1024, DNA vocabulary):

1. the ceilings (:mod:`.cpu_roofline`): the matmul rate at the in_proj's shape (GFLOP/s) and the scan forward's
   rate alone (state updates/s);
2. the training step (forward + LM loss + backward + AdamW): median ms, tokens/s, its GEMM FLOP/s as a fraction
   of the matmul rate, and one profiled step broken down by op (:mod:`.cpu_profile`), each category in ms and
   share, the projections' GFLOP/s and the scan's state updates/s (forward + backward counted as 3 forward
   passes) as fractions of the ceilings;
3. the same step at ``--long-length`` (default 16,384) with chunked state passing (``chunk_size``
   ``--chunk-size``): tokens/s as a fraction of the L ``--length`` step's, the two timed alternately (medians of
   ``--repeats`` steps each after a warm-up step), and the fraction the checkpointed chunks' second forward alone
   would leave (the recompute ceiling, from the short forward timed in the same run);
4. greedy decoding at batch 1 (``decode_speed.measure_decode``): tokens/s, µs per token, and the per-token
   overhead, the time above the GEMM FLOPs at the matmul rate;
5. ``torch.compile`` (inductor, ``fullgraph=True``) of the model's forward against eager, the same step with the
   loss outside, and of the generic decode step against the eager generic step and the fused one (skipped by
   ``--no-compile`` and ``--quick``: compiling takes a minute or more on a busy 2-core machine);
6. the peers (:mod:`.cpu_peers`): mambapy and transformers at the same shapes, training step and decoding, with
   ours / theirs ratios. transformers' CPU path is a Python loop over L (about 250 s per step at L 1024 on
   2 cores), so it trains at ``--transformers-length`` (default 64) and the ratio compares tokens/s.

Threads: ``--threads`` sets torch's and numba's (default: their choice, one per core). The JSON (through the one
result writer) records the load average before and after: other work on the machine slows every figure, and
with more runnable threads than cores, 2-thread runs slow down far more than 1-thread ones.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

from mamba_bio_audio import ops
from mamba_bio_audio.models.chunked import chunk_lengths
from mamba_bio_audio.pipelines.bench import cpu_peers, cpu_roofline
from mamba_bio_audio.pipelines.bench.cpu_profile import CATEGORIES, profile_step
from mamba_bio_audio.pipelines.bench.decode_speed import measure_compiled_decode, measure_decode
from mamba_bio_audio.pipelines.bench.timing import failure, median_seconds, seconds
from mamba_bio_audio.pipelines.reporting.bench_results import start, write_result
from mamba_bio_audio.pipelines.reporting.plots import pyplot, save_png

QUICK = dict(d_model=32, layers=2, batch=1, length=128, decode_tokens=16, long_length=512, chunk_size=128,
             transformers_length=16, repeats=1)
_CPU = torch.device("cpu")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--length", type=int, default=1024, help="training sequence length (default: %(default)s)")
    parser.add_argument("--vocab", type=int, default=16, help="vocabulary (default: %(default)s, DNA)")
    parser.add_argument("--decode-tokens", type=int, default=256, help="greedy steps timed at batch 1")
    parser.add_argument("--long-length", type=int, default=16384,
                        help="length of the chunked training row (0: skip it; default: %(default)s)")
    parser.add_argument("--chunk-size", type=int, default=1024,
                        help="chunk_size of the chunked row, a multiple of 64 (default: %(default)s)")
    parser.add_argument("--peers", default="mambapy,transformers",
                        help="comma-separated subset of mambapy, transformers, or 'none' (default: %(default)s)")
    parser.add_argument("--transformers-length", type=int, default=64,
                        help="training length for transformers' slow CPU path (default: %(default)s)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile row")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per figure, median (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None, help="torch and numba threads (default: one per core)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes (d_model 32, 2 layers, L 128, chunked L 512), one repeat, no compile: a "
                             "smoke test")
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"), help="where the JSON goes")


def _settings(args) -> dict:
    s = dict(d_model=args.d_model, layers=args.layers, batch=args.batch, length=args.length,
             decode_tokens=args.decode_tokens, long_length=args.long_length, chunk_size=args.chunk_size,
             transformers_length=args.transformers_length, repeats=args.repeats)
    if args.quick:
        s.update(QUICK)
    for name in ("d_model", "layers", "batch", "length", "decode_tokens", "repeats", "chunk_size",
                 "transformers_length"):
        if s[name] < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1; got {s[name]}")
    if s["long_length"] < 0:
        raise ValueError(f"--long-length must be >= 0 (0: skip); got {s['long_length']}")
    peers = [] if args.peers.strip() == "none" else [p.strip() for p in args.peers.split(",") if p.strip()]
    unknown = sorted(set(peers) - set(cpu_peers.PEERS))
    if unknown:
        raise ValueError(f"--peers: unknown {unknown}; choose among {sorted(cpu_peers.PEERS)} or 'none'")
    return s | {"vocab": args.vocab, "peers": peers, "seed": args.seed,
                "compile": not (args.no_compile or args.quick)}


def _model(s: dict, chunk_size: int | None = None):
    from mamba_bio_audio.config import MambaConfig
    from mamba_bio_audio.models.factory import model_class

    torch.manual_seed(s["seed"])
    config = MambaConfig(d_model=s["d_model"], n_layer=s["layers"], vocab_size=s["vocab"], chunk_size=chunk_size)
    model = model_class(config)(config).train()
    return model, torch.optim.AdamW(model.parameters(), lr=1e-3)


def _ids(s: dict, length: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(s["seed"])
    return torch.randint(0, s["vocab"], (s["batch"], length + 1), generator=generator)


def _lm_step(model, optimizer, ids, *, amp_bf16: bool = False):
    """Forward with the model's own LM loss, backward, AdamW step; with ``amp_bf16`` the forward and loss run under
    CPU autocast to bf16 (AMP: parameters, gradients, optimizer and the scan's state stay fp32; the projections
    run as bf16 GEMMs)."""
    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp_bf16):
            loss = model(ids[:, :-1], targets=ids[:, 1:]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step


def _amp_bf16(model, optimizer, s: dict, fp32_step_ms: float) -> dict:
    """The training step of :func:`_training` under AMP bf16, and its speed over the fp32 step of this run."""
    seconds = median_seconds(_lm_step(model, optimizer, _ids(s, s["length"]), amp_bf16=True), _CPU, s["repeats"])
    return {"step_ms": round(seconds * 1e3, 1), "tokens_per_s": round(s["batch"] * s["length"] / seconds, 1),
            "speedup_over_fp32": round(fp32_step_ms / (seconds * 1e3), 3)}


def _logits_step(forward, optimizer, ids):
    """The step with the loss outside the (possibly compiled) forward."""
    def step():
        logits = forward(ids[:, :-1])
        F.cross_entropy(logits.flatten(0, 1).float(), ids[:, 1:].flatten()).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step


def _training(model, optimizer, s: dict, rates: dict) -> dict:
    ids = _ids(s, s["length"])
    step = _lm_step(model, optimizer, ids)
    seconds = median_seconds(step, _CPU, s["repeats"])
    tokens = s["batch"] * s["length"]
    flops = cpu_roofline.train_flops(model, tokens)
    profiled = profile_step(step)
    ms = profiled["ms"]
    proj_s = ms["projections"] / 1e3
    scan_s = ms["scan"] / 1e3
    scan_updates = 3 * cpu_roofline.scan_updates(model, s["batch"], s["length"])
    total = profiled["total_ms"]
    return {
        "step_ms": round(seconds * 1e3, 1), "tokens_per_s": round(tokens / seconds, 1),
        "gemm_gflop": round(flops / 1e9, 2), "step_gflop_per_s": round(flops / seconds / 1e9, 2),
        "step_fraction_of_matmul": round(flops / seconds / 1e9 / rates["matmul_gflop_per_s"], 3),
        "profile": {
            "profiled_step_ms": total,
            "ms": ms,
            "share": {c: round(ms[c] / total, 3) if total else None for c in CATEGORIES},
            "projections_gflop_per_s": round(flops / proj_s / 1e9, 2) if proj_s else None,
            "projections_fraction_of_matmul": (round(flops / proj_s / 1e9 / rates["matmul_gflop_per_s"], 3)
                                               if proj_s else None),
            "scan_updates_per_s": round(scan_updates / scan_s) if scan_s else None,
            "scan_fraction_of_scan_rate": (round(scan_updates / scan_s / rates["scan_updates_per_s"], 3)
                                           if scan_s else None),
        },
    }


def _chunked(model, optimizer, s: dict) -> dict:
    """The chunked step at ``long_length`` against the short step of ``model``, timed alternately (one short step,
    then one chunked step, ``repeats`` times after a warm-up of each) so that both medians see the same minutes of
    a machine whose speed drifts. ``recompute_ceiling``: the fraction the chunked step could reach if its only cost
    above the short steps were the checkpointed chunks' second forward (all chunks but the last run forward twice,
    ``models/chunked.py``): long_length · T / (long_length · T + recomputed tokens · F), T the short step and F its
    forward alone (no autograd), both timed in the same run (with chunks of the short length, n chunks:
    n / (n + (n - 1) · F / T))."""
    chunked_model, chunked_optimizer = _model(s, chunk_size=s["chunk_size"])
    short_ids, long_ids = _ids(s, s["length"]), _ids(s, s["long_length"])
    short_step = _lm_step(model, optimizer, short_ids)
    long_step = _lm_step(chunked_model, chunked_optimizer, long_ids)

    def forward():
        with torch.no_grad():
            model(short_ids[:, :-1], targets=short_ids[:, 1:])
    forward_s = median_seconds(forward, _CPU, s["repeats"])
    short_step()
    long_step()
    short_times, long_times = [], []
    for _ in range(s["repeats"]):
        short_times.append(seconds(short_step, _CPU))
        long_times.append(seconds(long_step, _CPU))
    short_s, long_s = statistics.median(short_times), statistics.median(long_times)
    tokens_per_s = s["batch"] * s["long_length"] / long_s
    short_tokens_per_s = s["batch"] * s["length"] / short_s
    # at the short step's cost per token, the long sequence's steps take long_length / length short steps; the
    # checkpointed chunks (all but the last, each chunk_size tokens) add their forward again
    recomputed = (len(chunk_lengths(s["long_length"], s["chunk_size"])) - 1) * s["chunk_size"]
    ceiling = s["long_length"] * short_s / (s["long_length"] * short_s + recomputed * forward_s)
    return {"length": s["long_length"], "chunk_size": s["chunk_size"], "step_ms": round(long_s * 1e3, 1),
            "tokens_per_s": round(tokens_per_s, 1), "short_step_ms": round(short_s * 1e3, 1),
            "short_tokens_per_s": round(short_tokens_per_s, 1),
            "fraction_of_short": round(tokens_per_s / short_tokens_per_s, 3),
            "short_forward_ms": round(forward_s * 1e3, 1), "recompute_ceiling": round(ceiling, 3)}


def _decode(model, s: dict, rates: dict) -> dict:
    out = measure_decode(model, batch=1, tokens=s["decode_tokens"], seed=s["seed"])
    arithmetic_us = cpu_roofline.decode_flops_per_token(model) / (rates["matmul_gflop_per_s"] * 1e9) * 1e6
    return out | {"arithmetic_us_per_token": round(arithmetic_us, 2),
                  "overhead_us_per_token": round(out["us_per_token"] - arithmetic_us, 2),
                  "arithmetic_fraction": round(arithmetic_us / out["us_per_token"], 4)}


def _compiled(model, optimizer, s: dict) -> dict:
    ids = _ids(s, s["length"])
    eager = median_seconds(_logits_step(lambda x: model(x).logits, optimizer, ids), _CPU, s["repeats"])
    try:
        compiled = torch.compile(model, fullgraph=True)
        started = time.perf_counter()
        step = _logits_step(lambda x: compiled(x).logits, optimizer, ids)
        step()
        compile_s = time.perf_counter() - started
        seconds = median_seconds(step, _CPU, s["repeats"])
    except Exception as err:  # the verdict is a row either way
        return {"eager_step_ms": round(eager * 1e3, 1), "error": failure(err)}
    return {"eager_step_ms": round(eager * 1e3, 1), "compiled_step_ms": round(seconds * 1e3, 1),
            "compile_s": round(compile_s, 1), "speedup": round(eager / seconds, 3)}


def _compiled_decode(model, s: dict, fused: dict) -> dict:
    """Greedy decoding at batch 1 through the generic step, eager and compiled by ``torch.compile``, beside the fused
    step's figure ``fused`` from the same run."""
    generic = measure_decode(model, batch=1, tokens=s["decode_tokens"], seed=s["seed"], fast=False)
    try:
        compiled = measure_compiled_decode(model, batch=1, tokens=s["decode_tokens"], seed=s["seed"])
    except Exception as err:  # the verdict is a row either way
        return {"generic_tokens_per_s": generic["tokens_per_s"], "error": failure(err)}
    return {"generic_tokens_per_s": generic["tokens_per_s"], "compiled_tokens_per_s": compiled["tokens_per_s"],
            "fused_tokens_per_s": fused["tokens_per_s"], "compile_s": compiled["compile_s"],
            "compiled_over_generic": round(compiled["tokens_per_s"] / generic["tokens_per_s"], 2),
            "fused_over_compiled": round(fused["tokens_per_s"] / compiled["tokens_per_s"], 2)}


def _peers(s: dict, ours_step: dict, ours_decode: dict) -> list[dict]:
    rows = []
    for name in s["peers"]:
        length = s["transformers_length"] if name == "transformers" else s["length"]
        row = cpu_peers.measure_peer(name, d_model=s["d_model"], n_layer=s["layers"], vocab=s["vocab"],
                                     batch=s["batch"], length=length, decode_tokens=s["decode_tokens"],
                                     repeats=1 if name == "transformers" else s["repeats"], seed=s["seed"])
        if "tokens_per_s" in row:
            row["ours_train_speedup"] = round(ours_step["tokens_per_s"] / row["tokens_per_s"], 2)
            row["ours_decode_speedup"] = round(ours_decode["tokens_per_s"] / row["decode_tokens_per_s"], 2)
        rows.append(row)
    return rows


def _print(report: dict, console: Console) -> None:
    r, t = report["ceilings"], report["training"]
    console.print(f"ceilings: matmul {r['matmul_gflop_per_s']:.1f} GFLOP/s, scan forward "
                  f"{r['scan_updates_per_s'] / 1e9:.2f} G state updates/s")
    console.print(f"training step: {t['step_ms']:.1f} ms, {t['tokens_per_s']:.0f} tokens/s, "
                  f"{t['step_gflop_per_s']:.1f} GFLOP/s = {t['step_fraction_of_matmul']:.0%} of the matmul rate")
    table = Table(title=f"one profiled step ({t['profile']['profiled_step_ms']:.0f} ms with the profiler on)")
    for col in ("category", "ms", "share"):
        table.add_column(col, justify="left" if col == "category" else "right")
    for c in CATEGORIES:
        table.add_row(c, f"{t['profile']['ms'][c]:.1f}", f"{t['profile']['share'][c]:.0%}")
    console.print(table)
    p = t["profile"]
    if p["projections_gflop_per_s"]:
        console.print(f"projections {p['projections_gflop_per_s']:.1f} GFLOP/s = "
                      f"{p['projections_fraction_of_matmul']:.0%} of the matmul rate; scan "
                      f"{p['scan_updates_per_s'] / 1e9:.2f} G updates/s (fwd+bwd as 3) = "
                      f"{p['scan_fraction_of_scan_rate']:.0%} of the scan forward's rate")
    a = report["amp_bf16"]
    console.print(f"training step under AMP bf16: {a['step_ms']:.1f} ms, {a['tokens_per_s']:.0f} tokens/s "
                  f"({a['speedup_over_fp32']:.2f}x the fp32 step)")
    if "chunked" in report:
        c = report["chunked"]
        console.print(f"chunked L {c['length']} (chunk {c['chunk_size']}): {c['tokens_per_s']:.0f} tokens/s = "
                      f"{c['fraction_of_short']:.0%} of L {report['settings']['length']} "
                      f"({c['short_tokens_per_s']:.0f}, timed alternately); recompute ceiling "
                      f"{c['recompute_ceiling']:.0%}")
    d = report["decode"]
    console.print(f"decode batch 1: {d['tokens_per_s']:.0f} tokens/s, {d['us_per_token']:.0f} µs/token, of which "
                  f"{d['arithmetic_us_per_token']:.1f} µs arithmetic at the matmul rate, "
                  f"{d['overhead_us_per_token']:.0f} µs overhead ({d['path']} step)")
    if "compile" in report:
        c = report["compile"]
        console.print("torch.compile: " + (c.get("error") or f"eager {c['eager_step_ms']:.0f} ms, compiled "
                      f"{c['compiled_step_ms']:.0f} ms ({c['speedup']:.2f}x; compiling took {c['compile_s']:.0f} s)"))
    if "compile_decode" in report:
        c = report["compile_decode"]
        console.print("torch.compile of the generic decode step: " + (c.get("error") or (
            f"{c['compiled_tokens_per_s']:.0f} tokens/s against {c['generic_tokens_per_s']:.0f} eager "
            f"({c['compiled_over_generic']:.2f}x; compiling took {c['compile_s']:.0f} s); the fused step "
            f"{c['fused_tokens_per_s']:.0f} ({c['fused_over_compiled']:.2f}x the compiled one)")))
    for row in report["peers"]:
        if "tokens_per_s" in row:
            console.print(f"{row['peer']} (L {row['length']}): training {row['tokens_per_s']:.0f} tokens/s (ours "
                          f"{row['ours_train_speedup']}x), decoding {row['decode_tokens_per_s']:.0f} tokens/s (ours "
                          f"{row['ours_decode_speedup']}x)")
        else:
            console.print(f"{row['peer']}: {row.get('skipped') or row.get('error')}")
    if any(row["peer"] == "transformers" and "length" in row for row in report["peers"]):
        console.print(f"note: transformers trains at L {report['settings']['transformers_length']} (its CPU path "
                      "loops over L in Python); the ratio compares tokens/s")


def _plot(report: dict):
    def draw(path: Path) -> None:
        plt = pyplot()
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
        ms = report["training"]["profile"]["ms"]
        left.barh(list(CATEGORIES), [ms[c] for c in CATEGORIES])
        left.invert_yaxis()
        left.set_xlabel("ms per training step (profiled)")
        left.set_title("where a CPU training step goes")
        names = ["ours"] + [r["peer"] for r in report["peers"] if "tokens_per_s" in r]
        train = [report["training"]["tokens_per_s"]] + [r["tokens_per_s"] for r in report["peers"]
                                                         if "tokens_per_s" in r]
        right.bar(names, train)
        right.set_yscale("log")
        right.set_ylabel("training tokens/s")
        right.set_title("ours vs peers (same shapes; transformers at a shorter L)")
        fig.tight_layout()
        save_png(fig, path)
    return draw


def run(args) -> int:
    s = _settings(args)
    if args.threads is not None:
        if not 1 <= args.threads <= ops.max_cpu_threads():
            raise ValueError(f"--threads must be between 1 and {ops.max_cpu_threads()}; got {args.threads}")
        torch.set_num_threads(args.threads)
        ops.set_cpu_threads(args.threads)
    console = Console() if Console().is_terminal else Console(width=150)
    run_start = start()
    model, optimizer = _model(s)
    d_inner = model.backbone.layers[0].mixer.d_inner
    n_state = model.backbone.layers[0].mixer.d_state
    rates = {"matmul_gflop_per_s": round(cpu_roofline.matmul_rate(s["d_model"], d_inner, s["batch"] * s["length"]), 2),
             "scan_updates_per_s": round(cpu_roofline.scan_rate(s["batch"], d_inner, n_state, s["length"]))}
    report = {"settings": s | {"dtype": "float32", "d_state": n_state, "threads": torch.get_num_threads()},
              "ceilings": rates}
    report["training"] = _training(model, optimizer, s, rates)
    report["amp_bf16"] = _amp_bf16(model, optimizer, s, report["training"]["step_ms"])
    if s["long_length"]:
        report["chunked"] = _chunked(model, optimizer, s)
    report["decode"] = _decode(model, s, rates)
    if s["compile"]:
        report["compile"] = _compiled(model, optimizer, s)
        report["compile_decode"] = _compiled_decode(model, s, report["decode"])
    report["peers"] = _peers(s, report["training"], report["decode"])
    _print(report, console)
    write_result(args.out_dir, "cpu", report, started=run_start, plot=_plot(report))
    return 0
