"""Where benchmark results go: ``<out_dir>/<name>_<UTC stamp>.json``, written atomically."""
from __future__ import annotations

import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path

from mamba_bio_audio.atomic import write_text_atomic


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (None where the OS has none): how busy the machine was."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def host_info() -> dict:
    """Platform, processor and CPU count: the machine fields every benchmark JSON starts with."""
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count()}


def result_path(out_dir: Path, name: str, suffix: str = ".json") -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return Path(out_dir) / f"{name}_{stamp}{suffix}"


def write_result(out_dir: Path, name: str, report: dict, path: Path | None = None) -> Path:
    """Write ``report`` as indented JSON (to ``path``, or a new stamped name) and print where it went."""
    out = path if path is not None else result_path(out_dir, name)
    write_text_atomic(out, json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return out
