"""Splits that cannot leak: BED intervals of two splits sharing bases, malformed MAF rows and a species missing
from a split are refused through the command line, naming file and line(s), and leave nothing behind."""
import re

import numpy as np
import pytest

from mamba_bio_audio.data_prep.datasets.prepared import PreparedDataset
from mamba_bio_audio.pipelines.cli import main


def _refused(capsys, tmp_path, dna, argv) -> str:
    """Run the CLI, expect exit 2 and no new entry in tmp_path; return the one-line error."""
    before = dna.entries(tmp_path)
    assert main(argv + ["--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert dna.entries(tmp_path) == before
    return err


@pytest.mark.parametrize("lines, first, second", [
    (["chr1\t0\t100\ttrain", "chr2\t0\t50\ttrain", "chr1\t90\t150\ttest"], 1, 3),  # partial overlap
    (["chr1\t200\t300\tvalid", "chr1\t0\t400\ttrain"], 1, 2),  # one inside the other, listed after it
    (["chr1\t10\t20\ttest", "chr1\t10\t11\tvalid"], 1, 2),  # same start
])
def test_bed_intervals_of_two_splits_overlapping(tmp_path, dna, capsys, lines, first, second):
    fasta = dna.write_fasta(tmp_path / "g.fa", [("chr1", "ACGT" * 100), ("chr2", "ACGT" * 20)])
    (tmp_path / "r.bed").write_text("\n".join(["# chrom start end split", *lines]) + "\n")
    err = _refused(capsys, tmp_path, dna, ["prepare-dna", str(fasta), "--bed", str(tmp_path / "r.bed"),
                                           "--out", str(tmp_path / "out")])
    assert f"r.bed, line {first + 1} and line {second + 1}: intervals" in err and "overlap" in err


def test_bed_intervals_touching_or_overlapping_within_a_split_are_kept(tmp_path, dna, tok):
    rng = np.random.default_rng(0)
    seq = dna.random_dna(rng, 400)
    fasta = dna.write_fasta(tmp_path / "g.fa", [("chr1", seq)])
    # train 0-100 and 50-150 overlap (one split: merged); valid 150-200 touches train (half-open: no shared base)
    (tmp_path / "r.bed").write_text("chr1\t0\t100\ttrain\nchr1\t50\t150\ttrain\nchr1\t150\t200\tvalid\n")
    assert main(["prepare-dna", str(fasta), "--bed", str(tmp_path / "r.bed"), "--out", str(tmp_path / "out"),
                 "--quiet"]) == 0
    ds = PreparedDataset(tmp_path / "out")
    np.testing.assert_array_equal(ds.split("train").record(0), tok.encode(seq[0:150], dtype=np.uint8))
    np.testing.assert_array_equal(ds.split("valid").record(0), tok.encode(seq[150:200], dtype=np.uint8))


MAF = ["##maf version=1", "a score=1", "s Hsap.22 100 6 + 1000 ACGTAC", "s Ptro.22 10 5 + 500 ACG-AC", ""]


@pytest.mark.parametrize("row, line, match", [
    ("s Ptro.22 10 6 + 500 ACG-AC", 4, r"size 6 of Ptro.22 does not match its text, which holds 5 bases"),
    ("s Ptro.22 497 5 + 500 ACG-AC", 4, r"start 497 \+ size 5 of Ptro.22 lies past its srcSize 500"),
    ("s Ptro.22 -3 5 + 500 ACG-AC", 4, r"negative start -3"),
    ("s Ptro.22 10 5 + 500 ACG--AC", 4, r"Ptro.22 has 7 columns, line 3 of the same block has 6"),
    ("s Ptro.22 10 5 + 500 ACG-AC\ns Ptro.7 0 5 + 500 ACG-AC", 5, r"species 'Ptro' is already in this block "
                                                                  r"\(line 4\)"),
])
def test_maf_row_faults(tmp_path, dna, capsys, row, line, match):
    maf = tmp_path / "a.maf"
    args = ["prepare-species", "--maf", str(maf), "--species", "Hsap=human", "--species", "Ptro=chimp",
            "--out", str(tmp_path / "out")]
    maf.write_text("\n".join(MAF) + "\n")  # the fault-free file prepares
    assert main(args + ["--quiet"]) == 0
    maf.write_text("\n".join(MAF[:3] + [row] + MAF[4:]) + "\n")
    err = _refused(capsys, tmp_path, dna, args + ["--force"])
    assert f"a.maf, line {line}: " in err
    assert re.search(match, err), err


HUMAN_VALID = "s Hsap.22 4500 4 + 10000 AC-GT"  # inside the valid range 22:4000-5000
CHIMP_VALID = "s Ptro.22 900 4 + 5000 AC-GT"


@pytest.mark.parametrize("chimp_row, match", [
    (None, r"species chimp \(MAF prefix Ptro\) has no aligned bases in split 'valid'"),
    ("s Ptro.22 900 4 + 5000 NN-NN", r"species chimp \(MAF prefix Ptro\) .*every aligned base in split 'valid' is N"),
])
def test_species_missing_from_a_maf_split(tmp_path, dna, capsys, tok, chimp_row, match):
    maf = tmp_path / "a.maf"
    args = ["prepare-species", "--maf", str(maf), "--species", "Hsap=human", "--species", "Ptro=chimp",
            "--valid", "22:4000-5000", "--out", str(tmp_path / "out")]

    def write(chimp):
        maf.write_text("\n".join(MAF[:-1] + ["", "a", HUMAN_VALID] + ([chimp] if chimp else [])) + "\n")

    write(chimp_row)
    err = _refused(capsys, tmp_path, dna, args)
    assert "a.maf" in err and re.search(match, err), err
    write(CHIMP_VALID)  # chimp aligned there too: the same command prepares
    assert main(args + ["--quiet"]) == 0
    valid = PreparedDataset(tmp_path / "out").split("valid")
    assert valid.records[:, 2].tolist() == [0, 1]  # both species, one record each
    np.testing.assert_array_equal(valid.record(1), tok.encode("ACGT", dtype=np.uint8))
