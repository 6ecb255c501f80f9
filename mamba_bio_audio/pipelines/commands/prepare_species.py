"""``mamba-bio-audio prepare-species``: per-species genomes or a MAF alignment to a species dataset.

    mamba-bio-audio prepare-species --genome human=hs1.fa.gz --genome mouse=mm39.fa.gz --out data/species
    mamba-bio-audio prepare-species --genome ecoli=ecoli.fa --genome yeast=sc.fa.gz \\
        --valid-region ecoli=chr:3000000-3500000 --test-region ecoli=chr:4000000- --margin 65536 ...
    mamba-bio-audio prepare-species --maf chr22.maf.gz --species Hsap=human --species Ptro=chimpanzee \\
        --valid 22:40000000-45000000 --test 22:45000000- --out data/apes
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from mamba_bio_audio.atomic import folder_lock
from mamba_bio_audio.data_prep.datasets.prepare_species import HYENA_TEST, HYENA_VALID, prepare_species_genomes, prepare_species_maf
from mamba_bio_audio.pipelines.commands.data_progress import byte_progress
from mamba_bio_audio.pipelines.commands.shared import add_policy_arguments, clean_os_errors, cli_spellings, dna_summary


def _pairs(values: list[str], option: str) -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key or not rest:
            raise ValueError(f"{option} takes KEY=VALUE; got {value!r}")
        pairs.append((key, rest))
    return pairs


def _chroms(text: str) -> list[str]:
    return [c for c in (s.strip() for s in text.split(",")) if c]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="dataset folder to write")
    genomes = parser.add_argument_group("from genomes (split by chromosome)")
    genomes.add_argument("--genome", action="append", default=[], metavar="SPECIES=FASTA",
                         help="a FASTA of a species (plain, gzip or BGZF); repeat per species and per file")
    genomes.add_argument("--valid-chroms", type=_chroms, default=list(HYENA_VALID), metavar="LIST",
                         help="comma-separated chromosomes for valid (default: HyenaDNA's %(default)s)")
    genomes.add_argument("--test-chroms", type=_chroms, default=list(HYENA_TEST), metavar="LIST",
                         help="comma-separated chromosomes for test (default: HyenaDNA's %(default)s)")
    genomes.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                         help="leave out sequences whose name matches, e.g. 'chrUn*'; repeatable")
    genomes.add_argument("--valid-region", action="append", default=[], metavar="SPECIES=NAME:START-END",
                         help="hold out a range (0-based, half-open; END may be left out) of one of the species' "
                              "sequences for valid; the rest of that sequence is train; repeatable")
    genomes.add_argument("--test-region", action="append", default=[], metavar="SPECIES=NAME:START-END",
                         help="the same for test")
    genomes.add_argument("--margin", type=int, default=0, metavar="BASES",
                         help="bases left out of train each side of every held-out range, so that no training "
                              "window neighbours a held-out one; the longest window is a good choice (default: 0)")
    genomes.add_argument("--window", type=int, default=1024, metavar="BASES",
                         help="the longest window the dataset is for: shorter sequences are left out, and a species "
                              "without one that long in a split is an error (default: %(default)s)")
    maf = parser.add_argument_group("from a MAF alignment (split by locus of the reference)")
    maf.add_argument("--maf", type=Path, help="MAF file (plain or gzip)")
    maf.add_argument("--species", action="append", default=[], metavar="PREFIX=NAME",
                     help="MAF source prefix (Hsap of Hsap.22) to species name, in label order; repeatable")
    maf.add_argument("--reference", help="prefix whose coordinates place the blocks (default: the first --species)")
    maf.add_argument("--valid", action="append", default=[], metavar="NAME:START-END",
                     help="reference range (0-based, half-open) for valid; repeatable")
    maf.add_argument("--test", action="append", default=[], metavar="NAME:START-END",
                     help="reference range for test; repeatable")
    add_policy_arguments(parser)


def run(args) -> int:
    if bool(args.genome) == bool(args.maf):
        raise ValueError("give either --genome SPECIES=FASTA ... or --maf FILE --species PREFIX=NAME ...")
    if args.maf and (args.valid_region or args.test_region):
        raise ValueError("--valid-region / --test-region split genomes; a MAF is split with --valid / --test")
    policy = {"case": args.case, "iupac": args.iupac, "unknown": args.unknown}
    started = time.perf_counter()
    with (clean_os_errors(args.out), folder_lock(args.out), cli_spellings(),
          byte_progress("prepare-species", args.quiet) as progress):
        if args.maf:
            if not args.species:
                raise ValueError("--maf needs --species PREFIX=NAME for each species to keep")
            held_out = {k: v for k, v in (("valid", args.valid), ("test", args.test)) if v}
            result = prepare_species_maf(args.maf, args.out, species=dict(_pairs(args.species, "--species")),
                                         reference=args.reference, held_out=held_out, force=args.force,
                                         progress=progress, **policy)
        else:
            genomes: dict[str, list[Path]] = {}
            for name, fasta in _pairs(args.genome, "--genome"):
                genomes.setdefault(name, []).append(Path(fasta))
            held_out: dict[str, dict[str, list[str]]] = {}
            for split, option in (("valid", "--valid-region"), ("test", "--test-region")):
                for name, region in _pairs(getattr(args, f"{split}_region"), option):
                    held_out.setdefault(name, {}).setdefault(split, []).append(region)
            result = prepare_species_genomes(genomes, args.out, valid_chroms=args.valid_chroms,
                                             test_chroms=args.test_chroms, held_out=held_out or None,
                                             margin=args.margin, window=args.window, exclude=args.exclude,
                                             workers=args.workers, force=args.force, progress=progress, **policy)
    print(dna_summary(result, started))
    return 0
