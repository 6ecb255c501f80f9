"""``mamba-bio-audio prepare-dna FASTA [FASTA ...] --out DIR [--bed BED] [options]``."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from mamba_bio_audio.atomic import folder_lock
from mamba_bio_audio.data_prep.datasets.prepare_dna import ACCESS, prepare_dna
from mamba_bio_audio.pipelines.commands.data_progress import byte_progress
from mamba_bio_audio.pipelines.commands.shared import add_policy_arguments, clean_os_errors, cli_spellings, dna_summary


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
    with (clean_os_errors(args.out), folder_lock(args.out), cli_spellings(),
          byte_progress("prepare-dna", args.quiet) as progress):
        result = prepare_dna(args.fasta, args.out, bed=args.bed, held_out=held_out, exclude=args.exclude,
                             flank=args.flank, case=args.case, iupac=args.iupac, unknown=args.unknown,
                             access=args.access, workers=args.workers, force=args.force, progress=progress)
    print(dna_summary(result, started))
    return 0
