"""Figures and the Markdown report of ``quickstart``: loss curves from the runs' CSV logs, the species
confusion matrix, and ``report.md`` tying them to the metrics table."""
from __future__ import annotations

import csv
import math
from pathlib import Path

from mamba_bio_audio.pipelines.reporting.plots import save_png

from mamba_bio_audio.atomic import write_text_atomic

LN2 = math.log(2.0)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def read_curve(run_dir: Path, key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of one metric column of ``<run>/csv/metrics.csv`` (empty when absent)."""
    path = Path(run_dir) / "csv" / "metrics.csv"
    if not path.is_file():
        return [], []
    with open(path) as fh:
        rows = [r for r in csv.DictReader(fh) if r.get(key)]
    return [int(r["step"]) for r in rows], [float(r[key]) for r in rows]


def plot_loss_curves(path: Path, runs: dict[str, Path], hlines: dict[str, dict[str, float]]) -> None:
    """One panel per run: training and validation loss in bits per token against the optimizer step, with the
    run's reference lines (``hlines[run][label] = bits``)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(runs), figsize=(5.0 * len(runs), 3.8), dpi=110, squeeze=False)
    for ax, (title, run_dir) in zip(axes[0], runs.items()):
        for keys, label, style in ((("train/loss", "train/loss_step"), "train", "-"), (("val/loss",), "validation", "o-")):
            steps, values = next((c for c in (read_curve(run_dir, k) for k in keys) if c[0]), ([], []))
            ax.plot(steps, [v / LN2 for v in values], style, lw=1.0, ms=3, label=label)
        for i, (label, value) in enumerate(hlines.get(title, {}).items()):
            ax.axhline(value, ls="--", lw=1.0, color=f"C{i + 2}", label=label)
        ax.set_title(title)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("loss (bits per token)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_png(fig, path)


def plot_confusion(path: Path, matrix: list[list[int]], names: list[str], title: str) -> None:
    """Confusion matrix (rows: true class, columns: predicted) with counts in the cells."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.8, 4.2), dpi=110)
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_yticks(range(len(names)), names)
    top = max(max(row) for row in matrix) or 1
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            ax.text(j, i, str(count), ha="center", va="center", color="white" if count > top / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    save_png(fig, path)


def write_report(path: Path, rows: list[tuple[str, str]], sections: list[str]) -> None:
    """``report.md``: title, metrics table, then the free-form ``sections`` (Markdown)."""
    table = "| metric | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)
    write_text_atomic(Path(path), "# mamba-bio-audio quickstart\n\n" + table + "\n\n" + "\n\n".join(sections) + "\n")
