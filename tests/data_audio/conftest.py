"""Fixtures for the audio data tests: small audio files written with soundfile in tmp_path (no network, no tools)."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf


def _sine(seconds: float, rate: int, freq: float = 440.0, amp: float = 0.5, channels: int = 1) -> np.ndarray:
    """float32 (n, channels) sine."""
    t = np.arange(int(seconds * rate)) / rate
    wave = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.repeat(wave[:, None], channels, axis=1)


def _write(path: Path, data: np.ndarray, rate: int, subtype: str = "PCM_16", format: str | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data, rate, subtype=subtype, format=format)
    return path


def _noise_files(folder: Path, n: int, rate: int = 22050, ext: str = "wav", seconds: float = 0.1,
                 name: str = "{i}", seed: int = 0) -> list[Path]:
    """``n`` distinct noise files ``folder/<name>.<ext>``."""
    rng = np.random.default_rng(seed)
    return [_write(Path(folder) / f"{name.format(i=i)}.{ext}",
                   (0.3 * rng.standard_normal(int(seconds * rate))).astype(np.float32), rate) for i in range(n)]


@pytest.fixture
def audio():
    """``audio.sine(seconds, rate, freq, amp, channels)``, ``audio.write(path, data, rate, subtype)``,
    ``audio.noise_files(folder, n, rate, ext, seconds, name, seed)``."""
    return SimpleNamespace(sine=_sine, write=_write, noise_files=_noise_files)
