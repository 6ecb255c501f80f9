"""Report helpers: PNG plots (matplotlib, Agg backend)."""
from __future__ import annotations

from pathlib import Path

from mamba_bio_audio.atomic import atomic_path


def plot_curve(path: Path, xs, ys, xlabel: str, ylabel: str, title: str, hlines: dict[str, float] | None = None) -> None:
    """Line plot of ys against xs, with optional labelled horizontal reference lines, written as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    ax.plot(xs, ys, lw=1.2, label=ylabel)
    for i, (label, value) in enumerate((hlines or {}).items()):
        ax.axhline(value, ls="--", lw=1.0, color=f"C{i + 1}", label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_png(fig, path)


def save_png(fig, path: Path) -> None:
    """Write a matplotlib figure to ``path`` as PNG (temporary name, then rename) and close it."""
    import matplotlib.pyplot as plt

    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
