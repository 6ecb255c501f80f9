"""Report helpers: PNG plots (matplotlib, Agg backend)."""
from __future__ import annotations

from pathlib import Path

from mamba_bio_audio.atomic import atomic_path


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (files only, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path: Path) -> None:
    """Write a matplotlib figure to ``path`` as PNG (temporary name, then rename) and close it."""
    import matplotlib.pyplot as plt

    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
