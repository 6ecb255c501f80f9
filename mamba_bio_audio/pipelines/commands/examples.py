"""``mamba-bio-audio examples dna|audio``: fetch and prepare the example datasets.

``dna``: real genomes from Debian example packages, prepared as ``hg_small``, ``species5`` and ``apes4`` (see
:mod:`mamba_bio_audio.data_prep.examples.dna` and docs/dna_data.md). ``audio``: piano renders of the music21 corpus
and synthetic spoken digits, made offline from Debian and PyPI packages as 8-bit mu-law datasets (see
:mod:`mamba_bio_audio.data_prep.examples.audio`).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from mamba_bio_audio.atomic import folder_lock
from mamba_bio_audio.data_prep.datasets.prepared import check_dataset_folder
from mamba_bio_audio.data_prep.examples.audio import AUDIO_EXAMPLES, make_examples
from mamba_bio_audio.data_prep.examples.dna import FILES, NAMES, PREPARE, debian_locator
from mamba_bio_audio.pipelines.commands.data_progress import byte_progress, file_progress, phase_callback
from mamba_bio_audio.pipelines.commands.shared import add_progress_argument, audio_summary, clean_os_errors, dna_summary


def _add_dna_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("data"), help="folder for the datasets (default: ./data)")
    parser.add_argument("--cache", type=Path, default=None,
                        help="folder for unpacked Debian packages (default: ~/.cache/mamba-bio-audio/debian); "
                             "packages installed under /usr/share/doc are read in place")
    parser.add_argument("--only", choices=NAMES, action="append", help="prepare only this dataset; repeatable")
    parser.add_argument("--workers", type=int, default=0, help="tokenising processes (default: up to 4 usable cores)")
    parser.add_argument("--force", action="store_true", help="prepare again even if up to date")
    add_progress_argument(parser)


def _run_dna(args) -> int:
    names = args.only or NAMES
    for name in names:  # before any fetch: a target that is not a dataset is refused at once
        check_dataset_folder(args.out / name)
    locate = debian_locator(args.cache)
    for name in names:
        out = args.out / name
        with clean_os_errors(out), folder_lock(out):  # one writer of each dataset at a time
            for f in FILES[name]:  # fetch first, so the timing below is the preparation's
                locate(f)
            started = time.perf_counter()
            with byte_progress(name, args.quiet) as progress:
                result = PREPARE[name](out, locate, workers=args.workers, force=args.force, progress=progress)
        print(dna_summary(result, started))
    return 0


def _add_audio_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("data"),
                        help="output folder: datasets OUT/piano and OUT/digits, audio under OUT/raw_audio "
                             "(default: %(default)s)")
    parser.add_argument("--only", choices=AUDIO_EXAMPLES, help="make only the piano or only the digits dataset")
    parser.add_argument("--hours", type=float, default=4.0,
                        help="piano audio to render, in hours (default: %(default)s, about YouTubeMix's size)")
    parser.add_argument("--digits", type=int, default=20000, help="spoken-digit clips to make (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the digit synthesis and its split (default: 0)")
    parser.add_argument("--workers", type=int, help="processes (default: the usable CPU cores)")
    parser.add_argument("--install", action="store_true",
                        help="install missing Debian tools with apt-get (needs root); otherwise they are reported")
    parser.add_argument("--force", action="store_true", help="make the audio and datasets again even if up to date")
    add_progress_argument(parser, dest="no_progress")


def _run_audio(args) -> int:
    kinds = (args.only,) if args.only else AUDIO_EXAMPLES
    with file_progress(disable=args.no_progress) as bar:
        results = make_examples(args.out, kinds, hours=args.hours, digits=args.digits, seed=args.seed,
                                workers=args.workers, install=args.install, force=args.force,
                                progress=phase_callback(bar))
    for kind, result in results.items():
        print(f"{kind}: {audio_summary(result)}{skipped_note(result.path)}")
    return 0


def skipped_note(dataset: Path) -> str:
    """``; 3 corpus scores skipped (...)`` when the example's manifest lists skipped sources, else ``""``."""
    from mamba_bio_audio.data_prep.datasets.prepared import PreparedDataset

    skipped = PreparedDataset(dataset).manifest.get("example", {}).get("skipped") or []
    what = "1 source" if len(skipped) == 1 else f"{len(skipped)} sources"
    return (f"; {what} skipped while making it (music21 or a synthesiser could not render it; each is listed with "
            f"the reason in {Path(dataset) / 'manifest.json'}, 'example.skipped')") if skipped else ""


# kind -> (help, add_arguments, run)
EXAMPLE_SETS = {
    "dna": ("hg_small (GRCh37 chr20 + chrX part), species5 (five species' genomes) and apes4 (chr22 EPO "
            "alignment, a leak check) from Debian packages",
            _add_dna_arguments, _run_dna),
    "audio": ("piano renders of the music21 corpus and synthetic spoken digits", _add_audio_arguments, _run_audio),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="kind", metavar="KIND")
    sub.required = True
    for name, (help_text, add, run_kind) in EXAMPLE_SETS.items():
        kind_parser = sub.add_parser(name, help=help_text, description=help_text)
        add(kind_parser)
        kind_parser.set_defaults(kind_run=run_kind)


def run(args) -> int:
    return args.kind_run(args)
