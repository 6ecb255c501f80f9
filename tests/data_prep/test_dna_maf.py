"""MAF reading: rows, strands, gaps, malformed input."""
import pytest

from mamba_bio_audio.data_prep.formats.maf import iter_maf


def test_rows_strands_and_gaps(tmp_path):
    (tmp_path / "a.maf").write_text(
        "##maf version=1\n# comment\n\na score=1\ns Hsap.22 100 5 + 1000 AC-GTA\ni Hsap.22 N 0 C 0\n"
        "s Ptro.22 10 4 - 500 AC--TA\ne Ggor.22 0 10 + 90 I\n\na\ns Hsap.22 200 2 + 1000 GG\n")
    blocks = list(iter_maf(tmp_path / "a.maf"))
    assert [b.number for b in blocks] == [0, 1] and [len(b.rows) for b in blocks] == [2, 1]
    human, chimp = blocks[0].rows
    assert (human.species, human.sequence_name, human.forward_interval()) == ("Hsap", "22", (100, 105))
    assert human.bases() == b"ACGTA"
    assert chimp.forward_interval() == (486, 490) and chimp.bases() == b"ACTA" and chimp.line == 7


def test_not_a_maf(tmp_path):
    (tmp_path / "x.maf").write_text(">fasta\nACGT\n")
    with pytest.raises(ValueError, match="not a MAF file"):
        list(iter_maf(tmp_path / "x.maf"))
    with pytest.raises(FileNotFoundError, match="MAF file not found"):
        list(iter_maf(tmp_path / "missing.maf"))
