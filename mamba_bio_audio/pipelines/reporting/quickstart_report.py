"""Figures and the Markdown report of ``quickstart``: training curves from the runs' CSV logs, the species
confusion matrix, what a classifier's confusion matrix says in words, and ``report.md`` tying them to the
metrics table."""
from __future__ import annotations

import csv
import math
from pathlib import Path

from mamba_bio_audio.pipelines.reporting.plots import pyplot, save_png

from mamba_bio_audio.atomic import write_text_atomic

LN2 = math.log(2.0)


def read_curve(run_dir: Path, key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of one metric column of ``<run>/csv/metrics.csv`` (empty when absent)."""
    path = Path(run_dir) / "csv" / "metrics.csv"
    if not path.is_file():
        return [], []
    with open(path) as fh:
        rows = [r for r in csv.DictReader(fh) if r.get(key)]
    return [int(r["step"]) for r in rows], [float(r[key]) for r in rows]


def plot_training_curves(path: Path, panels: list[dict]) -> None:
    """One panel per run, against the optimizer step. A panel is ``{"title", "run" (its folder), "metric"
    ("loss" or "accuracy"), "lines" ({label: value}, dashed reference lines)}``: ``loss`` panels draw the
    training and validation loss in bits per token, ``accuracy`` panels the validation accuracy (and the
    training accuracy where logged) in percent, with their lines (chance, a baseline) in the same units."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.0 * len(panels), 3.8), dpi=110, squeeze=False)
    for ax, panel in zip(axes[0], panels):
        run_dir, accuracy = panel["run"], panel.get("metric", "loss") == "accuracy"
        if accuracy:
            series = ((("val/acc",), "validation", "o-", 100.0), (("train/acc_epoch", "train/acc"), "train", "s--", 100.0))
        else:
            series = ((("train/loss", "train/loss_step"), "train", "-", 1 / LN2), (("val/loss",), "validation", "o-", 1 / LN2))
        for keys, label, style, scale in series:
            steps, values = next((c for c in (read_curve(run_dir, k) for k in keys) if c[0]), ([], []))
            if steps:
                ax.plot(steps, [v * scale for v in values], style, lw=1.0, ms=3, label=label)
        for i, (label, value) in enumerate(panel.get("lines", {}).items()):
            ax.axhline(value, ls="--", lw=1.0, color=f"C{i + 2}", label=label)
        ax.set_title(panel["title"])
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("accuracy (%)" if accuracy else "loss (bits per token)")
        if accuracy:
            ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_png(fig, path)


def plot_confusion(path: Path, matrix: list[list[int]], names: list[str], title: str) -> None:
    """Confusion matrix (rows: true class, columns: predicted) with counts in the cells."""
    plt = pyplot()
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


LEVEL_POINTS = 2.0  # within this many accuracy points of the baseline: level with it
FAR_POINTS = 10.0  # this many points or more below the baseline: far below it


def against_baseline(accuracy: float, baseline_acc: float) -> str:
    """Where an accuracy stands beside a baseline's, in words: ``far below`` (10 points or more under it),
    ``below``, ``level with`` (within 2 points) or ``above``."""
    points = 100 * (accuracy - baseline_acc)
    if points <= -FAR_POINTS:
        return "far below"
    if points < -LEVEL_POINTS:
        return "below"
    return "level with" if points <= LEVEL_POINTS else "above"


def classifier_verdict(confusion: list[list[int]], names: list[str], macro_f1: float, baseline_acc: float | None,
                       collapse_share: float = 0.8) -> tuple[str, str]:
    """(kind, a sentence) for a classifier's test confusion matrix (rows: true class, columns: predicted):
    ``collapsed`` when one class takes more than ``collapse_share`` of the predictions, ``chance`` when macro F1
    is below 1.5 / classes; otherwise where it stands beside ``baseline_acc`` (the k-mer classifier on the same
    windows, :func:`against_baseline`: ``far below``, ``below``, ``level with``, ``above``), or ``better than
    chance`` without a baseline. The sentence gives the accuracy beside chance and the baseline."""
    classes, total = len(names), sum(map(sum, confusion))
    predicted = [sum(row[j] for row in confusion) for j in range(classes)]
    accuracy = sum(confusion[i][i] for i in range(classes)) / max(total, 1)
    chance = 1.0 / classes
    top = max(range(classes), key=lambda j: predicted[j])
    against = "" if baseline_acc is None else (
        f"; the k-mer classifier on the same windows: {100 * baseline_acc:.1f} % "
        f"({100 * (accuracy - baseline_acc):+.1f} points for the classifier)")
    if predicted[top] > collapse_share * total:
        return "collapsed", (f"**The classifier collapsed to one class**: it predicts {names[top]} for "
                             f"{predicted[top]} of {total} test windows ({100 * predicted[top] / total:.0f} %); "
                             f"accuracy {100 * accuracy:.1f} %, chance {100 * chance:.0f} %{against}.")
    if macro_f1 < 1.5 * chance:
        return "chance", (f"**The classifier is at chance**: macro F1 {macro_f1:.3f} against {chance:.3f} for "
                          f"guessing, accuracy {100 * accuracy:.1f} % (chance {100 * chance:.0f} %){against}.")
    if baseline_acc is None:
        return "better than chance", (f"The classifier does better than chance: test accuracy {100 * accuracy:.1f} % "
                                      f"against {100 * chance:.0f} % chance, macro F1 {macro_f1:.3f}.")
    kind = against_baseline(accuracy, baseline_acc)
    emphasis = "**" if kind in ("far below", "below") else ""
    return kind, (f"{emphasis}The classifier is {kind} the k-mer baseline{emphasis}: test accuracy "
                  f"{100 * accuracy:.1f} % against {100 * baseline_acc:.1f} % for the k-mer (k <= 4) logistic "
                  f"regression on the same windows ({100 * (accuracy - baseline_acc):+.1f} points); chance "
                  f"{100 * chance:.0f} %, macro F1 {macro_f1:.3f}.")


def write_report(path: Path, rows: list[tuple[str, str]], sections: list[str]) -> None:
    """``report.md``: title, metrics table, then the free-form ``sections`` (Markdown)."""
    table = "| metric | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)
    write_text_atomic(Path(path), "# mamba-bio-audio quickstart\n\n" + table + "\n\n" + "\n\n".join(sections) + "\n")
