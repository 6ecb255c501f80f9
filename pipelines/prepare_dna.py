"""``mamba-bio-audio prepare-dna FASTA [FASTA ...] --out DIR [--bed BED] [options]``.

Also holds the pieces the other DNA commands share: tokenizer-policy options, the byte progress bar and the
summary line.
"""
from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path

from mamba_bio_audio.data_prep.prepare_dna import ACCESS, PrepareResult, prepare_dna
from mamba_bio_audio.data_prep.prepared import PreparedDataset
from mamba_bio_audio.pipelines.progress import transfer_bar


def add_policy_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("tokens (HyenaDNA ids: A7 C8 G9 T10 N11)")
    group.add_argument("--case", choices=("upper", "strict"), default="upper",
                       help="soft-masked (lowercase) bases: upper-case them, or reject them (default: %(default)s)")
    group.add_argument("--iupac", choices=("n", "unk", "error"), default="n",
                       help="IUPAC codes R Y S W K M B D H V: to N, to [UNK], or an error (default: %(default)s)")
    group.add_argument("--unknown", choices=("error", "unk", "n"), default="error",
                       help="other characters: an error with file, line and column, [UNK] or N (default: %(default)s)")
    group.add_argument("--workers", type=int, default=0, help="tokenising processes (default: up to 4 usable cores)")
    parser.add_argument("--force", action="store_true", help="prepare again even if DIR holds the same preparation")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


@contextlib.contextmanager
def byte_progress(description: str, quiet: bool = False):
    """Yield a ``progress(advance, total)`` callback drawing a rich bar of input bytes (None when quiet)."""
    if quiet:
        yield None
        return
    with transfer_bar() as bar:
        task = bar.add_task(description, total=None)

        def advance(n: int, total: int) -> None:
            bar.update(task, advance=n, total=total or None)

        yield advance


@contextlib.contextmanager
def clean_os_errors(out: Path):
    """Turn write failures (full disk, permissions) into a one-line error: nothing half-written is left."""
    try:
        yield
    except FileNotFoundError:
        raise
    except OSError as err:
        raise ValueError(f"{err.strerror or err} ({err.filename or out}); {out} was left as it was") from err


def summary(result: PrepareResult, started: float) -> str:
    """One line: splits with record and token counts, time, and speed in MB of source files per second."""
    if result.up_to_date:
        return f"{result.path}: up to date (same sources and parameters); --force prepares it again"
    manifest = PreparedDataset(result.path).manifest
    splits = manifest["splits"].items()
    parts = ", ".join(f"{name} {c['records']} records / {c['tokens']:,} tokens" for name, c in splits)
    seconds = time.perf_counter() - started
    size = sum(s["size"] for s in manifest["sources"])
    return f"{result.path}: {parts} ({seconds:.1f} s, {size / 1e6 / max(seconds, 1e-9):.0f} MB/s of source files)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("fasta", nargs="+", type=Path, help="FASTA files: plain, gzip or BGZF")
    parser.add_argument("--out", type=Path, required=True, help="dataset folder to write")
    parser.add_argument("--bed", type=Path, help="4-column BED (chrom start end split), 0-based half-open")
    parser.add_argument("--flank", type=int, default=0,
                        help="with --bed: bases of context kept each side of every interval (default: 0)")
    parser.add_argument("--valid", action="append", default=[], metavar="NAME[:START-END]",
                        help="without --bed: a sequence or range (0-based, half-open) for the valid split; repeatable")
    parser.add_argument("--test", action="append", default=[], metavar="NAME[:START-END]",
                        help="without --bed: a sequence or range for the test split; repeatable")
    parser.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                        help="without --bed: leave out sequences whose name matches, e.g. 'chrUn*'; repeatable")
    parser.add_argument("--access", choices=ACCESS, default="stream",
                        help="stream the whole FASTA (default), or index: read only the BED's bases via pyfaidx "
                             "(plain or BGZF files)")
    add_policy_arguments(parser)


def run(args) -> int:
    held_out = {k: v for k, v in (("valid", args.valid), ("test", args.test)) if v}
    started = time.perf_counter()
    with clean_os_errors(args.out), byte_progress("prepare-dna", args.quiet) as progress:
        result = prepare_dna(args.fasta, args.out, bed=args.bed, held_out=held_out, exclude=args.exclude,
                             flank=args.flank, case=args.case, iupac=args.iupac, unknown=args.unknown,
                             access=args.access, workers=args.workers, force=args.force, progress=progress)
    print(summary(result, started))
    return 0
