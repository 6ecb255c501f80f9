"""Small synthetic inputs for the data_prep tests: genomes and FASTA files (DNA), audio files written with soundfile
(audio); no network, no Debian packages, no tools."""
from __future__ import annotations

import gzip
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
from Bio import bgzf

from mamba_bio_audio.tokenizers import NucleotideTokenizer

def random_dna(rng: np.random.Generator, n: int, n_runs: int = 0, lowercase: bool = False) -> str:
    """``n`` random bases; ``n_runs`` runs of N; optionally soft-masked (lowercase) stretches."""
    seq = rng.choice(np.array(list("ACGT")), n)
    for _ in range(n_runs):
        a = int(rng.integers(n))
        seq[a: a + int(rng.integers(1, max(2, n // 8)))] = "N"
    if lowercase:
        for _ in range(3):
            a = int(rng.integers(n))
            b = a + int(rng.integers(1, max(2, n // 5)))
            seq[a:b] = np.char.lower(seq[a:b])
    return "".join(seq)


def fasta_text(records, width: int = 60, newline: str = "\n") -> str:
    lines = []
    for header, seq in records:
        lines.append(f">{header}")
        lines.extend(seq[i: i + width] for i in range(0, len(seq), width))
    return newline.join(lines) + newline


def write_fasta(path: Path, records, width: int = 60, newline: str = "\n", compress: str | None = None) -> Path:
    """Write ``records`` [(header, sequence)] as plain, ``"gzip"`` or ``"bgzf"`` FASTA."""
    data = fasta_text(records, width, newline).encode()
    if compress == "gzip":
        path.write_bytes(gzip.compress(data))
    elif compress == "bgzf":
        with bgzf.BgzfWriter(str(path), "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)
    return path


@pytest.fixture
def tok() -> NucleotideTokenizer:
    return NucleotideTokenizer()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def genome(tmp_path, rng):
    """A plain multi-record FASTA with N runs and soft-masking: (path, {name: sequence})."""
    seqs = {f"chr{i}": random_dna(rng, n, n_runs=2, lowercase=True)
            for i, n in enumerate([5000, 12345, 800, 3001], start=1)}
    return write_fasta(tmp_path / "genome.fa", list(seqs.items())), seqs


def entries(folder: Path) -> list[str]:
    """Names in ``folder``, to check that nothing (no temporary leftovers) was added."""
    return sorted(p.name for p in folder.iterdir())


class Helpers:
    random_dna = staticmethod(random_dna)
    fasta_text = staticmethod(fasta_text)
    write_fasta = staticmethod(write_fasta)
    entries = staticmethod(entries)


@pytest.fixture
def dna() -> Helpers:
    """The helpers above (test modules cannot import a conftest by name reliably)."""
    return Helpers


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
