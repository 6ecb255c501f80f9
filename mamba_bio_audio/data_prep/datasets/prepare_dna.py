"""FASTA (+ BED, or held-out names/ranges) to a prepared DNA dataset (``mamba-bio-audio prepare-dna``).

Records are written in FASTA order of their sequence (then by start). Besides the common layout, the dataset
holds the sidecars of :mod:`.dna_layout` and ``sequences.tsv`` (name, length, source file of every FASTA
record, used or not). Preparing the same sources with the same parameters again is a no-op unless ``force``.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from mamba_bio_audio.data_prep.formats.bed import read_bed
from mamba_bio_audio.data_prep.datasets.dna_layout import SplitSinks
from mamba_bio_audio.data_prep.formats.fasta_parts import SequenceInfo, iter_parts
from mamba_bio_audio.data_prep.formats.fasta_stream import check_readable, where
from mamba_bio_audio.data_prep.formats.indexed_fasta import iter_indexed
from mamba_bio_audio.atomic import scratch_dir
from mamba_bio_audio.data_prep.datasets.prepared import (PreparedDatasetWriter, check_dataset_folder, is_up_to_date,
                                                         source_entry)
from mamba_bio_audio.data_prep.datasets.regions import BedPolicy, HeldOutPolicy
from mamba_bio_audio.tokenizers import NucleotideTokenizer

ProgressFn = Callable[[int, int], None]
"""``progress(advance, total)``: ``advance`` more of ``total`` input bytes are done."""

ACCESS = ("stream", "index")


@dataclass
class DnaPrepareResult:
    path: Path
    up_to_date: bool  # True: an identical dataset was already there and nothing was written


def stream_sequences(fastas: list[Path], tokenizer_config: dict, part_dir: Path, workers: int,
                     progress: ProgressFn | None) -> Iterator[tuple[SequenceInfo, np.ndarray]]:
    """(record, its uint8 tokens) for every FASTA record in file order, tokenised in parallel through parts in
    ``part_dir``; the tokens (a memmap slice) are valid until the next item."""
    total = sum(p.stat().st_size for p in fastas)
    on_raw = (lambda n: progress(n, total)) if progress else None
    parts = iter_parts(fastas, tokenizer_config, part_dir, workers, on_raw)
    with contextlib.closing(parts):  # on an early exit, stop the workers before their folder goes
        for part in parts:
            tokens = part.tokens()
            for seq in part.sequences:
                yield seq, tokens[seq.offset: seq.offset + seq.length]
            del tokens
            part.path.unlink()


def _indexed(fastas: list[Path], tokenizer: NucleotideTokenizer,
             progress: ProgressFn | None) -> Iterator[tuple[SequenceInfo, object]]:
    total = sum(p.stat().st_size for p in fastas)
    for name, length, source, header_offset, seq in iter_indexed(fastas, tokenizer):
        yield SequenceInfo(name, name, source, header_offset, 0, length), seq
        if progress:
            progress(length, total)


def prepare_dna(fastas: list[str | Path], out: str | Path, *, bed: str | Path | None = None,
                held_out: dict[str, list[str]] | None = None, exclude: list[str] = (), flank: int = 0,
                case: str = "upper", iupac: str = "n", unknown: str = "error", access: str = "stream",
                workers: int = 0, force: bool = False, notes: str | None = None,
                progress: ProgressFn | None = None) -> DnaPrepareResult:
    """Prepare a ``dna`` dataset in ``out`` from ``fastas`` (plain, gzip or BGZF).

    With ``bed`` (4-column BED), its intervals, widened by ``flank`` bases for context; otherwise whole
    sequences, where ``held_out`` (split -> ``NAME`` / ``NAME:START-END`` specs) moves names or ranges out of
    ``train`` and ``exclude`` (globs) drops sequences. ``case``/``iupac``/``unknown`` are the tokenizer's
    policies. ``access="index"`` reads only the needed bases through pyfaidx (plain or BGZF files).
    """
    if access not in ACCESS:
        raise ValueError(f"access must be one of {ACCESS}; got {access!r}")
    if not fastas:
        raise ValueError("no FASTA file given")
    fastas = [check_readable(p) for p in fastas]
    out = Path(out)
    tokenizer = NucleotideTokenizer(case=case, iupac=iupac, unknown=unknown)
    if bed is not None:
        if held_out or exclude:
            raise ValueError("held-out ranges and excludes apply without a BED; a BED carries its own splits")
        bed = check_readable(bed, "BED file")
        policy = BedPolicy(read_bed(bed), bed, flank)
    else:
        if flank:
            raise ValueError("flank applies to BED intervals; give a BED or drop the flank")
        policy = HeldOutPolicy(held_out or {}, list(exclude))
    parameters = {"bed": bed is not None, "held_out": {k: list(v) for k, v in (held_out or {}).items()},
                  "exclude": list(exclude), "flank": flank, "case": case, "iupac": iupac, "unknown": unknown}
    check_dataset_folder(out, [*fastas, bed])  # before hashing: a folder that is not a dataset is refused at once
    sources = [{**source_entry(p), "role": "fasta"} for p in fastas]
    if bed is not None:
        sources.append({**source_entry(bed), "role": "bed"})
    if not force and is_up_to_date(out, "dna", sources, parameters):
        return DnaPrepareResult(out, True)

    extra = {"notes": notes} if notes else None
    with (scratch_dir(out) as part_dir,  # takes out's lock: one writer at a time
          PreparedDatasetWriter(out, "dna", tokenizer.config(), sources, parameters, extra=extra) as writer):
        sequences = (stream_sequences(fastas, tokenizer.config(), part_dir, workers, progress) if access == "stream"
                     else _indexed(fastas, tokenizer, progress))
        with contextlib.closing(sequences):
            _write(writer, sequences, policy, fastas)
    return DnaPrepareResult(out, False)


def _write(writer: PreparedDatasetWriter, sequences: Iterator[tuple[SequenceInfo, object]],
           policy: BedPolicy | HeldOutPolicy, fastas: list[Path]) -> None:
    """Route every sequence's records to their splits, then write the sidecars."""
    sinks = SplitSinks(writer)
    seen: dict[str, SequenceInfo] = {}
    rows = ["name\tlength\tsource"]
    for seq, tokens in sequences:
        if seq.name in seen:
            first = seen[seq.name]
            raise ValueError(f"duplicate sequence name {seq.name!r}: {where(fastas[first.source], first.header_offset)}"
                             f" and {where(fastas[seq.source], seq.header_offset)}")
        seen[seq.name] = seq
        rows.append(f"{seq.name}\t{seq.length}\t{fastas[seq.source].name}")
        for rec in policy.route(seq.name, seq.length):
            sinks[rec.split].add(tokens[rec.start: rec.end], seq.name, rec.start, rec.end, rec.intervals)
    missing = policy.missing(set(seen))
    if missing:
        raise ValueError(f"not in the FASTA file(s): {', '.join(missing[:5])}"
                         + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""))
    if not sinks:
        raise ValueError("nothing to write: every sequence was excluded or selected by no interval")
    sinks.close()
    (writer.folder / "sequences.tsv").write_text("\n".join(rows) + "\n")
