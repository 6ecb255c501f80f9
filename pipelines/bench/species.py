"""``mamba-bio-audio bench species``: species classification accuracy against window length, the paper's
qualitative claim (Mamba paper Fig. 6 right, Great Apes: accuracy rises with context) measured on species5.

The same classifier (``species/species5_cpu``: a 4-layer Mamba, mean pooling, optionally started from an LM
export with ``--pretrained``) is trained at each ``--lengths`` window length on the same dataset, with the same
number of optimizer steps and the same tokens per step (the batch shrinks as the window grows), then scored on
``--eval-items`` test windows drawn from the held-out chromosomes and regions. Beside it, at each length, the
k-mer logistic regression (k <= 4) fitted on training windows of that length and scored on the very same test
windows. Writes ``benchmarks/results/species_<stamp>.json`` and a PNG of accuracy against length beside it.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from importlib import metadata
from pathlib import Path

from mamba_bio_audio.pipelines.reporting.bench_results import host_info, load_average, result_path, write_result

EXPERIMENT = "species/species5_cpu"
KMER_TOKENS = 1 << 24  # k-mer training windows per length: at most this many tokens (features need 8 bytes each)


def _lengths(text: str) -> list[int]:
    values = sorted({int(v) for v in text.split(",") if v.strip()})
    if len(values) < 1 or values[0] < 16:
        raise argparse.ArgumentTypeError(f"give comma-separated window lengths >= 16; got {text!r}")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=Path("data"),
                        help="folder holding species5 (`mamba-bio-audio examples dna --only species5`; default: ./data)")
    parser.add_argument("--dataset", default="species5", help="species dataset in --data (default: %(default)s)")
    parser.add_argument("--lengths", type=_lengths, default=_lengths("1024,8192,32768"), metavar="L1,L2,...",
                        help="window lengths (default: 1024,8192,32768)")
    parser.add_argument("--steps", type=int, default=120, help="optimizer steps at every length (default: %(default)s)")
    parser.add_argument("--tokens-per-step", type=int, default=32768,
                        help="batch × length at every length (default: %(default)s; the batch is at least 1)")
    parser.add_argument("--eval-items", type=int, default=256, help="test windows per length (default: %(default)s)")
    parser.add_argument("--kmer-items", type=int, default=4096,
                        help=f"training windows of the k-mer baseline per length, at most {KMER_TOKENS:,} tokens "
                             "(default: %(default)s)")
    parser.add_argument("--pretrained", type=Path, default=None,
                        help="LM export folder to start every classifier from (default: random initialisation)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", type=Path, default=None, help="folder for the runs (default: a temporary one)")
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"), help="where the JSON and PNG go")


def _versions() -> dict:
    out = {}
    for name in ("torch", "lightning", "numba", "numpy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def measure_length(length: int, args, work: Path, classes: int) -> dict:
    """Train and test the classifier at one window length; the k-mer baseline on the same test windows."""
    from mamba_bio_audio.pipelines.commands.hydra_compose import compose
    from mamba_bio_audio.pipelines.evaluation.quickstart_metrics import species_baseline
    from mamba_bio_audio.pipelines.training.train import run

    batch = max(1, args.tokens_per_step // length)
    overrides = [f"experiment={EXPERIMENT}", f"paths.data_dir={args.data}", f"paths.output_dir={work / str(length)}",
                 f"data.path={args.data / args.dataset}", f"data.num_classes={classes}", "logger=csv",
                 f"seed={args.seed}",
                 f"data.seq_len={length}", f"data.batch_size={batch}", f"data.eval_items={args.eval_items}",
                 f"data.train_items={args.steps * batch}", f"trainer.max_steps={args.steps}",
                 f"trainer.val_check_interval={max(1, args.steps // 2)}",
                 f"trainer.limit_val_batches={max(1, -(-64 // batch))}"]
    if args.pretrained is not None:
        overrides.append(f"net.pretrained={args.pretrained}")
    cfg = compose("train", overrides)
    started = time.perf_counter()
    result = run(cfg)
    train_s = time.perf_counter() - started
    kmer_items = max(64, min(args.kmer_items, KMER_TOKENS // length))
    started = time.perf_counter()
    kmer = species_baseline(args.data, length, args.eval_items, args.seed, train_items=kmer_items,
                            dataset=args.dataset, max_n_fraction=float(cfg.data.max_n_fraction))
    return {"seq_len": length, "batch": batch, "steps": args.steps, "train_tokens": args.steps * batch * length,
            "train_and_test_s": round(train_s, 1), "test_acc": result.metrics["test/acc"],
            "test_macro_f1": result.metrics["test/f1"], "val_acc_best": result.metrics.get("val/acc_best"),
            "confusion": result.confusion, "kmer_test_acc": kmer["test_acc"], "kmer_train_acc": kmer["train_acc"],
            "kmer_train_items": kmer_items, "kmer_s": round(time.perf_counter() - started, 1)}


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


def run(args) -> int:
    from mamba_bio_audio.data_prep.datasets.prepared import PreparedDataset

    if args.steps < 2 or args.tokens_per_step < 1 or args.eval_items < 1:
        raise ValueError("--steps must be >= 2, --tokens-per-step and --eval-items >= 1")
    dataset = args.data / args.dataset
    if not (dataset / "manifest.json").is_file():
        raise FileNotFoundError(f"no species dataset at {dataset}: run `mamba-bio-audio examples dna --only species5 "
                                f"--out {args.data}` first")
    manifest = PreparedDataset(dataset).manifest
    classes = len(manifest["species"])
    report = {"benchmark": "species", "host": host_info(), "versions": _versions(), "load_before": load_average(),
              "parameters": {"dataset": str(dataset), "experiment": EXPERIMENT, "lengths": args.lengths,
                             "steps": args.steps, "tokens_per_step": args.tokens_per_step,
                             "eval_items": args.eval_items, "kmer_items": args.kmer_items,
                             "pretrained": None if args.pretrained is None else str(args.pretrained),
                             "seed": args.seed},
              "species": manifest["species"], "chance": 1.0 / classes, "rows": []}
    with tempfile.TemporaryDirectory(prefix="bench_species.") as tmp:
        work = args.work_dir or Path(tmp)
        for length in args.lengths:
            row = measure_length(length, args, work, classes)
            report["rows"].append(row)
            print(f"L {length}: classifier {100 * row['test_acc']:.1f} % (macro F1 {row['test_macro_f1']:.3f}), "
                  f"k-mer {100 * row['kmer_test_acc']:.1f} %, chance {100 / classes:.0f} % "
                  f"({row['train_and_test_s']:.0f} s)", flush=True)
    report["load_after"] = load_average()
    accs = [r["test_acc"] for r in report["rows"]]
    report["accuracy_rises_with_length"] = all(b >= a for a, b in zip(accs, accs[1:]))
    out = result_path(args.out_dir, "species")
    png = out.with_suffix(".png")
    report["png"] = png.name
    plot(png, report["rows"], classes, f"{args.dataset}: accuracy against window length "
                                       f"({args.steps} steps × {args.tokens_per_step:,} tokens)")
    write_result(args.out_dir, "species", report, path=out)
    print(f"wrote {png}")
    return 0
