"""``mamba-bio-audio vep`` as a user runs it: scores equal naive full-window rescoring, every VCF record comes back,
skipped alleles are counted with their reason, two processes (DDP, gloo) give the same files as one, and bad
input stops with a message naming what is wrong and no output file."""
from __future__ import annotations

import csv
import os
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pysam
import pytest

from mamba_bio_audio.models import load_pretrained
from mamba_bio_audio.pipelines.cli import main
from mamba_bio_audio.scoring import Variant, score_variants

WINDOW = "128"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _rows(out):
    with open(out / "variants.tsv") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


@pytest.fixture(scope="module")
def vep_one(genomics, tmp_path_factory):
    """One process, --rc-average: (output folder, summary printed)."""
    import contextlib
    import io

    out = tmp_path_factory.mktemp("vep_one") / "vep"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["vep", str(genomics.lm), str(genomics.vcf), str(genomics.fasta), "--out", str(out),
                     "--window", WINDOW, "--batch-size", "2", "--rc-average", "--no-progress"]) == 0
    return out, printed.getvalue()


def test_vep_scores_equal_naive_rescoring_and_keep_every_record(genomics, vep_one):
    out, summary = vep_one
    assert "11 alleles of 10 VCF records: 8 scored" in summary
    assert "1 structural allele" in summary and "1 symbolic allele" in summary and "1 N in the window" in summary
    rows = _rows(out)
    assert [r["status"] for r in rows] == ["scored"] * 6 + ["skipped: structural allele",
                                                           "skipped: symbolic allele", "scored", "scored",
                                                           "skipped: N in the window"]
    model = load_pretrained(genomics.lm)
    seqs = {"chr1": genomics.chr1, "chr2": genomics.chr2}
    for r in rows:
        if r["status"] == "scored":
            seq = np.array(["ACGT".index(b) + 7 for b in seqs[r["chrom"]].replace("N", "A")])
            naive = score_variants(model, seq, [Variant(int(r["pos"]) - 1, r["ref"], r["alt"])], int(WINDOW),
                                   naive=True, rc=True)
            assert float(r["llr_forward"]) == pytest.approx(naive.forward[0], abs=1e-5)
            assert float(r["llr_reverse"]) == pytest.approx(naive.reverse[0], abs=1e-5)
            assert float(r["llr"]) == pytest.approx(naive.llr[0], abs=1e-5)
    with pysam.VariantFile(str(out / "variants.vcf.gz")) as scored:
        records = list(scored)
    assert [(r.chrom, r.pos) for r in records] == [(line.split("\t")[0], int(line.split("\t")[1]))
                                                    for line in genomics.vcf.read_text().splitlines()
                                                    if not line.startswith("#")]
    assert records[0].info["LLR"] == pytest.approx((float(rows[0]["llr"]), float(rows[1]["llr"])), abs=1e-5)
    assert "LLR" not in records[5].info and "LLR" not in records[9].info
    assert pq.read_table(out / "variants.parquet").column("status").to_pylist() == [r["status"] for r in rows]
    assert sorted(p.name for p in out.parent.iterdir()) == ["vep"]  # the work folder is gone


def _same_rows(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert {k: v for k, v in x.items() if not k.startswith("llr")} == \
            {k: v for k, v in y.items() if not k.startswith("llr")}
        for k in ("llr", "llr_forward", "llr_reverse"):
            assert (x[k] == "") == (y[k] == "") and (x[k] == "" or abs(float(x[k]) - float(y[k])) < 1e-5)


@pytest.mark.slow
def test_vep_on_two_processes_writes_what_one_process_writes(genomics, vep_one, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE")}
    done = subprocess.run([sys.executable, "-m", "mamba_bio_audio.pipelines.cli", "vep", str(genomics.lm),
                           str(genomics.vcf), str(genomics.fasta), "--window", WINDOW, "--batch-size", "2",
                           "--rc-average", "--no-progress", "--out", str(tmp_path / "two"), "--devices", "2"],
                          capture_output=True, text=True, timeout=300, env={**env, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "8 scored (8 now, 0 by an earlier run" in done.stdout and "on 2 process(es)" in done.stdout
    one = vep_one[0]
    _same_rows(_rows(tmp_path / "two"), _rows(one))  # same rows in the same order; scores to 1e-5
    with pysam.VariantFile(str(one / "variants.vcf.gz")) as a, \
            pysam.VariantFile(str(tmp_path / "two" / "variants.vcf.gz")) as b:
        for x, y in zip(a, b, strict=True):
            assert (x.chrom, x.pos, x.ref, x.alts) == (y.chrom, y.pos, y.ref, y.alts)
            assert x.info.get("LLR") == pytest.approx(y.info.get("LLR"), abs=1e-5)


def _fails(args, capsys) -> str:
    assert main(args) == 2
    return capsys.readouterr().err


def test_ref_mismatch_names_the_line_and_both_alleles_or_is_skipped(genomics, write_vcf, tmp_path, capsys):
    base = genomics.chr1[99]
    vcf = write_vcf(tmp_path / "m.vcf", [f"chr1\t100\t.\t{'ACGT'[('ACGT'.index(base) + 1) % 4]}\t{base}\t.\t.\t."])
    args = ["vep", str(genomics.lm), str(vcf), str(genomics.fasta), "--window", WINDOW, "--no-progress"]
    err = _fails([*args, "--out", str(tmp_path / "out")], capsys)
    assert f"VCF line 6: REF {'ACGT'[('ACGT'.index(base) + 1) % 4]} at chr1:100 but the FASTA has {base}" in err
    assert not (tmp_path / "out").exists()
    assert main([*args, "--out", str(tmp_path / "out"), "--skip-mismatch"]) == 0
    assert "1 REF differs from the FASTA" in capsys.readouterr().out


def test_missing_chromosome_and_malformed_line_stop_before_any_output(genomics, write_vcf, tmp_path, capsys):
    vcf = write_vcf(tmp_path / "c.vcf", ["chr1\t60\t.\tA\tC\t.\t.\t.".replace("A", genomics.chr1[59], 1),
                                         "chrX\t5\t.\tA\tC\t.\t.\t."])
    args = ["vep", str(genomics.lm), str(vcf), str(genomics.fasta), "--out", str(tmp_path / "out")]
    assert "VCF line 7: chromosome 'chrX' is not in the FASTA" in _fails(args, capsys)
    write_vcf(vcf, ["chr1\tx60\t.\tA\tC\t.\t.\t."])
    assert "c.vcf:6: malformed VCF record" in _fails(args, capsys)
    assert not (tmp_path / "out").exists()


def test_a_model_that_is_not_dna_is_refused(genomics, tmp_path, capsys):
    from mamba_bio_audio import MambaLMHeadModel
    from mamba_bio_audio.config import MambaConfig

    MambaLMHeadModel(MambaConfig(d_model=8, n_layer=1, vocab_size=256)).save_pretrained(tmp_path / "audio")
    err = _fails(["vep", str(tmp_path / "audio"), str(genomics.vcf), str(genomics.fasta), "--out",
                  str(tmp_path / "out")], capsys)
    assert "is not a DNA model: its vocabulary has 256 tokens" in err
    assert not (tmp_path / "out").exists()


def test_masked_model_scores_snvs_and_counts_indels(genomics, tmp_path, capsys):
    assert main(["vep", str(genomics.caduceus), str(genomics.vcf), str(genomics.fasta), "--out",
                 str(tmp_path / "out"), "--window", "64", "--no-progress"]) == 0
    assert "2 indel: a masked model scores SNVs only" in capsys.readouterr().out
    statuses = [r["status"] for r in _rows(tmp_path / "out")]
    assert statuses.count("scored") == 6


def test_an_output_folder_of_other_files_is_refused_untouched(genomics, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    err = _fails(["vep", str(genomics.lm), str(genomics.vcf), str(genomics.fasta), "--out", str(out)], capsys)
    assert "mine: refused: it holds notes.txt, which is not part of a vep output folder" in err
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_text() == "keep"
