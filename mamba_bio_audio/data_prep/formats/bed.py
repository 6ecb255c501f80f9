"""BED intervals with a split column: ``chrom  start  end  split`` (0-based, half-open; hts-specs BEDv1 §1.3).

Header lines (``#...``, ``track ...``, ``browser ...``) and blank lines are skipped; columns after the fourth
are ignored. HyenaDNA's ``sequences_human.bed`` (chr_name, start, end, split) reads as is. Intervals of one
split may overlap (they are merged); intervals of different splits may not: the same bases would sit in two
splits, so :func:`read_bed` refuses them, naming both lines.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple
from pathlib import Path

from mamba_bio_audio.data_prep.formats.fasta_stream import check_readable


@dataclass(frozen=True)
class BedInterval:
    name: str
    start: int
    end: int
    split: str
    line: int


class BedLine(NamedTuple):
    """One data line of a BED: its number, "path, line N" for messages, its columns, and start < end."""

    number: int
    where: str
    fields: list[str]
    start: int
    end: int


def bed_lines(path: Path, columns: int, layout: str) -> Iterator[BedLine]:
    """Every data line of the BED at ``path``, in file order: header and blank
    lines skipped, at least ``columns`` columns (``layout`` names them in the message), integers
    ``0 <= start < end``. A malformed line raises ValueError naming file and line."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, start=1):
            fields = line.split()
            if not fields or fields[0].startswith("#") or fields[0] in ("track", "browser"):
                continue
            where = f"{path}, line {number}"
            if len(fields) < columns:
                raise ValueError(f"{where}: expected at least {columns} columns ({layout}), got {len(fields)}")
            try:
                start, end = int(fields[1]), int(fields[2])
            except ValueError:
                raise ValueError(f"{where}: start and end must be integers, got {fields[1]!r} {fields[2]!r}") from None
            if not 0 <= start < end:
                raise ValueError(f"{where}: need 0 <= start < end, got {start} {end}")
            yield BedLine(number, where, fields, start, end)


def read_bed(path: str | Path) -> list[BedInterval]:
    """All intervals of a 4-column BED, in file order. Malformed lines raise ValueError with file and line."""
    path = check_readable(path, "BED file")
    intervals = []
    for line in bed_lines(path, 4, "chrom start end split"):
        split = line.fields[3]
        if not split.isidentifier():
            raise ValueError(f"{line.where}: split name {split!r} must be an identifier such as train, valid, test")
        intervals.append(BedInterval(line.fields[0], line.start, line.end, split, line.number))
    if not intervals:
        raise ValueError(f"{path}: no intervals")
    check_split_overlaps(intervals, path)
    return intervals


def check_split_overlaps(intervals: list[BedInterval], path: str | Path) -> None:
    """Raise ValueError naming both lines when two intervals of different splits share a base (half-open
    intervals that only touch do not)."""
    by_name: dict[str, list[BedInterval]] = {}
    for iv in intervals:
        by_name.setdefault(iv.name, []).append(iv)
    for ivs in by_name.values():
        reach: dict[str, BedInterval] = {}  # split -> its interval reaching furthest right so far
        for iv in sorted(ivs, key=lambda iv: (iv.start, iv.line)):
            for split, other in reach.items():
                if split != iv.split and other.end > iv.start:
                    first, second = sorted((other, iv), key=lambda x: x.line)
                    raise ValueError(
                        f"{path}, line {first.line} and line {second.line}: intervals {first.name}:{first.start}-"
                        f"{first.end} ({first.split}) and {second.name}:{second.start}-{second.end} ({second.split}) "
                        f"overlap: the same bases would be in two splits")
            if iv.split not in reach or iv.end > reach[iv.split].end:
                reach[iv.split] = iv
