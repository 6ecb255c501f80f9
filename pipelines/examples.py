"""``mamba-bio-audio examples dna|audio``: fetch and prepare the example datasets."""
from __future__ import annotations

import argparse
import importlib

KINDS = {
    "dna": ("examples_dna", "hg_small (GRCh37 chr20 + chrX part) and apes4 (chr22 EPO alignment) from Debian packages"),
    "audio": ("examples_audio", "piano renders of the music21 corpus and synthetic spoken digits"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="kind", metavar="KIND")
    sub.required = True
    for name, (module, help_text) in KINDS.items():
        kind_parser = sub.add_parser(name, help=help_text, description=help_text)
        command = importlib.import_module(f"mamba_bio_audio.pipelines.{module}")
        command.add_arguments(kind_parser)
        kind_parser.set_defaults(kind_run=command.run)


def run(args) -> int:
    return args.kind_run(args)
