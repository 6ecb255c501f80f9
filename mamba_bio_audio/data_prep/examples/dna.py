"""The DNA example datasets, built from real genomes in Debian example packages (``examples dna``).

``hg_small`` (kind ``dna``)
    GRCh37 chromosome 20, complete (vt-examples, BGZF), and chromosome X 0-70 Mb (smalt-examples, plain
    gzip); the last ``held_out_bases`` (5 Mb) of chr20 are held out, first half valid, second half test.
``species5`` (kind ``species``)
    The genomes of five species, each from its own sequence: human (GRCh37 chr20, vt-examples), the amoeba
    Dictyostelium discoideum (spaln-data), the malaria parasites Plasmodium falciparum and P. knowlesi and the
    bacterium Streptococcus suis (smalt-examples). Held out by chromosome (or, for S. suis and human, by a
    region at the end of the sequence), with a margin of ``SPECIES5_MARGIN`` bases between a held-out range
    and training sequence; sequences shorter than ``SPECIES5_WINDOW`` are left out.
``apes4`` (kind ``species``)
    The Ensembl Compara EPO alignment of human chr22 with chimpanzee, gorilla and orangutan
    (maffilter-examples), split by human coordinate: valid 40-45 Mb, test from 45 Mb, train below 40 Mb. Every
    species' windows come from the same aligned loci, so a window carries next to no species signal: a check
    that a pipeline does not leak across the split.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from mamba_bio_audio.data_prep.examples.debian import package_file
from mamba_bio_audio.data_prep.datasets.prepare_dna import DnaPrepareResult, ProgressFn, prepare_dna
from mamba_bio_audio.data_prep.datasets.prepare_species import prepare_species_genomes, prepare_species_maf


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
DICTY = PackageFile("spaln-data", "usr/share/spaln/seqdb/dictdisc_g.gf.gz")
FALCIPARUM = PackageFile("smalt-examples", "usr/share/doc/smalt/test/data/genome_1.fa.gz")
KNOWLESI = PackageFile("smalt-examples", "usr/share/doc/smalt/test/data/cigar_ref.fa.gz")
SUIS = PackageFile("smalt-examples", "usr/share/doc/smalt/test/data/sequence_test_1.fa.gz")
SUIS_RECORD, SUIS_VALID, SUIS_TEST = "suis240c08.q1k", 1_500_000, 1_750_000
# species -> (its FASTA, its held-out sequences or ranges); human's are hg_small's valid and test ranges
SPECIES5 = {
    "human": (CHR20, None),
    "D. discoideum": (DICTY, {"valid": ["Dictdisc6"], "test": ["Dictdisc5"]}),
    "P. falciparum": (FALCIPARUM, {"valid": ["MAL13"], "test": ["MAL14"]}),
    "P. knowlesi": (KNOWLESI, {"valid": ["Pk.12.1", "Pk.12.2", "Pk.12.3"], "test": ["Pk.14.1", "Pk.14.2"]}),
    "S. suis": (SUIS, {"valid": [f"{SUIS_RECORD}:{SUIS_VALID}-{SUIS_TEST}"], "test": [f"{SUIS_RECORD}:{SUIS_TEST}-"]}),
}
SPECIES5_EXCLUDE = ("Pk.12.*", "Pk.14.*")  # the other contigs of the held-out P. knowlesi chromosomes
SPECIES5_WINDOW = 32768   # the longest window of `bench species`: no window of any length is padding
SPECIES5_MARGIN = 65536   # two such windows between a held-out range and training sequence
FILES = {"hg_small": (CHR20, CHR20_FAI, CHRX), "species5": (CHR20, CHR20_FAI, DICTY, FALCIPARUM, KNOWLESI, SUIS),
         "apes4": (APES_MAF,)}
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
    "valid 40-45 Mb, test >= 45 Mb; blocks straddling a boundary are dropped. Every species' windows come from "
    "the same loci: a single window carries next to no species signal (a leak check, see docs/dna_data.md).")
SPECIES5_NOTES = (
    "Not the paper's Great Apes: five species far apart, each window from the species' own genome. human: "
    "GRCh37 chr20 (vt-examples; valid and test are hg_small's held-out ranges, the last 5 Mb); "
    "D. discoideum (amoeba): the AX4 assembly's 6 chromosomes (spaln-data; valid chromosome 6, test 5); "
    "P. falciparum (malaria parasite): 14 chromosomes (smalt-examples genome_1; valid MAL13, test MAL14); "
    "P. knowlesi (malaria parasite): contigs Pk.<chromosome>.<n> (smalt-examples cigar_ref; valid chromosome "
    "12's three largest contigs, test chromosome 14's two, the other contigs of 12 and 14 left out); S. suis "
    "(bacterium, 2.0 Mb, smalt-examples sequence_test_1; valid 1.50-1.75 Mb, test from 1.75 Mb). Training "
    "sequence stops 65,536 bases short of every held-out range; sequences under 32,768 bases are left out, so "
    "windows up to that length are never padded. The species differ in base composition (GC 20 % to 45 %), "
    "which a k-mer spectrum already reads: the quickstart and `bench species` report the k-mer classifier on "
    "the same test windows.")

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


def prepare_apes4(out: Path, locate: Locate, workers: int = 0, force: bool = False,
                  progress: ProgressFn | None = None) -> DnaPrepareResult:
    """``workers`` is for the same call shape as the others: a MAF is read as one stream."""
    return prepare_species_maf(locate(APES_MAF), out, species=APES_SPECIES, reference="Hsap",
                               held_out=APES_HELD_OUT, force=force, notes=APES4_NOTES, progress=progress)


def prepare_species5(out: Path, locate: Locate, workers: int = 0, force: bool = False,
                     progress: ProgressFn | None = None) -> DnaPrepareResult:
    length = _fai_length(locate(CHR20_FAI), "20")
    start, mid = length - HELD_OUT_BASES, length - HELD_OUT_BASES // 2
    genomes = {name: [locate(package_file)] for name, (package_file, _) in SPECIES5.items()}
    held_out = {name: ranges for name, (_, ranges) in SPECIES5.items() if ranges}
    held_out["human"] = {"valid": [f"20:{start}-{mid}"], "test": [f"20:{mid}-{length}"]}
    return prepare_species_genomes(genomes, out, valid_chroms=(), test_chroms=(), held_out=held_out,
                                   margin=SPECIES5_MARGIN, window=SPECIES5_WINDOW, exclude=list(SPECIES5_EXCLUDE),
                                   workers=workers, force=force, notes=SPECIES5_NOTES, progress=progress)


PREPARE = {"hg_small": prepare_hg_small, "species5": prepare_species5, "apes4": prepare_apes4}


def debian_locator(cache: Path | None = None, system_root: Path = Path("/")) -> Locate:
    """Find package files where installed, else in ``cache`` (fetched on first use)."""
    return lambda f: package_file(f.package, f.path, cache=cache, system_root=system_root)
