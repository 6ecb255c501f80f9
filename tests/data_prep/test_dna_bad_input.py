"""Bad input: each case gives a clear error and leaves no dataset (nor temporary leftovers) behind."""
import gzip
import os

import numpy as np
import pytest

from mamba_bio_audio.data_prep.datasets import dna_layout
from mamba_bio_audio.data_prep.datasets.prepare_dna import prepare_dna
from mamba_bio_audio.data_prep.datasets.prepared import PreparedDataset
from mamba_bio_audio.pipelines.cli import main


def fails(tmp_path, dna, inputs, match, error=ValueError, **kwargs):
    """prepare_dna must raise ``error`` matching ``match`` and leave ``tmp_path`` as it was."""
    before = dna.entries(tmp_path)
    with pytest.raises(error, match=match):
        prepare_dna(inputs, tmp_path / "out", **kwargs)
    assert dna.entries(tmp_path) == before


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"])
def test_empty_file(tmp_path, dna, content):
    (tmp_path / "empty.fa").write_bytes(content)
    fails(tmp_path, dna, [tmp_path / "empty.fa"], r"empty.fa: no FASTA records")


def test_empty_gzip(tmp_path, dna):
    (tmp_path / "empty.fa.gz").write_bytes(gzip.compress(b""))
    fails(tmp_path, dna, [tmp_path / "empty.fa.gz"], r"no FASTA records")


def test_no_header(tmp_path, dna):
    (tmp_path / "x.fa").write_bytes(b"\nACGT\n>a\nAC\n")
    fails(tmp_path, dna, [tmp_path / "x.fa"], r"x.fa, line 2, column 1: not FASTA: sequence data before")


def test_header_without_name(tmp_path, dna):
    (tmp_path / "x.fa").write_bytes(b">a\nAC\n> \nAC\n")
    fails(tmp_path, dna, [tmp_path / "x.fa"], r"line 3, column 1: header line has no sequence name")


def test_duplicate_names(tmp_path, dna):
    dna.write_fasta(tmp_path / "a.fa", [("chr1", "ACGT"), ("chr2", "AC")])
    dna.write_fasta(tmp_path / "b.fa", [("chrM", "AC"), ("chr1 again", "GG")])
    fails(tmp_path, dna, [tmp_path / "a.fa", tmp_path / "b.fa"],
          r"duplicate sequence name 'chr1': .*a.fa, line 1, column 1 and .*b.fa, line 3, column 1")


@pytest.mark.parametrize("compress", [None, "gzip", "bgzf"])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_invalid_character_line_and_column(tmp_path, dna, compress, newline):
    seq = "ACGT" * 30
    seq = seq[:70] + "X" + seq[71:]  # width 60: line 2 (after the header) holds bases 60..119
    path = dna.write_fasta(tmp_path / "bad.fa", [("ok", "ACGTN" * 20), ("bad", seq)], newline=newline,
                           compress=compress)
    fails(tmp_path, dna, [path], r"bad.fa, line 6, column 11: unknown character 'X'")


def test_invalid_policies_follow_the_tokenizer(tmp_path, dna):
    path = dna.write_fasta(tmp_path / "x.fa", [("a", "ACGTacgt"), ("b", "ACRT")])
    fails(tmp_path, dna, [path], r"line 2, column 5: lowercase", case="strict")
    fails(tmp_path, dna, [path], r"line 4, column 3: IUPAC ambiguity code 'R'", iupac="error")


def test_unreadable_paths(tmp_path, dna):
    fails(tmp_path, dna, [tmp_path / "missing.fa"], r"FASTA file not found: .*missing.fa", error=FileNotFoundError)
    (tmp_path / "folder.fa").mkdir()
    fails(tmp_path, dna, [tmp_path / "folder.fa"], r"folder.fa is not a regular file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_permissions(tmp_path, dna):
    path = dna.write_fasta(tmp_path / "x.fa", [("a", "AC")])
    path.chmod(0)
    fails(tmp_path, dna, [path], r"cannot be read: Permission denied")


def test_corrupt_gzip(tmp_path, dna):
    data = gzip.compress(dna.fasta_text([("a", "ACGT" * 5000)]).encode())
    (tmp_path / "cut.fa.gz").write_bytes(data[: len(data) // 2])
    fails(tmp_path, dna, [tmp_path / "cut.fa.gz"], r"cut.fa.gz: corrupt or truncated compressed data")


def test_bed_interval_past_the_end(tmp_path, dna):
    dna.write_fasta(tmp_path / "g.fa", [("chr1", "ACGT" * 10)])
    (tmp_path / "r.bed").write_text("chr1\t0\t10\ttrain\nchr1\t30\t41\tvalid\n")
    fails(tmp_path, dna, [tmp_path / "g.fa"], r"r.bed, line 2: interval chr1:30-41 ends past the end of sequence "
                                             r"'chr1' \(length 40\)", bed=tmp_path / "r.bed")


def test_bed_name_missing(tmp_path, dna):
    dna.write_fasta(tmp_path / "g.fa", [("chr1", "ACGT" * 10)])
    (tmp_path / "r.bed").write_text("# header\nchr1\t0\t10\ttrain\nchr2\t0\t5\ttest\n")
    fails(tmp_path, dna, [tmp_path / "g.fa"], r"not in the FASTA file\(s\): chr2 \(.*r.bed, line 3\)",
          bed=tmp_path / "r.bed")


@pytest.mark.parametrize("line, match", [("chr1\t0\t10", "expected at least 4 columns"), ("chr1\tx\t10\ttrain", "integers"),
                                         ("chr1\t10\t10\ttrain", "start < end"), ("chr1\t0\t10\tva-lid", "identifier")])
def test_malformed_bed(tmp_path, dna, line, match):
    dna.write_fasta(tmp_path / "g.fa", [("chr1", "ACGT" * 10)])
    (tmp_path / "r.bed").write_text(line + "\n")
    fails(tmp_path, dna, [tmp_path / "g.fa"], f"r.bed, line 1: .*{match}", bed=tmp_path / "r.bed")


def test_held_out_name_missing_or_past_the_end(tmp_path, dna):
    dna.write_fasta(tmp_path / "g.fa", [("chr1", "ACGT" * 10)])
    fails(tmp_path, dna, [tmp_path / "g.fa"], r"not in the FASTA file\(s\): chr9", held_out={"test": ["chr9"]})
    fails(tmp_path, dna, [tmp_path / "g.fa"], r"held-out range chr1:30-50 \(valid\) lies past the end",
          held_out={"valid": ["chr1:30-50"]})


def test_plain_gzip_where_random_access_is_needed(tmp_path, dna):
    path = dna.write_fasta(tmp_path / "g.fa.gz", [("chr1", "ACGT" * 10)], compress="gzip")
    (tmp_path / "r.bed").write_text("chr1\t0\t10\ttrain\n")
    fails(tmp_path, dna, [path], r"g.fa.gz is plain gzip, which cannot be read at random positions.*bgzip",
          bed=tmp_path / "r.bed", access="index")


def _failing_add(monkeypatch, after: int):
    """Make the sink's ``add`` fail with ENOSPC on call number ``after + 1``."""
    calls = {"n": 0}
    real_add = dna_layout.SplitSink.add

    def add(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > after:
            raise OSError(28, "No space left on device")
        return real_add(self, *args, **kwargs)

    monkeypatch.setattr(dna_layout.SplitSink, "add", add)


def test_write_failing_half_way_leaves_nothing(tmp_path, dna, monkeypatch):
    fasta = dna.write_fasta(tmp_path / "g.fa", [(f"s{i}", "ACGT" * 50) for i in range(6)])
    _failing_add(monkeypatch, after=3)
    fails(tmp_path, dna, [fasta], "No space left on device", error=OSError)


def test_write_failing_keeps_the_previous_dataset(tmp_path, dna, monkeypatch):
    fasta = dna.write_fasta(tmp_path / "g.fa", [(f"s{i}", "ACGT" * 50) for i in range(6)])
    prepare_dna([fasta], tmp_path / "out")
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    _failing_add(monkeypatch, after=2)
    fails(tmp_path, dna, [fasta], "No space left on device", error=OSError, force=True)
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == before
    assert PreparedDataset(tmp_path / "out").split("train").info["records"] == 6


def test_cli_reports_one_line_errors(tmp_path, dna, monkeypatch, capsys):
    bad = dna.write_fasta(tmp_path / "bad.fa", [("a", "ACXT")])
    assert main(["prepare-dna", str(bad), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mamba-bio-audio prepare-dna: error:") and "line 2, column 3" in err and "\n" not in err
    good = dna.write_fasta(tmp_path / "good.fa", [("a", "ACGT")])
    _failing_add(monkeypatch, after=0)
    assert main(["prepare-dna", str(good), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "No space left on device" in err and "was left as it was" in err
    assert not (tmp_path / "o").exists()
    assert np.all([not p.name.startswith(".") for p in tmp_path.iterdir()])


def test_header_marker_inside_a_line(tmp_path, dna):
    (tmp_path / "x.fa").write_bytes(b">a\nACGT>AC\n>b\nAC\n")
    fails(tmp_path, dna, [tmp_path / "x.fa"], r"line 2, column 5: unknown character '>'")


def test_invalid_character_with_index_access(tmp_path, dna):
    (tmp_path / "src").mkdir()  # pyfaidx writes its .fai beside the FASTA
    path = dna.write_fasta(tmp_path / "src" / "x.fa", [("a", "ACGT" * 40), ("b", "ACGT" * 20 + "AXGT")], width=50)
    (tmp_path / "src" / "r.bed").write_text("a\t0\t10\ttrain\nb\t70\t84\ttest\n")
    fails(tmp_path, dna, [path], r"x.fa, line 8, column 32: unknown character 'X'", bed=tmp_path / "src" / "r.bed",
          access="index")


@pytest.mark.parametrize("stale_index", [False, True], ids=["indexed-now", "index-of-the-whole-file"])
def test_truncated_bgzf_with_index_access(tmp_path, dna, rng, stale_index):
    (tmp_path / "src").mkdir()  # pyfaidx writes its .fai and .gzi beside the FASTA
    records = [("chr1", dna.random_dna(rng, 100_000)), ("chr2", dna.random_dna(rng, 100_000))]
    path = dna.write_fasta(tmp_path / "src" / "g.fa.gz", records, compress="bgzf")
    (tmp_path / "src" / "r.bed").write_text("chr1\t0\t1000\ttrain\nchr2\t90000\t99000\ttest\n")
    data = path.read_bytes()
    if stale_index:  # the index was made from the whole file, which was cut short later (an older copy put back)
        prepare_dna([path], tmp_path / "src" / "ok", bed=tmp_path / "src" / "r.bed", access="index")
        assert (tmp_path / "src" / "g.fa.gz.fai").is_file() and (tmp_path / "src" / "g.fa.gz.gzi").is_file()
    path.write_bytes(data[: len(data) * 2 // 3])
    if stale_index:
        os.utime(path, (1e9, 1e9))  # older than its index, so pyfaidx keeps the index
    fails(tmp_path, dna, [path], r"g.fa.gz: corrupt or truncated compressed data", bed=tmp_path / "src" / "r.bed",
          access="index")
