"""Streaming reader of MAF multiple alignments (UCSC format; plain or gzip), block by block.

Only ``a`` (block start) and ``s`` (aligned sequence) lines matter here; ``i``, ``e``, ``q`` and ``#`` lines are
skipped. Rows keep the aligned text with its ``-`` gaps, on the strand the row was aligned on.

Every ``s`` line is checked against the format's rules (UCSC MAF): ``start`` >= 0, ``size`` equal to the bases
(non-gap characters) of its text, ``start + size <= srcSize``, and every row of a block as long as the block's
first; a species (source prefix) twice in one block is refused too, since a block is one locus per species.
Each error names the file and line(s).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from mamba_bio_audio.data_prep.formats.fasta_stream import check_readable, iter_chunks


@dataclass(frozen=True)
class MafRow:
    src: str  # e.g. "Hsap.22": species prefix, ".", sequence name
    start: int  # 0-based, on ``strand``
    size: int  # ungapped length
    strand: str
    src_size: int
    text: bytes
    line: int  # in the MAF file, for error messages

    @property
    def species(self) -> str:
        return self.src.split(".", 1)[0]

    @property
    def sequence_name(self) -> str:
        return self.src.split(".", 1)[1] if "." in self.src else self.src

    def forward_interval(self) -> tuple[int, int]:
        """[start, end) of the aligned bases on the + strand of the source sequence."""
        if self.strand == "-":
            return self.src_size - self.start - self.size, self.src_size - self.start
        return self.start, self.start + self.size

    def bases(self) -> bytes:
        return self.text.translate(None, b"-.")


@dataclass
class MafBlock:
    number: int  # 0-based count of ``a`` lines
    line: int
    rows: list[MafRow] = field(default_factory=list)


def _lines(path: Path, on_raw_bytes: Callable[[int], None] | None) -> Iterator[bytes]:
    tail = b""
    for chunk in iter_chunks(path, on_raw_bytes=on_raw_bytes):
        lines = (tail + chunk).split(b"\n")
        tail = lines.pop()
        yield from lines
    if tail:
        yield tail


def _check_row(path: Path, block: MafBlock, row: MafRow, species_lines: dict[str, int]) -> None:
    """Raise ValueError (file and line) when ``row`` breaks the MAF rules or repeats a species of ``block``."""
    where = f"{path}, line {row.line}"
    if row.start < 0:
        raise ValueError(f"{where}: negative start {row.start} in the 's' line of {row.src}")
    bases = len(row.bases())
    if row.size != bases:
        raise ValueError(f"{where}: size {row.size} of {row.src} does not match its text, which holds {bases} "
                         f"bases (non-gap characters)")
    if row.start + row.size > row.src_size:
        raise ValueError(f"{where}: start {row.start} + size {row.size} of {row.src} lies past its srcSize "
                         f"{row.src_size}")
    if block.rows:
        first = block.rows[0]
        if len(row.text) != len(first.text):
            raise ValueError(f"{where}: the text of {row.src} has {len(row.text)} columns, line {first.line} of the "
                             f"same block has {len(first.text)}; the rows of a block must have equal lengths")
    if row.species in species_lines:
        raise ValueError(f"{where}: species {row.species!r} is already in this block (line "
                         f"{species_lines[row.species]}); each species may have one row per block")
    species_lines[row.species] = row.line


def iter_maf(path: str | Path, on_raw_bytes: Callable[[int], None] | None = None) -> Iterator[MafBlock]:
    """Blocks of a MAF file in order. Malformed ``s`` lines raise ValueError with file and line.
    ``on_raw_bytes(n)``: n more file bytes were read (progress)."""
    path = check_readable(path, "MAF file")
    block = None
    saw_header = False
    for number, line in enumerate(_lines(path, on_raw_bytes), start=1):
        if line.startswith(b"##maf"):
            saw_header = True
        if line.startswith(b"a"):
            if block is not None and block.rows:
                yield block
            block = MafBlock(0 if block is None else block.number + 1, number)
            species_lines: dict[str, int] = {}
        elif line.startswith(b"s"):
            fields = line.split()
            if block is None or len(fields) != 7 or fields[4] not in (b"+", b"-"):
                raise ValueError(f"{path}, line {number}: malformed 's' line (expected 's src start size strand "
                                 f"srcSize text' inside an 'a' block)")
            try:
                row = MafRow(fields[1].decode(), int(fields[2]), int(fields[3]), fields[4].decode(), int(fields[5]),
                             fields[6], number)
            except (ValueError, UnicodeDecodeError):
                raise ValueError(f"{path}, line {number}: malformed 's' line (bad number)") from None
            _check_row(path, block, row, species_lines)
            block.rows.append(row)
    if block is not None and block.rows:
        yield block
    elif block is None and not saw_header:
        raise ValueError(f"{path}: not a MAF file (no '##maf' header and no 'a' block)")
