"""Whole-record FASTA reading (plain or gzip/BGZF) for small inputs such as the bundled examples.

Large genomes go through the streaming preparation of ``prepare-dna``; this reader holds records in memory.
"""
from __future__ import annotations

import gzip
import io
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from Bio.SeqIO.FastaIO import SimpleFastaParser

_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class FastaRecord:
    name: str
    description: str
    sequence: str


def _open_text(path: Path) -> io.TextIOBase:
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == _GZIP_MAGIC:  # gzip and BGZF alike
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="ascii", errors="strict")
    return open(path, encoding="ascii", errors="strict")


def read_fasta(path: str | Path) -> list[FastaRecord]:
    """All records of a FASTA file. Raises ValueError naming the file for empty or non-FASTA input."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"FASTA file not found: {path}")
    try:
        with _open_text(path) as fh:
            first = ""
            for line_number, line in enumerate(fh, start=1):
                if line.strip():
                    first = line
                    break
            if not first.startswith(">"):
                raise ValueError(f"{path}:{line_number if first else 1}: not FASTA: expected a '>' header line")
            fh.seek(0)
            records = [
                FastaRecord(title.split(None, 1)[0] if title else "", title, seq)
                for title, seq in SimpleFastaParser(fh)
            ]
    except (UnicodeDecodeError, EOFError, gzip.BadGzipFile) as err:
        raise ValueError(f"{path}: unreadable FASTA ({err})") from err
    if not records:
        raise ValueError(f"{path}: no FASTA records")
    return records


def bundled_example(name: str) -> Path:
    """Path of a FASTA shipped with the package (``data_prep/examples/data/``), e.g. ``"MT-human.fa.gz"``."""
    path = resources.files("mamba_bio_audio.data_prep.examples") / "data" / name
    if not path.is_file():
        raise FileNotFoundError(f"no bundled example named {name!r}")
    return Path(str(path))
