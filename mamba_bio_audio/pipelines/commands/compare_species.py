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

Every length trains until it has converged, not for a fixed count that suits one length: the head starts from a
linear probe (``task.head_init``), validation runs every ``compare.val_every`` steps, and a run stops when its
validation loss has not improved for ``compare.patience`` validations (Lightning's ``EarlyStopping``), or at
``compare.steps`` steps. Each row records the steps run, whether it stopped on the criterion (``converged``)
and its curve (validation accuracy and loss, training loss, by step), which the PNG's second panel draws per
length: a curve still rising at its last step says that length needed more.
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
    if c.val_every < 1 or c.patience < 1:
        raise ValueError(f"compare.val_every and compare.patience must be >= 1; got {c.val_every} and {c.patience}")


def early_stopping(patience: int) -> str:
    """The Hydra override adding Lightning's EarlyStopping on the validation loss."""
    return ("+callbacks.early_stopping={_target_:lightning.pytorch.callbacks.EarlyStopping,"
            f"monitor:'val/loss',mode:min,patience:{patience},min_delta:0.0}}")


def curve(run_dir: Path) -> dict[str, list]:
    """The run's logged curves from its CSV log: steps and values of val/acc, val/loss and train/loss."""
    from mamba_bio_audio.pipelines.reporting.quickstart_report import read_curve

    out = {}
    for key, name in (("val/acc", "val_acc"), ("val/loss", "val_loss"), ("train/loss_step", "train_loss")):
        steps, values = read_curve(run_dir, key)
        out[name] = {"step": steps, "value": [round(v, 5) for v in values]}
    return out


def measure_length(length: int, cfg: DictConfig, overrides: list[str], classes: int) -> dict:
    """Train and test the classifier at one window length; the k-mer baseline on the same test windows."""
    from mamba_bio_audio.pipelines.commands.hydra_compose import compose
    from mamba_bio_audio.pipelines.evaluation.quickstart_metrics import optimizer_steps, species_baseline
    from mamba_bio_audio.pipelines.training.train import run

    c = cfg.compare
    batch = max(1, c.tokens_per_step // length)
    run_cfg = compose("train", overrides + [
        f"paths.output_dir={cfg.paths.output_dir}/L{length}", f"data.num_classes={classes}",
        f"data.seq_len={length}", f"data.batch_size={batch}", f"data.eval_items={c.eval_items}",
        f"data.train_items={c.steps * batch}", f"trainer.max_steps={c.steps}",
        f"trainer.val_check_interval={min(c.val_every, c.steps)}",
        f"trainer.limit_val_batches={max(1, -(-64 // batch))}", early_stopping(c.patience)])
    started = time.perf_counter()
    result = run(run_cfg)
    train_s = time.perf_counter() - started
    curves = curve(Path(run_cfg.paths.output_dir))
    kmer_items = max(64, min(c.kmer_items, KMER_TOKENS // length))
    started = time.perf_counter()
    dataset = Path(cfg.data.path)
    kmer = species_baseline(dataset.parent, length, c.eval_items, cfg.seed, train_items=kmer_items,
                            dataset=dataset.name, max_n_fraction=float(cfg.data.max_n_fraction))
    steps = optimizer_steps(result)
    return {"seq_len": length, "batch": batch, "steps": steps, "max_steps": c.steps,
            "converged": steps < c.steps, "train_tokens": steps * batch * length, "curve": curves,
            "train_and_test_s": round(train_s, 1), "test_acc": result.metrics["test/acc"],
            "test_macro_f1": result.metrics["test/f1"], "val_acc_best": result.metrics.get("val/acc_best"),
            "confusion": result.confusion, "kmer_test_acc": kmer["test_acc"], "kmer_train_acc": kmer["train_acc"],
            "kmer_train_items": kmer_items, "kmer_s": round(time.perf_counter() - started, 1),
            "run_folder": str(run_cfg.paths.output_dir)}


def plot(path: Path, rows: list[dict], classes: int, title: str) -> None:
    """Left: test accuracy against window length, beside the k-mer baseline and chance. Right: each length's
    validation accuracy against the optimizer step (its convergence)."""
    from mamba_bio_audio.pipelines.reporting.plots import pyplot, save_png

    plt = pyplot()
    lengths = [r["seq_len"] for r in rows]
    fig, (ax, curves) = plt.subplots(1, 2, figsize=(11.5, 4.0), dpi=120)
    ax.plot(lengths, [100 * r["test_acc"] for r in rows], "o-", label="Mamba classifier")
    ax.plot(lengths, [100 * r["kmer_test_acc"] for r in rows], "s--", label="k-mer (k ≤ 4) logistic regression")
    ax.axhline(100 / classes, ls=":", color="gray", label=f"chance ({100 / classes:.0f} %)")
    ax.set_xscale("log", base=2)
    ax.set_xticks(lengths, [_length(n) for n in lengths])
    ax.set_ylim(0, 100)
    ax.set_xlabel("window length (bases)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    for i, row in enumerate(rows):
        val = row["curve"]["val_acc"]
        label = f"L {_length(row['seq_len'])}: {row['steps']} steps" + (", converged" if row["converged"] else "")
        curves.plot(val["step"], [100 * v for v in val["value"]], "o-", ms=3, color=f"C{i}", label=label)
    curves.axhline(100 / classes, ls=":", color="gray")
    curves.set_ylim(0, 100)
    curves.set_xlabel("optimizer step")
    curves.set_ylabel("validation accuracy (%)")
    curves.set_title("convergence at each length", fontsize=9)
    curves.grid(alpha=0.3)
    curves.legend(fontsize=8)
    fig.tight_layout()
    save_png(fig, path)


def _length(n: int) -> str:
    return f"{n // 1024} k" if n >= 1024 else str(n)


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
        print(f"L {length}: classifier {100 * row['test_acc']:.1f} % (macro F1 {row['test_macro_f1']:.3f}) after "
              f"{row['steps']} steps ({'converged' if row['converged'] else 'stopped at compare.steps'}), "
              f"k-mer {100 * row['kmer_test_acc']:.1f} %, chance {100 / classes:.0f} % "
              f"({row['train_and_test_s']:.0f} s)", flush=True)
    accs = [r["test_acc"] for r in rows]
    report = {"parameters": {"dataset": str(dataset), "experiment": "compare/species_lengths",
                             "lengths": list(c.lengths), "steps": c.steps, "val_every": c.val_every,
                             "patience": c.patience, "tokens_per_step": c.tokens_per_step,
                             "eval_items": c.eval_items, "kmer_items": c.kmer_items,
                             "pretrained": cfg.net.get("pretrained"), "seed": cfg.seed,
                             "run_folder": str(cfg.paths.output_dir)},
              "species": species, "chance": 1.0 / classes, "rows": rows,
              "accuracy_rises_with_length": all(b >= a for a, b in zip(accs, accs[1:])),
              "all_converged": all(r["converged"] for r in rows)}
    title = (f"{dataset.name}: accuracy against window length (until converged, at most {c.steps} steps × "
             f"{c.tokens_per_step:,} tokens)")
    write_result(Path(c.out_dir), "species_lengths", report, started=run_start,
                 plot=lambda png: plot(png, rows, classes, title))
    return 0
