"""``mamba-bio-audio examples audio``: piano renders of the music21 corpus and synthetic spoken digits, made
offline from Debian and PyPI packages, prepared as 8-bit mu-law datasets (see data_prep/examples_audio.py)."""
from __future__ import annotations

import argparse
from pathlib import Path

from mamba_bio_audio.data_prep.examples_audio import KINDS, make_examples
from mamba_bio_audio.pipelines.prepare_audio import summary
from mamba_bio_audio.pipelines.progress_files import file_progress, phase_callback


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("data"),
                        help="output folder: datasets OUT/piano and OUT/digits, audio under OUT/raw_audio "
                             "(default: %(default)s)")
    parser.add_argument("--only", choices=KINDS, help="make only the piano or only the digits dataset")
    parser.add_argument("--hours", type=float, default=4.0,
                        help="piano audio to render, in hours (default: %(default)s, about YouTubeMix's size)")
    parser.add_argument("--digits", type=int, default=20000, help="spoken-digit clips to make (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the digit synthesis and its split (default: 0)")
    parser.add_argument("--workers", type=int, help="processes (default: the usable CPU cores)")
    parser.add_argument("--install", action="store_true",
                        help="install missing Debian tools with apt-get (needs root); otherwise they are reported")
    parser.add_argument("--force", action="store_true", help="make the audio and datasets again even if up to date")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args) -> int:
    kinds = (args.only,) if args.only else KINDS
    with file_progress(disable=args.no_progress) as bar:
        results = make_examples(args.out, kinds, hours=args.hours, digits=args.digits, seed=args.seed,
                                workers=args.workers, install=args.install, force=args.force,
                                progress=phase_callback(bar))
    for kind, result in results.items():
        print(f"{kind}: {summary(result)}")
    return 0
