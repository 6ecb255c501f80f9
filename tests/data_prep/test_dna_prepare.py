"""prepare-dna: records and sidecars, BED slices equal pyfaidx's, stream = index access, no-op unless forced."""
import json
import shutil

import numpy as np
import pyfaidx
import pytest

from mamba_bio_audio.data_prep.formats import fasta_parts
from mamba_bio_audio.data_prep.datasets.dna_layout import load_intervals, read_records_tsv
from mamba_bio_audio.data_prep.datasets.prepare_dna import prepare_dna
from mamba_bio_audio.data_prep.datasets.prepared import PreparedDataset
from mamba_bio_audio.pipelines.cli import main


def folder_bytes(path):
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def test_held_out_names_and_ranges(tmp_path, genome, tok):
    path, seqs = genome
    prepare_dna([path], tmp_path / "ds", held_out={"valid": ["chr2:1000-3000", "chr3"], "test": ["chr2:3000-"]},
                exclude=["chr4*"])
    ds = PreparedDataset(tmp_path / "ds")
    expected = {"train": [("chr1", 0, 5000), ("chr2", 0, 1000)], "valid": [("chr2", 1000, 3000), ("chr3", 0, 800)],
                "test": [("chr2", 3000, 12345)]}
    assert sorted(ds.split_names) == sorted(expected)
    for split, rows in expected.items():
        s = ds.split(split)
        assert [(r["name"], int(r["start"]), int(r["end"])) for r in read_records_tsv(s.folder, split)] == rows
        for i, (name, a, b) in enumerate(rows):
            np.testing.assert_array_equal(s.record(i), tok.encode(seqs[name][a:b], dtype=np.uint8))
        np.testing.assert_array_equal(load_intervals(s), [[i, 0, b - a] for i, (_, a, b) in enumerate(rows)])
    assert (tmp_path / "ds" / "sequences.tsv").read_text().splitlines() == [
        "name\tlength\tsource", "chr1\t5000\tgenome.fa", "chr2\t12345\tgenome.fa", "chr3\t800\tgenome.fa",
        "chr4\t3001\tgenome.fa"]
    manifest = ds.manifest
    assert manifest["kind"] == "dna" and manifest["tokenizer"]["type"] == "nucleotide"
    assert manifest["sources"][0]["sha256"] and manifest["sources"][0]["role"] == "fasta"
    assert manifest["parameters"]["held_out"]["test"] == ["chr2:3000-"]


@pytest.mark.parametrize("compress", [None, "bgzf"])
def test_bed_slices_equal_pyfaidx(tmp_path, rng, tok, dna, compress):
    seqs = {f"chr{i}": dna.random_dna(rng, n, n_runs=1, lowercase=True) for i, n in enumerate([3000, 7000], 1)}
    fasta = dna.write_fasta(tmp_path / ("g.fa.gz" if compress else "g.fa"), list(seqs.items()), compress=compress)
    rows = [("chr2", 100, 900, "train"), ("chr1", 0, 500, "train"), ("chr2", 850, 1200, "train"),
            ("chr1", 2500, 3000, "test"), ("chr2", 5000, 5001, "valid"), ("chr2", 1300, 2000, "train")]
    bed = tmp_path / "r.bed"
    bed.write_text("track name=x\n" + "".join(f"{c}\t{a}\t{b}\t{s}\n" for c, a, b, s in rows))
    prepare_dna([fasta], tmp_path / "ds", bed=bed, flank=50)
    ds = PreparedDataset(tmp_path / "ds")
    faidx = pyfaidx.Fasta(str(fasta), as_raw=True)
    found = 0
    for split in ds.split_names:
        s = ds.split(split)
        records = read_records_tsv(s.folder, split)
        for rec, a, b in load_intervals(s).tolist():
            name, start = records[rec]["name"], int(records[rec]["start"])
            assert (name, start + a, start + b, split) in rows
            expected = tok.encode(faidx[name][start + a: start + b], dtype=np.uint8)
            np.testing.assert_array_equal(s.record(rec)[a:b], expected)
            found += 1
        for i, r in enumerate(records):  # stored context is the flanked, merged region
            np.testing.assert_array_equal(s.record(i), tok.encode(faidx[r["name"]][int(r["start"]): int(r["end"])],
                                                                  dtype=np.uint8))
    assert found == len(rows)
    train = read_records_tsv(tmp_path / "ds", "train")
    # flanked intervals that overlap or touch merge into one stored record
    assert [(r["name"], r["start"], r["end"]) for r in train] == [("chr1", "0", "550"), ("chr2", "50", "2050")]


def test_index_access_writes_the_same_dataset(tmp_path, genome):
    path, _ = genome
    bed = tmp_path / "r.bed"
    bed.write_text("chr1\t10\t4000\ttrain\nchr2\t0\t12345\tvalid\nchr4\t7\t9\ttest\n")
    prepare_dna([path], tmp_path / "a", bed=bed, flank=3)
    prepare_dna([path], tmp_path / "b", bed=bed, flank=3, access="index")
    assert folder_bytes(tmp_path / "a") == folder_bytes(tmp_path / "b")


def test_parallel_preparation_equals_serial(tmp_path, genome, monkeypatch):
    path, _ = genome
    monkeypatch.setattr(fasta_parts, "SERIAL_BYTES", 0)
    monkeypatch.setattr(fasta_parts, "TASK_BYTES", 4000)  # read when prepare_dna calls plan_tasks
    prepare_dna([path], tmp_path / "a", workers=1, held_out={"test": ["chr3"]})
    prepare_dna([path], tmp_path / "b", workers=2, held_out={"test": ["chr3"]})
    assert folder_bytes(tmp_path / "a") == folder_bytes(tmp_path / "b")


def test_same_preparation_is_a_noop_unless_forced(tmp_path, genome, capsys):
    path, _ = genome
    out = tmp_path / "ds"
    assert not prepare_dna([path], out).up_to_date
    stamp = (out / "manifest.json").stat().st_mtime_ns
    assert prepare_dna([path], out).up_to_date
    assert (out / "manifest.json").stat().st_mtime_ns == stamp
    assert main(["prepare-dna", str(path), "--out", str(out), "--quiet"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert not prepare_dna([path], out, force=True).up_to_date
    assert not prepare_dna([path], out, unknown="n").up_to_date  # other parameters: prepared again
    assert json.loads((out / "manifest.json").read_text())["parameters"]["unknown"] == "n"
    copy = tmp_path / "copy.fa"
    shutil.copy(path, copy)
    with open(copy, "a") as fh:
        fh.write(">extra\nACGT\n")
    assert not prepare_dna([copy], out, unknown="n").up_to_date  # other source content: prepared again


def test_cli_prepare_dna(tmp_path, genome, capsys):
    path, _ = genome
    bed = tmp_path / "r.bed"
    bed.write_text("chr1\t0\t100\ttrain\nchr2\t0\t50\ttest\n")
    assert main(["prepare-dna", str(path), "--bed", str(bed), "--out", str(tmp_path / "ds"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "train 1 records / 100 tokens, test 1 records / 50 tokens" in out
    assert main(["prepare-dna", str(path), "--bed", str(bed), "--valid", "chr1", "--out", str(tmp_path / "x"),
                 "--quiet"]) == 2
    assert "held-out ranges and excludes apply without a BED" in capsys.readouterr().err
