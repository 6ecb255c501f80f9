"""Streaming reader of MAF multiple alignments (UCSC format; plain or gzip), block by block.

Only ``a`` (block start) and ``s`` (aligned sequence) lines matter here; ``i``, ``e``, ``q`` and ``#`` lines are
skipped. Rows keep the aligned text with its ``-`` gaps, on the strand the row was aligned on.
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
            block.rows.append(row)
    if block is not None and block.rows:
        yield block
    elif block is None and not saw_header:
        raise ValueError(f"{path}: not a MAF file (no '##maf' header and no 'a' block)")
