"""Small synthetic genomes and files for the DNA data tests (no network, no Debian packages)."""
import gzip
from pathlib import Path

import numpy as np
import pytest
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
