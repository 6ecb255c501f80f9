"""Output of the training sweeps (``bench memory``, ``bench train``): the JSON report and its PNG panels.

The JSON goes to ``<out_dir>/<name>_<UTC stamp>.json`` and the plot beside it with the same stem; both are
written atomically by :mod:`.bench_results`, whose header records the machine, the versions and the load average
before and after the run, since other work on the machine slows every figure.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from mamba_bio_audio.pipelines.reporting.bench_results import Started, write_result
from mamba_bio_audio.pipelines.reporting.plots import pyplot, save_png


def add_run_arguments(parser: argparse.ArgumentParser, malloc_mmap_threshold: int) -> None:
    """Options shared by the sweeps that measure each point in a child process (``bench memory``, ``bench train``).

    ``malloc_mmap_threshold`` is the sweep's default: a fixed glibc mmap threshold keeps a chunked CPU run's
    memory flat over many chunks, but about halves CPU training speed (every large buffer is a fresh mmap).
    """
    parser.add_argument("--threads", type=int, default=0, help="CPU threads per run (default: torch's choice)")
    parser.add_argument("--malloc-mmap-threshold", type=int, default=malloc_mmap_threshold,
                        help="glibc MALLOC_MMAP_THRESHOLD_ of the runs, 0: glibc default (default: %(default)s)")
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=True,
                        help="bf16 autocast on CUDA (default: on)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per point (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"), help="where the JSON goes")


def write(name: str, report: dict, out_dir: Path, panels: list[dict],
          started: Started | None = None) -> tuple[Path, Path]:
    """Write the report JSON (through :func:`.bench_results.write_result`, header included) and the plot of
    ``panels`` (see :func:`plot_panels`) beside it. Returns (json, png)."""
    json_path = write_result(out_dir, name, report, started=started, plot=lambda png: plot_panels(png, panels))
    return json_path, json_path.with_suffix(".png")


def plot_panels(path: Path, panels: list[dict]) -> None:
    """One row of line plots written as PNG. Each panel: ``title``, ``xlabel``, ``ylabel``, ``series``
    ({label: (xs, ys)}; points whose y is None are left out), optional ``logx`` / ``logy`` (base 2 / 10),
    ``hlines`` ({label: y}) and ``vlines`` ({label: x}), and ``markers`` (default true)."""
    plt = pyplot()

    fig, axes = plt.subplots(1, len(panels), figsize=(6.0 * len(panels), 4.2), dpi=120, squeeze=False)
    for ax, panel in zip(axes[0], panels):
        for label, (xs, ys) in panel["series"].items():
            points = [(x, y) for x, y in zip(xs, ys) if y is not None]
            if points:
                ax.plot(*zip(*points), marker="o" if panel.get("markers", True) else None, ms=3.5, lw=1.2,
                        label=label)
        for i, (label, value) in enumerate((panel.get("hlines") or {}).items()):
            ax.axhline(value, ls="--", lw=1.0, color=f"C{7 + i}", label=label)
        for i, (label, value) in enumerate((panel.get("vlines") or {}).items()):
            ax.axvline(value, ls=":", lw=1.2, color=f"C{5 + i}", label=label)
        if panel.get("logx"):
            ax.set_xscale("log", base=2)
        if panel.get("logy"):
            ax.set_yscale("log")
        ax.set_xlabel(panel["xlabel"])
        ax.set_ylabel(panel["ylabel"])
        ax.set_title(panel["title"], fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_png(fig, path)
