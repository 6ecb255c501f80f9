"""``compare experiment=compare/species_lengths``: species classification accuracy against window length, the
paper's qualitative claim (Mamba paper Fig. 6 right, Great Apes: accuracy rises with context), measured on
species5 by default.

The experiment's classifier (``species/species5_cpu``: a 4-layer Mamba, mean pooling, optionally started from an
LM export with ``net.pretrained=``) is trained at each ``compare.lengths`` window length on the same dataset
(``data.path``), with the same number of optimizer steps and the same tokens per step (the batch shrinks as the
window grows), each run in ``<paths.output_dir>/L<length>``, then scored on ``compare.eval_items`` test windows
drawn from the held-out chromosomes and regions. Beside it, at each length, the k-mer logistic regression
(k <= 4) fitted on training windows of that length and scored on the very same test windows. Writes
``<compare.out_dir>/species_lengths_<stamp>.json`` and a PNG of accuracy against length beside it.
"""
from __future__ import annotations

import time
from pathlib import Path

from omegaconf import DictConfig

KMER_TOKENS = 1 << 24  # k-mer training windows per length: at most this many tokens (features need 8 bytes each)


def _settings(c: DictConfig) -> None:
    lengths = list(c.lengths)
    if not lengths or min(lengths) < 16 or lengths != sorted(set(lengths)):
        raise ValueError(f"compare.lengths must be increasing window lengths >= 16; got {lengths}")
    if c.steps < 2 or c.tokens_per_step < 1 or c.eval_items < 1 or c.kmer_items < 1:
        raise ValueError("compare.steps must be >= 2, compare.tokens_per_step, eval_items and kmer_items >= 1")


def measure_length(length: int, cfg: DictConfig, overrides: list[str], classes: int) -> dict:
    """Train and test the classifier at one window length; the k-mer baseline on the same test windows."""
    from mamba_bio_audio.pipelines.commands.hydra_compose import compose
    from mamba_bio_audio.pipelines.evaluation.quickstart_metrics import species_baseline
    from mamba_bio_audio.pipelines.training.train import run

    c = cfg.compare
    batch = max(1, c.tokens_per_step // length)
    run_cfg = compose("train", overrides + [
        f"paths.output_dir={cfg.paths.output_dir}/L{length}", f"data.num_classes={classes}",
        f"data.seq_len={length}", f"data.batch_size={batch}", f"data.eval_items={c.eval_items}",
        f"data.train_items={c.steps * batch}", f"trainer.max_steps={c.steps}",
        f"trainer.val_check_interval={max(1, c.steps // 2)}", f"trainer.limit_val_batches={max(1, -(-64 // batch))}"])
    started = time.perf_counter()
    result = run(run_cfg)
    train_s = time.perf_counter() - started
    kmer_items = max(64, min(c.kmer_items, KMER_TOKENS // length))
    started = time.perf_counter()
    dataset = Path(cfg.data.path)
    kmer = species_baseline(dataset.parent, length, c.eval_items, cfg.seed, train_items=kmer_items,
                            dataset=dataset.name, max_n_fraction=float(cfg.data.max_n_fraction))
    return {"seq_len": length, "batch": batch, "steps": c.steps, "train_tokens": c.steps * batch * length,
            "train_and_test_s": round(train_s, 1), "test_acc": result.metrics["test/acc"],
            "test_macro_f1": result.metrics["test/f1"], "val_acc_best": result.metrics.get("val/acc_best"),
            "confusion": result.confusion, "kmer_test_acc": kmer["test_acc"], "kmer_train_acc": kmer["train_acc"],
            "kmer_train_items": kmer_items, "kmer_s": round(time.perf_counter() - started, 1),
            "run_folder": str(run_cfg.paths.output_dir)}


def plot(path: Path, rows: list[dict], classes: int, title: str) -> None:
    from mamba_bio_audio.pipelines.reporting.plots import pyplot, save_png

    plt = pyplot()
    lengths = [r["seq_len"] for r in rows]
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    ax.plot(lengths, [100 * r["test_acc"] for r in rows], "o-", label="Mamba classifier")
    ax.plot(lengths, [100 * r["kmer_test_acc"] for r in rows], "s--", label="k-mer (k ≤ 4) logistic regression")
    ax.axhline(100 / classes, ls=":", color="gray", label=f"chance ({100 / classes:.0f} %)")
    ax.set_xscale("log", base=2)
    ax.set_xticks(lengths, [f"{n // 1024} k" if n >= 1024 else str(n) for n in lengths])
    ax.set_ylim(0, 100)
    ax.set_xlabel("window length (bases)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_png(fig, path)


def run(cfg: DictConfig, overrides: list[str]) -> int:
    from mamba_bio_audio.data_prep.datasets.prepared import MANIFEST, PreparedDataset
    from mamba_bio_audio.pipelines.reporting.bench_results import start, write_result

    c = cfg.compare
    _settings(c)
    dataset = Path(cfg.data.path)
    if not (dataset / MANIFEST).is_file():
        hint = cfg.data.get("prepare_hint") or "mamba-bio-audio examples dna"
        raise FileNotFoundError(f"no species dataset at {dataset}: run `{hint}` (or give data.path=<prepared species "
                                "folder>)")
    species = PreparedDataset(dataset).manifest["species"]
    classes = len(species)
    run_start = start()
    rows = []
    for length in c.lengths:
        row = measure_length(length, cfg, overrides, classes)
        rows.append(row)
        print(f"L {length}: classifier {100 * row['test_acc']:.1f} % (macro F1 {row['test_macro_f1']:.3f}), "
              f"k-mer {100 * row['kmer_test_acc']:.1f} %, chance {100 / classes:.0f} % "
              f"({row['train_and_test_s']:.0f} s)", flush=True)
    accs = [r["test_acc"] for r in rows]
    report = {"parameters": {"dataset": str(dataset), "experiment": "compare/species_lengths",
                             "lengths": list(c.lengths), "steps": c.steps, "tokens_per_step": c.tokens_per_step,
                             "eval_items": c.eval_items, "kmer_items": c.kmer_items,
                             "pretrained": cfg.net.get("pretrained"), "seed": cfg.seed,
                             "run_folder": str(cfg.paths.output_dir)},
              "species": species, "chance": 1.0 / classes, "rows": rows,
              "accuracy_rises_with_length": all(b >= a for a, b in zip(accs, accs[1:]))}
    title = f"{dataset.name}: accuracy against window length ({c.steps} steps × {c.tokens_per_step:,} tokens)"
    write_result(Path(c.out_dir), "species_lengths", report, started=run_start,
                 plot=lambda png: plot(png, rows, classes, title))
    return 0
