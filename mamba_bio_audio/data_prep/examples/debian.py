"""Files of Debian packages, read where installed or fetched without installing (``apt-get download`` +
``dpkg-deb -x``, no root needed) into a cache folder, ``$XDG_CACHE_HOME/mamba-bio-audio/debian`` by default
(``~/.cache/...``). Each package unpacks to ``<cache>/<package>/`` with its own file tree below.
"""
from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from mamba_bio_audio.atomic import atomic_dir
from mamba_bio_audio.folder_kinds import check_folder, layout_kind

# What a fetch may replace: an unpacked package (dpkg-deb -x makes the top folders of a file system tree)
UNPACKED_PACKAGE = layout_kind("an unpacked Debian package",
                               folders=dict.fromkeys(("usr", "etc", "lib", "bin", "sbin", "opt", "var")))


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mamba-bio-audio" / "debian"


def _run(command: list[str], cwd: Path) -> None:
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"{command[0]} not found: fetching example data needs Debian's apt-get and "
                                f"dpkg-deb (or install the packages and rerun)") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise ValueError(f"{' '.join(command)} failed ({done.returncode}): {' | '.join(tail)}"
                         + ("; try 'apt-get update' first" if command[0] == "apt-get" else ""))


def fetch_package(package: str, cache: Path) -> Path:
    """Download and unpack ``package`` into ``cache/package`` (atomically); returns that folder."""
    check_folder(cache / package, UNPACKED_PACKAGE)  # before the download: a folder not of ours is refused at once
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{package}.", dir=cache) as tmp:
        _run(["apt-get", "download", package], Path(tmp))
        debs = sorted(Path(tmp).glob("*.deb"))
        if not debs:
            raise ValueError(f"apt-get download {package} produced no .deb file")
        with atomic_dir(cache / package, replaces=UNPACKED_PACKAGE) as root:
            _run(["dpkg-deb", "-x", str(debs[0]), str(root)], Path(tmp))
    return cache / package


def package_file(package: str, path: str, cache: Path | None = None, system_root: Path = Path("/"),
                 fetch: bool = True) -> Path:
    """``path`` (relative, e.g. ``usr/share/doc/vt/examples/ref/20.fa.gz``) of Debian ``package``: the installed
    file under ``system_root`` if present, else the cached copy, fetching the package first when ``fetch``."""
    installed = system_root / path
    if installed.is_file():
        return installed
    cache = cache or default_cache()
    cached = cache / package / path
    if not cached.is_file() and fetch:
        fetch_package(package, cache)
    if not cached.is_file():
        raise FileNotFoundError(f"{path} of Debian package {package} is neither installed nor in {cache}")
    return cached
