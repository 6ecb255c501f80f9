"""The Debian tools and Python packages that example audio is made with; installing the Debian ones on request.

Package names and paths as in Debian 12: fluidsynth + fluid-soundfont-gm for the piano;
flite, festival with two diphone voices, espeak-ng and sox for the spoken digits.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import subprocess
from pathlib import Path

log = logging.getLogger(__name__)

SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
FESTIVAL_VOICES = Path("/usr/share/festival/voices/english")
# package -> a file that proves it is installed
PIANO_PACKAGES = {"fluidsynth": "/usr/bin/fluidsynth", "fluid-soundfont-gm": str(SOUNDFONT)}
DIGIT_PACKAGES = {
    "flite": "/usr/bin/flite",
    "festival": "/usr/bin/festival",
    "festvox-kallpc16k": str(FESTIVAL_VOICES / "kal_diphone"),
    "festvox-kdlpc16k": str(FESTIVAL_VOICES / "ked_diphone"),
    "espeak-ng": "/usr/bin/espeak-ng",
    "sox": "/usr/bin/sox",
}
PYTHON_PACKAGES = {"piano": ("music21", "mido"), "digits": ()}


def missing_packages(packages: dict[str, str]) -> list[str]:
    return [name for name, proof in packages.items() if not Path(proof).exists()]


def apt_command(packages: list[str]) -> list[str]:
    return ["apt-get", "install", "-y", "--no-install-recommends", *packages]


def ensure_debian_packages(packages: dict[str, str], install: bool) -> None:
    """Raise ValueError naming the missing packages and the command, or install them when ``install`` is set
    and this process can (root, apt-get present)."""
    missing = missing_packages(packages)
    if not missing:
        return
    command = " ".join(apt_command(missing))
    if not install:
        raise ValueError(f"missing Debian packages {', '.join(missing)}: run `sudo {command}` or add --install")
    if shutil.which("apt-get") is None:
        raise ValueError(f"missing packages {', '.join(missing)} and no apt-get here to install them with")
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        raise ValueError(f"installing {', '.join(missing)} needs root: run `sudo {command}`, "
                         "then again without --install")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    log.warning("installing %s", ", ".join(missing))
    if subprocess.run(apt_command(missing), env=env).returncode != 0:
        # a fresh image has no package lists yet
        subprocess.run(["apt-get", "update"], env=env, check=False)
        if subprocess.run(apt_command(missing), env=env).returncode != 0:
            raise ValueError(f"`{command}` failed")
    still = missing_packages(packages)
    if still:
        raise ValueError(f"{', '.join(still)} still missing after `{command}`")


def ensure_python_packages(names: tuple[str, ...]) -> None:
    missing = [name for name in names if importlib.util.find_spec(name) is None]
    if missing:
        raise ValueError(f"missing Python packages {', '.join(missing)}: pip install 'mamba-bio-audio[examples]'")


def tool_version(command: list[str]) -> str:
    """First line of a tool's version output, for the record ("unknown" if it cannot be run)."""
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=30)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"
