"""``mamba-bio-audio examples dna``: fetch real genomes from Debian example packages and prepare ``hg_small``
and ``apes4`` (see :mod:`mamba_bio_audio.data_prep.examples_dna` and docs/dna_data.md)."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from mamba_bio_audio.data_prep.examples_dna import FILES, NAMES, debian_locator, prepare_apes4, prepare_hg_small
from mamba_bio_audio.pipelines.prepare_dna import byte_progress, clean_os_errors, summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("data"), help="folder for the datasets (default: ./data)")
    parser.add_argument("--cache", type=Path, default=None,
                        help="folder for unpacked Debian packages (default: ~/.cache/mamba-bio-audio/debian); "
                             "packages installed under /usr/share/doc are read in place")
    parser.add_argument("--only", choices=NAMES, action="append", help="prepare only this dataset; repeatable")
    parser.add_argument("--workers", type=int, default=0, help="tokenising processes (default: up to 4 usable cores)")
    parser.add_argument("--force", action="store_true", help="prepare again even if up to date")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args) -> int:
    locate = debian_locator(args.cache)
    for name in args.only or NAMES:
        out = args.out / name
        with clean_os_errors(out):
            for f in FILES[name]:  # fetch first, so the timing below is the preparation's
                locate(f)
        started = time.perf_counter()
        with clean_os_errors(out), byte_progress(name, args.quiet) as progress:
            if name == "hg_small":
                result = prepare_hg_small(out, locate, workers=args.workers, force=args.force, progress=progress)
            else:
                result = prepare_apes4(out, locate, force=args.force, progress=progress)
        print(summary(result, started))
    return 0
