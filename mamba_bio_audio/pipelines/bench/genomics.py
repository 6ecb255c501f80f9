"""``mamba-bio-audio bench genomics``: the speed of the genomics commands' library calls on this machine, with a
small random-weight DNA Mamba LM (the weights do not change the cost).

* **vep**: variants per second with prefix reuse (:func:`mamba_bio_audio.scoring.score_variants`) against naive
  rescoring (both full windows per variant, as the field's tools do), at windows of 1 kb, 8 kb and 131 kb, in one
  run on the same variants (SNVs at random positions of a random reference of two windows), with the largest
  difference between the two scores (they must agree: ``scores_equal`` at 1e-5 per variant, relative to the
  window's bases for long windows, see ``tolerance``).
* **score**: bases per second and peak memory of :func:`~mamba_bio_audio.scoring.iter_causal_scores` over one
  sequence of 1 Mb and of 10 Mb (windows of 65536 bases carrying the state), each in a fresh process: the
  peak resident memory above what the process held before scoring (the ids included, the per-base results
  reduced as they come, as a streaming writer would) should be flat in length.
* **embed**: sequences per second of :func:`mamba_bio_audio.embedding.embed_sequences` (1 kb sequences, batch 32),
  when that module is installed.

Results: ``benchmarks/results/genomics_<stamp>.json`` and a PNG beside it.
"""
from __future__ import annotations

import argparse
import multiprocessing
import queue as queue_module
import resource
import time
from pathlib import Path

import numpy as np
import torch

from mamba_bio_audio.pipelines.reporting.bench_results import start, write_result

MODEL = {"d_model": 32, "n_layer": 2, "vocab_size": 12, "ssm_cfg": {"d_state": 8}, "pad_token_id": 4}
VARIANTS = {1024: 64, 8192: 32, 131072: 8}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--windows", default="1024,8192,131072", help="vep windows (default: %(default)s)")
    parser.add_argument("--variants", type=int, default=None,
                        help="variants per window size (default: 64 at 1 kb, 32 at 8 kb, 8 at 131 kb)")
    parser.add_argument("--score-lengths", default="1000000,10000000", help="score lengths (default: %(default)s)")
    parser.add_argument("--score-window", type=int, default=65536, help="score window (default: %(default)s)")
    parser.add_argument("--d-model", type=int, default=MODEL["d_model"])
    parser.add_argument("--n-layer", type=int, default=MODEL["n_layer"])
    parser.add_argument("--batch-size", type=int, default=16, help="alternatives per batch (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default: %(default)s: the many short passes of a small model lose to "
                             "thread start-up, badly on a busy machine; 0: torch's choice)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"), help="where the JSON goes")


def _model(config: dict, seed: int):
    from mamba_bio_audio import MambaLMHeadModel
    from mamba_bio_audio.config import MambaConfig

    torch.manual_seed(seed)
    return MambaLMHeadModel(MambaConfig(**config)).eval()


def vep_row(model, window: int, n: int, batch_size: int, seed: int) -> dict:
    """Prefix reuse and naive rescoring on the same ``n`` SNVs at ``window``, side by side."""
    from mamba_bio_audio.scoring import Variant, score_variants, variant_window

    rng = np.random.default_rng(seed)
    seq = rng.integers(7, 11, 2 * window)
    positions = np.sort(rng.choice(np.arange(window // 4, 2 * window - window // 4), n, replace=False))
    variants = [Variant(int(p), "ACGT"[seq[p] - 7], "ACGT"[(seq[p] - 6) % 4]) for p in positions]
    score_variants(model, seq, variants[:1], window, batch_size=batch_size)  # warm up (first-call setup)
    row = {"window": window, "variants": n,
           "windows_used": len({variant_window(v.pos, window, len(seq)) for v in variants})}
    scores = {}
    for name, naive in (("prefix", False), ("naive", True)):
        t = time.perf_counter()
        scores[name] = score_variants(model, seq, variants, window, naive=naive, batch_size=batch_size).llr
        row[f"{name}_variants_per_s"] = n / (time.perf_counter() - t)
    diff = float(np.max(np.abs(scores["prefix"] - scores["naive"])))
    tolerance = 1e-5 * max(1.0, window / 1024)  # fp32 per-base terms summed over the window's bases
    row.update(speedup=row["prefix_variants_per_s"] / row["naive_variants_per_s"], max_abs_diff=diff,
               tolerance=tolerance, scores_equal=diff <= tolerance)
    print(f"vep    window {window:7d}  {n:3d} variants in {row['windows_used']} windows  prefix reuse "
          f"{row['prefix_variants_per_s']:8.2f} variants/s  naive {row['naive_variants_per_s']:8.2f} variants/s  "
          f"{row['speedup']:5.2f}x  max |diff| {diff:.2e}", flush=True)
    return row


def _rss_kib(field: str) -> int:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process in KiB, from /proc (Linux; the peak starts afresh at
    exec, unlike ``ru_maxrss``, which a spawned process inherits from its parent); ru_maxrss elsewhere."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _reset_peak() -> None:
    """Start the peak (VmHWM) again from the current resident size (Linux 4.0+; otherwise a no-op)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def _score_point(config: dict, length: int, window: int, seed: int, threads: int | None, queue) -> None:
    """In a fresh process: score one random sequence of ``length`` bases; put (seconds, peak KiB above the
    baseline (the model and the ids loaded), baseline KiB, mean log-likelihood) on ``queue``. The seconds
    include the first window's one-time setup."""
    from mamba_bio_audio.scoring import iter_causal_scores

    if threads:
        torch.set_num_threads(threads)
    model = _model(config, seed)
    ids = np.random.default_rng(seed).integers(7, 11, length).astype(np.uint8)
    _reset_peak()
    base = _rss_kib("VmRSS")  # the model and the ids: what any length needs
    total, count = 0.0, 0
    t = time.perf_counter()
    for _, ll, _ in iter_causal_scores(model, ids, window):
        finite = ll[np.isfinite(ll)]
        total, count = total + float(finite.sum(dtype=np.float64)), count + finite.size
    seconds = time.perf_counter() - t
    queue.put((seconds, _rss_kib("VmHWM") - base, base, total / max(count, 1)))


def score_row(config: dict, length: int, window: int, seed: int, threads: int | None) -> dict:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_score_point, args=(config, length, window, seed, threads, queue))
    proc.start()
    while True:  # a child that dies puts nothing: do not wait for it forever
        try:
            seconds, above_kib, base_kib, mean_ll = queue.get(timeout=5)
            break
        except queue_module.Empty:
            if not proc.is_alive():
                raise RuntimeError(f"the score process for length {length} died (exit code {proc.exitcode})")
    proc.join()
    row = {"length": length, "window": window, "seconds": seconds, "bases_per_s": length / seconds,
           "peak_mb_above_baseline": above_kib / 1024, "baseline_mb": base_kib / 1024, "mean_loglik": mean_ll}
    print(f"score  length {length:9d}  {row['bases_per_s']:10.0f} bases/s  "
          f"peak +{row['peak_mb_above_baseline']:.1f} MB above {row['baseline_mb']:.0f} MB", flush=True)
    return row


def embed_row(model, seed: int) -> dict | None:
    try:
        from mamba_bio_audio.embedding import embed_sequences
    except ImportError:
        return None
    ids = torch.from_numpy(np.random.default_rng(seed).integers(7, 11, (32, 1024)))
    embed_sequences(model, ids[:2])
    t = time.perf_counter()
    embed_sequences(model, ids)
    row = {"sequences": 32, "length": 1024, "sequences_per_s": 32 / (time.perf_counter() - t)}
    print(f"embed  32 x 1024 bases  {row['sequences_per_s']:.1f} sequences/s", flush=True)
    return row


def _plot(vep: list[dict], score: list[dict]):
    def draw(path: Path) -> None:
        from mamba_bio_audio.pipelines.reporting.plots import pyplot, save_png

        plt = pyplot()
        fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
        x = np.arange(len(vep))
        a.bar(x - 0.2, [r["prefix_variants_per_s"] for r in vep], 0.4, label="prefix reuse")
        a.bar(x + 0.2, [r["naive_variants_per_s"] for r in vep], 0.4, label="naive rescoring")
        a.set_xticks(x, [f"{r['window'] / 1000:.0f} kb" for r in vep])
        a.set_yscale("log")
        a.set(title="vep", xlabel="window", ylabel="variants/s")
        a.legend()
        lengths = [r["length"] / 1e6 for r in score]
        b.plot(lengths, [r["peak_mb_above_baseline"] for r in score], "o-", label="peak MB above model + ids")
        for r in score:
            b.annotate(f"{r['bases_per_s'] / 1e3:.0f}k bases/s", (r["length"] / 1e6, r["peak_mb_above_baseline"]))
        b.set(title="score: memory vs length", xlabel="sequence length (Mb)", ylabel="MB", xscale="log", ylim=(0, None))
        b.legend()
        fig.tight_layout()
        save_png(fig, path)
    return draw


def run(args) -> int:
    started = start()
    if args.threads:
        torch.set_num_threads(args.threads)
    config = {**MODEL, "d_model": args.d_model, "n_layer": args.n_layer}
    model = _model(config, args.seed)
    windows = [int(w) for w in args.windows.split(",") if w]
    vep = [vep_row(model, w, args.variants or VARIANTS.get(w, 16), args.batch_size, args.seed) for w in windows]
    score = [score_row(config, int(n), args.score_window, args.seed, args.threads)
             for n in args.score_lengths.split(",") if n]
    embed = embed_row(model, args.seed)
    report = {"benchmark": "genomics",
              "parameters": {"model": config, "params": sum(p.numel() for p in model.parameters()),
                             "batch_size": args.batch_size, "seed": args.seed,
                             "torch_threads": torch.get_num_threads()},
              "vep": vep, "score": score,
              "score_memory_ratio_longest_over_shortest": (score[-1]["peak_mb_above_baseline"] /
                                                           max(score[0]["peak_mb_above_baseline"], 1e-9))
              if len(score) > 1 else None,
              "embed": embed if embed is not None else "mamba_bio_audio.embedding is not installed: not measured",
              "all_scores_equal": all(r["scores_equal"] for r in vep)}
    write_result(args.out_dir, "genomics", report, started=started, plot=_plot(vep, score))
    return 0 if report["all_scores_equal"] else 1
