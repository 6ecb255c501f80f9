"""The DNA example datasets, built from real genomes in Debian example packages (``examples dna``).

``hg_small`` (kind ``dna``)
    GRCh37 chromosome 20, complete (vt-examples, BGZF), and chromosome X 0-70 Mb (smalt-examples, plain
    gzip); the last ``held_out_bases`` (5 Mb) of chr20 are held out, first half valid, second half test.
``apes4`` (kind ``species``)
    The Ensembl Compara EPO alignment of human chr22 with chimpanzee, gorilla and orangutan
    (maffilter-examples), split by human coordinate: valid 40-45 Mb, test from 45 Mb, train below 40 Mb.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from mamba_bio_audio.data_prep.examples.debian import package_file
from mamba_bio_audio.data_prep.datasets.prepare_dna import DnaPrepareResult, ProgressFn, prepare_dna
from mamba_bio_audio.data_prep.datasets.prepare_species import prepare_species_maf


@dataclass(frozen=True)
class PackageFile:
    package: str
    path: str


CHR20 = PackageFile("vt-examples", "usr/share/doc/vt/examples/ref/20.fa.gz")
CHR20_FAI = PackageFile("vt-examples", "usr/share/doc/vt/examples/ref/20.fa.gz.fai")
CHRX = PackageFile("smalt-examples", "usr/share/doc/smalt/test/data/hs37chrXtrunc.fa.gz")
APES_MAF = PackageFile("maffilter-examples", "usr/share/doc/maffilter/examples/Gorilla/"
                       "Compara.epo_5_catarrhini_hsap-projected.chr22.subset.nogap.cleaned_aln.maf.gz")
APES_SPECIES = {"Hsap": "human", "Ptro": "chimpanzee", "Ggor": "gorilla", "Ppyg": "orangutan"}
APES_HELD_OUT = {"valid": ["22:40000000-45000000"], "test": ["22:45000000-"]}
HELD_OUT_BASES = 5_000_000
FILES = {"hg_small": (CHR20, CHR20_FAI, CHRX), "apes4": (APES_MAF,)}
NAMES = tuple(FILES)

HG_SMALL_NOTES = (
    "Not hg38. GRCh37 (hg19) chromosome 20 complete (63,025,520 bp; Debian vt-examples) and chromosome X "
    "0-70 Mb (69,999,930 bp; smalt-examples): about 133 Mb of which about 126 Mb non-N, against about 3.1 Gb "
    "of hg38 (4.5 billion training tokens) in the Mamba paper. Older assembly, two chromosomes, and its own "
    "split instead of the Enformer/HyenaDNA intervals: train = chrX part + chr20 up to its last 5 Mb; the last "
    "5 Mb of chr20 are held out, first half valid, second half test.")
APES4_NOTES = (
    "Not the paper's five Great Apes. Ensembl Compara EPO catarrhini alignment of human chromosome 22 "
    "(GRCh37 17.4-51.2 Mb; Debian maffilter-examples): 4 species (human, chimpanzee, gorilla, orangutan; no "
    "bonobo, which no package ships), chromosome 22 only instead of whole genomes, and only aligned "
    "(orthologous) sequence with gaps removed, so a window asks 'same locus, which ape?': harder and cleaner "
    "than whole-genome sampling. Split by human coordinate so no locus is in two splits: train < 40 Mb, "
    "valid 40-45 Mb, test >= 45 Mb; blocks straddling a boundary are dropped.")

Locate = Callable[[PackageFile], Path]


def _fai_length(fai: Path, name: str) -> int:
    for line in fai.read_text().splitlines():
        fields = line.split("\t")
        if fields[0] == name:
            return int(fields[1])
    raise ValueError(f"{fai}: no entry for sequence {name!r}")


def prepare_hg_small(out: Path, locate: Locate, held_out_bases: int = HELD_OUT_BASES, workers: int = 0,
                     force: bool = False, progress: ProgressFn | None = None) -> DnaPrepareResult:
    length = _fai_length(locate(CHR20_FAI), "20")
    start, mid = length - held_out_bases, length - held_out_bases // 2
    held_out = {"valid": [f"20:{start}-{mid}"], "test": [f"20:{mid}-{length}"]}
    return prepare_dna([locate(CHR20), locate(CHRX)], out, held_out=held_out, workers=workers, force=force,
                       notes=HG_SMALL_NOTES, progress=progress)


def prepare_apes4(out: Path, locate: Locate, force: bool = False,
                  progress: ProgressFn | None = None) -> DnaPrepareResult:
    return prepare_species_maf(locate(APES_MAF), out, species=APES_SPECIES, reference="Hsap",
                               held_out=APES_HELD_OUT, force=force, notes=APES4_NOTES, progress=progress)


def debian_locator(cache: Path | None = None, system_root: Path = Path("/")) -> Locate:
    """Find package files where installed, else in ``cache`` (fetched on first use)."""
    return lambda f: package_file(f.package, f.path, cache=cache, system_root=system_root)
