"""Random access to FASTA intervals through pyfaidx (``prepare-dna --access index``).

Worth it when a BED selects a small part of a large genome. Needs a plain or BGZF file: pyfaidx builds the
``.fai`` (and ``.gzi`` for BGZF) next to the FASTA when missing, so that folder must be writable. Plain gzip
cannot be entered in the middle and is refused with the fix (``gunzip`` or ``bgzip``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import pyfaidx

from mamba_bio_audio.data_prep.formats.fasta_stream import compression, first_rejected, token_table, where
from mamba_bio_audio.tokenizers import NucleotideTokenizer


class IndexedSequence:
    """``seq[a:b]`` -> uint8 tokens of bases ``[a, b)`` of one sequence, read on demand."""

    def __init__(self, fasta: pyfaidx.Fasta, path: Path, name: str, tokenizer: NucleotideTokenizer, table: bytes):
        self.fasta, self.path, self.name, self.tokenizer, self.table = fasta, path, name, tokenizer, table
        self.entry = fasta.faidx.index[name]

    def __getitem__(self, s: slice) -> np.ndarray:
        text = self.fasta[self.name][int(s.start): int(s.stop)].encode("ascii", errors="replace")
        try:
            return self.tokenizer.encode(text, dtype=np.uint8)
        except ValueError as err:
            pos = int(s.start) + first_rejected(self.table, text)
            offset = self.entry.offset + pos // self.entry.lenc * self.entry.lenb + pos % self.entry.lenc
            raise ValueError(f"{where(self.path, offset)}: {err}") from None


def open_indexed(path: Path) -> pyfaidx.Fasta:
    if compression(path) == "gzip":
        raise ValueError(f"{path} is plain gzip, which cannot be read at random positions (--access index); "
                         f"decompress it (gunzip -k) or recompress it as BGZF (bgzip), or use --access stream")
    try:
        return pyfaidx.Fasta(str(path), as_raw=True, sequence_always_upper=False)
    except (pyfaidx.FastaIndexingError, pyfaidx.UnsupportedCompressionFormat, pyfaidx.IndexNotFoundError,
            OSError) as err:
        raise ValueError(f"{path}: cannot index for random access ({err})") from err


def iter_indexed(paths: list[Path],
                 tokenizer: NucleotideTokenizer) -> Iterator[tuple[str, int, int, int, IndexedSequence]]:
    """(name, length, source index, header offset, sequence) for every record, in file order."""
    table = token_table(tokenizer)
    for source, path in enumerate(paths):
        fasta = open_indexed(path)
        try:
            for name in fasta.keys():
                seq = IndexedSequence(fasta, path, name, tokenizer, table)
                # the byte before the first base ends the header line: errors point at that line
                yield name, seq.entry.rlen, source, seq.entry.offset - 1, seq
        finally:
            fasta.close()
