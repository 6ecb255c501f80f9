"""Random access to FASTA intervals through pyfaidx (``prepare-dna --access index``).

Worth it when a BED selects a small part of a large genome. Needs a plain or BGZF file: pyfaidx builds the
``.fai`` (and ``.gzi`` for BGZF) next to the FASTA when missing, so that folder must be writable. Plain gzip
cannot be entered in the middle and is refused with the fix (``gunzip`` or ``bgzip``).
"""
from __future__ import annotations

import struct
import zlib
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
        start, stop = int(s.start), int(min(s.stop, self.entry.rlen))
        try:
            text = self.fasta[self.name][start:stop].encode("ascii", errors="replace")
        except Exception as err:
            if _is_damage(err):
                raise _damaged(self.path, err) from None
            raise
        if len(text) != stop - start:  # an index made before the file was cut short
            raise ValueError(f"{self.path}: truncated: bases {start}-{stop} of {self.name!r} gave {len(text)} "
                             f"bases; its index ({self.path.name}.fai) is for a longer file")
        try:
            return self.tokenizer.encode(text, dtype=np.uint8)
        except ValueError as err:
            pos = start + first_rejected(self.table, text)
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
    except Exception as err:
        if _is_damage(err):
            raise _damaged(path, err) from None
        raise


def _is_damage(err: Exception) -> bool:
    """True for what a cut or damaged BGZF block raises: struct.error (a header read past the data), zlib.error
    (a bad deflate stream), EOFError, or a ValueError from Bio.bgzf (a block shorter than its index says)."""
    if isinstance(err, (struct.error, zlib.error, EOFError)):
        return True
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return isinstance(err, ValueError) and tb is not None and tb.tb_frame.f_globals.get("__name__") == "Bio.bgzf"


def _damaged(path: Path, err: Exception) -> ValueError:
    return ValueError(f"{path}: corrupt or truncated compressed data ({err or type(err).__name__}); get the file "
                      f"again (and delete its .fai and .gzi)")


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
