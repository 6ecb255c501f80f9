"""Which stretches of each sequence go to which split.

Two policies:

* BED intervals (:class:`BedPolicy`): each interval goes to its split. Stored regions are the intervals widened
  by ``flank`` bases each side (clipped to the sequence), merged per split where they overlap or touch, so
  windows longer than an interval can take their context from the sequence around it (the paper's L > 2^17
  windows) without storing a base twice. Sequences with no interval are left out.
* Held-out names or ranges (:class:`HeldOutPolicy`): ``NAME`` or ``NAME:START-END`` (0-based, half-open, as in
  BED; ``END`` may be omitted for "to the end") per held-out split; everything else, minus ``exclude`` globs,
  is ``train``.

A policy maps a sequence (name, length) to :class:`Record` s and raises ValueError for an interval past the
end of its sequence; :meth:`missing` names what the FASTA never provided.
"""
from __future__ import annotations

import fnmatch
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from mamba_bio_audio.data_prep.formats.bed import BedInterval

_RANGE = re.compile(r"^(?P<start>\d[\d,_]*)-(?P<end>\d[\d,_]*)?$")


@dataclass
class Record:
    """Bases ``[start, end)`` of a sequence stored as one record of ``split``; ``intervals`` (absolute
    coordinates, inside ``[start, end)``) are the units windows are cut from."""

    split: str
    start: int
    end: int
    intervals: list[tuple[int, int]] = field(default_factory=list)


@dataclass(frozen=True)
class Region:
    name: str
    start: int
    end: int | None  # None: to the end of the sequence


def parse_region(spec: str) -> Region:
    """``NAME``, ``NAME:START-END`` or ``NAME:START-`` (0-based, half-open; ``,``/``_`` digit separators)."""
    name, sep, rng = spec.rpartition(":")
    match = _RANGE.match(rng) if sep else None
    if not match:
        if not spec:
            raise ValueError("empty region")
        return Region(spec, 0, None)
    start = int(match["start"].replace(",", "").replace("_", ""))
    end = None if match["end"] is None else int(match["end"].replace(",", "").replace("_", ""))
    if end is not None and end <= start:
        raise ValueError(f"region {spec!r}: end must be greater than start")
    return Region(name, start, end)


class BedPolicy:
    def __init__(self, intervals: list[BedInterval], bed_path: Path, flank: int = 0):
        if flank < 0:
            raise ValueError(f"flank must be >= 0; got {flank}")
        self.by_name: dict[str, list[BedInterval]] = defaultdict(list)
        for iv in intervals:
            self.by_name[iv.name].append(iv)
        self.bed_path, self.flank = bed_path, flank

    def route(self, name: str, length: int) -> list[Record]:
        by_split: dict[str, list[BedInterval]] = defaultdict(list)
        for iv in self.by_name.get(name, []):
            if iv.end > length:
                raise ValueError(f"{self.bed_path}, line {iv.line}: interval {name}:{iv.start}-{iv.end} ends past "
                                 f"the end of sequence {name!r} (length {length})")
            by_split[iv.split].append(iv)
        records = []
        for split in sorted(by_split):
            for iv in sorted(by_split[split], key=lambda iv: iv.start):
                lo, hi = max(0, iv.start - self.flank), min(length, iv.end + self.flank)
                if records and records[-1].split == split and lo <= records[-1].end:
                    records[-1].end = max(records[-1].end, hi)
                else:
                    records.append(Record(split, lo, hi))
                records[-1].intervals.append((iv.start, iv.end))
        return records

    def missing(self, seen: set[str]) -> list[str]:
        return [f"{n} ({self.bed_path}, line {ivs[0].line})" for n, ivs in self.by_name.items() if n not in seen]


class HeldOutPolicy:
    def __init__(self, held_out: dict[str, list[str]], exclude: list[str] = ()):
        self.by_name: dict[str, list[tuple[str, Region]]] = defaultdict(list)
        for split, specs in held_out.items():
            if not split.isidentifier() or split == "train":
                raise ValueError(f"held-out split name must be an identifier other than 'train'; got {split!r}")
            for spec in specs:
                region = parse_region(spec)
                self.by_name[region.name].append((split, region))
        self.exclude = list(exclude)

    def route(self, name: str, length: int) -> list[Record]:
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in self.exclude):
            return []
        held = []
        for split, r in self.by_name.get(name, []):
            end = length if r.end is None else r.end
            if end > length or r.start >= length:
                raise ValueError(f"held-out range {name}:{r.start}-{end} ({split}) lies past the end of sequence "
                                 f"{name!r} (length {length})")
            held.append((r.start, end, split))
        held.sort()
        for (_, end_a, split_a), (start_b, _, split_b) in zip(held, held[1:]):
            if start_b < end_a:
                raise ValueError(f"held-out ranges of {name!r} overlap ({split_a} and {split_b})")
        records, pos = [], 0
        for start, end, split in held + [(length, length, None)]:
            if start > pos:
                records.append(Record("train", pos, start, [(pos, start)]))
            if split is not None:
                records.append(Record(split, start, end, [(start, end)]))
            pos = end
        return records

    def missing(self, seen: set[str]) -> list[str]:
        return [name for name in self.by_name if name not in seen]
