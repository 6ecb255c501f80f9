"""The sequences a genomics command reads: every record of a FASTA, or the regions of a BED on it.

:class:`SequenceSource` gives the DNA tokens (uint8, HyenaDNA ids) of any stretch of a FASTA record: through
pyfaidx for plain and BGZF files (random access, so a region of a large genome costs its own length; the
``.fai`` index is written beside the FASTA when missing), in memory for plain gzip (which cannot be entered in
the middle). Bad characters are a ValueError naming file, line and column (indexed) or record and position.

:func:`read_regions` reads a BED of regions (``chrom start end [name ...]``, 0-based half-open; header, track,
browser and blank lines skipped; columns after the fourth ignored). Each region must lie on a FASTA record:
a malformed line, a chromosome missing from the FASTA or a region past its end is a ValueError naming the
file and line.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mamba_bio_audio.data_prep.formats.bed import bed_lines
from mamba_bio_audio.data_prep.formats.fasta import read_fasta
from mamba_bio_audio.data_prep.formats.fasta_stream import check_readable, compression, token_table
from mamba_bio_audio.data_prep.formats.indexed_fasta import IndexedSequence, open_indexed
from mamba_bio_audio.tokenizers import NucleotideTokenizer

__all__ = ["Region", "SequenceSource", "fasta_regions", "read_regions"]


@dataclass(frozen=True)
class Region:
    """Bases ``[start, end)`` of FASTA record ``chrom``, called ``name`` in the outputs."""

    name: str
    chrom: str
    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start


class SequenceSource:
    """Tokens of stretches of the records of one FASTA file (see the module docstring). Use as a context
    manager, or call :meth:`close`."""

    def __init__(self, path: str | Path, tokenizer: NucleotideTokenizer | None = None):
        self.path = check_readable(path, "FASTA file")
        self.tokenizer = tokenizer or NucleotideTokenizer()
        self._fasta, self._records, self._memory = None, {}, {}
        if compression(self.path) == "gzip":
            self._memory = {r.name: r.sequence for r in read_fasta(self.path)}
            self.lengths = {name: len(seq) for name, seq in self._memory.items()}
        else:
            if not _starts_with_header(self.path):
                raise ValueError(f"{self.path}:1: not FASTA: expected a '>' header line")
            self._fasta = open_indexed(self.path)
            table = token_table(self.tokenizer)
            self._records = {name: IndexedSequence(self._fasta, self.path, name, self.tokenizer, table)
                             for name in self._fasta.keys()}
            self.lengths = {name: int(seq.entry.rlen) for name, seq in self._records.items()}
        if not self.lengths:
            raise ValueError(f"{self.path}: no FASTA records")

    def tokens(self, chrom: str, start: int, end: int) -> np.ndarray:
        """(end - start,) uint8 token ids of bases ``[start, end)`` of record ``chrom``."""
        if self._fasta is not None:
            return self._records[chrom][start:end]
        try:
            return self.tokenizer.encode(self._memory[chrom][start:end], dtype=np.uint8)
        except ValueError as err:
            raise ValueError(f"{self.path}: record {chrom!r}, bases {start}-{end}: {err}") from None

    def close(self) -> None:
        if self._fasta is not None:
            self._fasta.close()
            self._fasta = None

    def __enter__(self) -> SequenceSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _starts_with_header(path: Path) -> bool:
    with open(path, "rb") as fh:
        for line in fh:
            if line.strip():
                return line.startswith(b">")
    return False


def fasta_regions(lengths: dict[str, int]) -> list[Region]:
    """Every record whole, in file order, named by its FASTA name; empty records are left out."""
    return [Region(name, name, 0, length) for name, length in lengths.items() if length > 0]


def read_regions(path: str | Path, lengths: dict[str, int], fasta: str | Path = "the FASTA") -> list[Region]:
    """The regions of a BED (see the module docstring), in file order; ``lengths``: record name → length of the
    FASTA they lie on (named ``fasta`` in messages). A region without a name is called ``chrom:start-end``."""
    path = check_readable(path, "BED file")
    regions = []
    for line in bed_lines(path, 3, "chrom start end [name]"):
        where, fields, start, end = line.where, line.fields, line.start, line.end
        chrom = fields[0]
        if chrom not in lengths:
            known = ", ".join(list(lengths)[:5]) + (", ..." if len(lengths) > 5 else "")
            raise ValueError(f"{where}: chromosome {chrom!r} is not in {fasta} (its records: {known})")
        if end > lengths[chrom]:
            raise ValueError(f"{where}: region {chrom}:{start}-{end} ends past the end of {chrom} "
                             f"({lengths[chrom]:,} bases in {fasta})")
        name = fields[3] if len(fields) > 3 else f"{chrom}:{start}-{end}"
        regions.append(Region(name, chrom, start, end))
    if not regions:
        raise ValueError(f"{path}: no regions")
    return regions
