"""VCF/BCF reading (plain, bgzipped or BCF, through pysam) as one entry per alternative allele, and writing a
copy of a VCF with one more INFO field.

Every allele keeps where it came from (record index, 1-based line of the record in the uncompressed text, ALT
index), so a message names the line and a scored copy puts each score back on its record. Alleles that are
not plain bases are classed, never scored: ``symbolic`` (``<DEL>``, ``<*>``, breakends with ``[`` or ``]``,
``*``, a missing ALT) and ``structural`` (an ``SVTYPE`` INFO field).
"""
from __future__ import annotations

import gzip
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pysam

__all__ = ["VcfAllele", "read_alleles", "write_scored_vcf"]

_BASES = re.compile(r"[ACGTN]+")


@dataclass(frozen=True)
class VcfAllele:
    """One ALT allele of a VCF record: ``pos`` 0-based; ``ref``/``alt`` upper-cased; ``kind`` one of "snv",
    "indel", "mnv", "symbolic", "structural"."""

    record: int
    line: int
    chrom: str
    pos: int
    ref: str
    alt: str
    alt_index: int
    kind: str


def _kind(ref: str, alt: str, structural: bool) -> str:
    if structural:
        return "structural"
    if not _BASES.fullmatch(ref) or not _BASES.fullmatch(alt):
        return "symbolic"
    if len(ref) == len(alt) == 1:
        return "snv"
    return "indel" if len(ref) != len(alt) else "mnv"


def _open(path: Path) -> pysam.VariantFile:
    pysam.set_verbosity(0)  # htslib's own warnings; every problem is reported by our messages
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such VCF file")
    try:
        return pysam.VariantFile(str(path))
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: not a readable VCF or BCF file ({err})") from None


def _header_lines(path: Path) -> int:
    """The header lines of a text VCF (plain or bgzipped): its records' line numbers follow them. A BCF has no
    lines: 0, so "line" counts records there."""
    with open(path, "rb") as fh:
        opener = gzip.open if fh.read(2) == b"\x1f\x8b" else open
    count = 0
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
            for text in fh:
                if not text.startswith("#"):
                    break
                count += 1
    except (OSError, EOFError):
        return 0
    return count


def read_alleles(path: str | Path) -> Iterator[VcfAllele]:
    """Every ALT allele of every record, in file order; a malformed record is a ValueError naming its line."""
    path = Path(path)
    with _open(path) as vcf:
        header_lines = _header_lines(path)
        records = iter(vcf)
        index = 0
        while True:
            line = header_lines + index + 1
            try:
                rec = next(records)
            except StopIteration:
                return
            except (OSError, ValueError) as err:
                raise ValueError(f"{path}:{line}: malformed VCF record (htslib: {err}); fix or remove that line")
            ref = (rec.ref or "").upper()
            structural = "SVTYPE" in rec.header.info and rec.info.get("SVTYPE") is not None
            for k, alt in enumerate(rec.alts or (".",)):
                alt = alt.upper() if alt else "."
                yield VcfAllele(index, line, rec.chrom, rec.pos - 1, ref, alt, k, _kind(ref, alt, structural))
            index += 1


def write_scored_vcf(src: str | Path, dst: str | Path, scores: Mapping[tuple[int, int], float], *,
                     info_id: str = "LLR", description: str = "log-likelihood ratio alt vs ref",
                     compressed: bool | None = None) -> int:
    """Copy the VCF ``src`` to ``dst`` with an INFO field ``info_id`` (Number=A, Float): the score of ALT k of
    record i is ``scores[(i, k)]``, missing ('.') for the alleles without one. ``compressed``: bgzip the
    output (default: when ``dst``'s name ends in .gz; give it when ``dst`` is a temporary name). Returns the
    records written (all of ``src``'s)."""
    src, dst = Path(src), Path(dst)
    compressed = dst.name.endswith(".gz") if compressed is None else compressed
    with _open(src) as vcf:
        header = vcf.header  # the field is added to the reader's header, so every record read carries it
        if info_id in header.info:
            raise ValueError(f"{src}: already has an INFO field {info_id}; choose another name for the scores")
        if "END" not in header.info:  # htslib adds END when it reads a symbolic allele: it must be there first
            header.info.add("END", 1, "Integer", "Stop position of the interval")
        header.info.add(info_id, "A", "Float", description)
        written = 0
        with pysam.VariantFile(str(dst), "wz" if compressed else "w", header=header) as out:
            for i, rec in enumerate(vcf):
                values = [scores.get((i, k)) for k in range(len(rec.alts or ()))]
                if any(v is not None for v in values):
                    rec.info[info_id] = tuple(values)
                out.write(rec)
                written += 1
    return written
