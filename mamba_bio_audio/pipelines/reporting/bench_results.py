"""The one writer of benchmark and experiment results: ``<out_dir>/<name>_<UTC stamp>.json`` (and a PNG beside it),
written atomically, every file opening with the same header:

* ``benchmark``: the result's name;
* ``date``: when the run started (UTC, ISO 8601);
* ``machine``: ``platform``, ``processor``, ``cpu_count``, ``torch_threads``, ``numba_threads``, ``gpu`` (the CUDA
  device's name, None without one), ``loadavg_before`` and ``loadavg_after`` (1, 5, 15 minute load averages: other
  work on the machine slows every figure), ``openmp_wait`` (``GOMP_SPINCOUNT`` and ``OMP_WAIT_POLICY`` as the
  environment has them, None where unset: how long OpenMP workers spin, which moves CPU figures; see
  :mod:`mamba_bio_audio.openmp_spin`);
* ``versions``: ``python``, ``zlib`` and each of :data:`VERSIONED` (None where it is not installed).

A run calls :func:`start` before it measures anything and hands what it returns to :func:`write_result`.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import zlib
from collections.abc import Callable
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import NamedTuple

from mamba_bio_audio.atomic import write_text_atomic

VERSIONED = ("torch", "numpy", "numba", "triton", "lightning", "hydra-core", "soundfile", "soxr", "isal")
HEADER = ("benchmark", "date", "machine", "versions")


class Started(NamedTuple):
    """When a run started and how busy the machine was then."""

    date: str
    loadavg_before: list[float] | None


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (None where the OS has none): how busy the machine was."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def start() -> Started:
    """Call before measuring: the start time and the load average then."""
    return Started(datetime.now(timezone.utc).isoformat(timespec="seconds"), load_average())


def _processor() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host_info() -> dict:
    """Platform, processor and CPU count."""
    return {"platform": platform.platform(), "processor": _processor(), "cpu_count": os.cpu_count()}


def machine(started: Started) -> dict:
    """The header's ``machine`` block (see the module docstring), the load average after taken now."""
    import torch

    from mamba_bio_audio import ops

    try:
        numba_threads = ops.cpu_threads()
    except ImportError:  # numba missing
        numba_threads = None
    return host_info() | {"torch_threads": torch.get_num_threads(), "numba_threads": numba_threads,
                          "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
                          "loadavg_before": started.loadavg_before, "loadavg_after": load_average(),
                          "openmp_wait": {name: os.environ.get(name) for name in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}}


def versions() -> dict:
    """The header's ``versions`` block."""
    out = {"python": platform.python_version(), "zlib": zlib.ZLIB_RUNTIME_VERSION}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def result_path(out_dir: Path, name: str, suffix: str = ".json") -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return Path(out_dir) / f"{name}_{stamp}{suffix}"


def write_result(out_dir: Path, name: str, report: dict, path: Path | None = None, *,
                 started: Started | None = None, plot: Callable[[Path], None] | None = None) -> Path:
    """Write the header and ``report`` as indented JSON to ``path`` (default: a new stamped name in ``out_dir``)
    and print where it went. ``plot(png_path)``, when given, draws the PNG beside it first (its name goes into
    the JSON as ``plot``). ``started``: what :func:`start` returned (default: now). ``report`` must not hold the
    header's ``date``, ``machine`` or ``versions``."""
    clash = sorted(set(report) & set(HEADER[1:]))
    if clash:
        raise ValueError(f"{name}: the result writer fills {clash}; the report must not")
    if started is not None and not isinstance(started, Started):
        raise TypeError(f"started must be what bench_results.start() returned; got {type(started).__name__}")
    started = started or start()
    out = Path(path) if path is not None else result_path(out_dir, name)
    header = {"benchmark": name, "date": started.date, "machine": machine(started), "versions": versions()}
    body = {k: v for k, v in report.items() if k != "benchmark"}
    if plot is not None:
        png = out.with_suffix(".png")
        plot(png)
        body["plot"] = png.name
        print(f"wrote {png}")
    write_text_atomic(out, json.dumps(header | body, indent=2) + "\n")
    print(f"wrote {out}")
    sys.stdout.flush()
    return out
