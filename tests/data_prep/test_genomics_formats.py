"""VCF reading (plain and bgzipped, alleles split and classed, malformed lines named), the scored VCF round trip,
TSV/Parquet tables and bedGraph/bigWig tracks read back with their own readers."""
from __future__ import annotations

import io

import numpy as np
import pyarrow.parquet as pq
import pyBigWig
import pysam
import pytest

from mamba_bio_audio.data_prep.formats.tables import write_table
from mamba_bio_audio.data_prep.formats.tracks import BigWigWriter, write_bedgraph_values
from mamba_bio_audio.data_prep.formats.vcf import read_alleles, write_scored_vcf

HEADER = ("##fileformat=VCFv4.2\n##contig=<ID=chr1,length=500>\n##contig=<ID=chr2,length=300>\n"
          "##INFO=<ID=SVTYPE,Number=1,Type=String,Description=\"type\">\n"
          "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
RECORDS = ["chr1\t10\trs1\tA\tC,G\t.\tPASS\t.", "chr1\t20\t.\tACG\tA\t.\t.\t.",
           "chr1\t30\t.\tT\t<DEL>\t.\t.\tSVTYPE=DEL",
           "chr1\t40\t.\tG\tG[chr2:5[\t.\t.\t.", "chr2\t5\t.\tc\tt\t.\t.\t.", "chr2\t9\t.\tC\t*\t.\t.\t."]


@pytest.fixture(params=["plain", "bgzip"])
def vcf(request, tmp_path):
    path = tmp_path / "in.vcf"
    path.write_text(HEADER + "\n".join(RECORDS) + "\n")
    if request.param == "bgzip":
        pysam.tabix_compress(str(path), str(path) + ".gz")
        path = tmp_path / "in.vcf.gz"
    return path


def test_alleles_are_split_classed_and_located(vcf):
    alleles = list(read_alleles(vcf))
    got = [(a.record, a.line, a.chrom, a.pos, a.ref, a.alt, a.alt_index, a.kind) for a in alleles]
    assert got == [(0, 6, "chr1", 9, "A", "C", 0, "snv"), (0, 6, "chr1", 9, "A", "G", 1, "snv"),
                   (1, 7, "chr1", 19, "ACG", "A", 0, "indel"), (2, 8, "chr1", 29, "T", "<DEL>", 0, "structural"),
                   (3, 9, "chr1", 39, "G", "G[CHR2:5[", 0, "symbolic"), (4, 10, "chr2", 4, "C", "T", 0, "snv"),
                   (5, 11, "chr2", 8, "C", "*", 0, "symbolic")]


def test_scored_vcf_round_trips_with_every_record(vcf, tmp_path):
    out = tmp_path / "out.vcf.gz"
    assert write_scored_vcf(vcf, out, {(0, 1): -1.5, (1, 0): 2.25, (4, 0): 0.5}) == len(RECORDS)
    with pysam.VariantFile(str(out)) as scored, pysam.VariantFile(str(vcf)) as original:
        pairs = list(zip(scored, original, strict=True))
    assert [(s.chrom, s.pos, s.ref, s.alts) for s, _ in pairs] == [(o.chrom, o.pos, o.ref, o.alts) for _, o in pairs]
    values = [s.info.get("LLR") for s, _ in pairs]
    assert values == [(None, -1.5), (2.25,), None, None, (0.5,), None]
    assert pairs[0][0].id == "rs1" and pairs[2][0].info["SVTYPE"] == "DEL"
    with pytest.raises(ValueError, match="already has an INFO field SVTYPE"):
        write_scored_vcf(vcf, tmp_path / "again.vcf", {}, info_id="SVTYPE")


def test_malformed_vcf_line_is_named(tmp_path):
    path = tmp_path / "bad.vcf"
    path.write_text(HEADER + RECORDS[0] + "\nchr1\tx12\t.\tA\tC\t.\t.\t.\n")
    with pytest.raises(ValueError, match=r"bad\.vcf:7: malformed VCF record"):
        list(read_alleles(path))
    (tmp_path / "not.vcf").write_text("hello\n")
    with pytest.raises(ValueError, match=r"not\.vcf: not a readable VCF or BCF file"):
        list(read_alleles(tmp_path / "not.vcf"))


def test_tables_read_back_as_written(tmp_path):
    columns = {"chrom": ["chr1", "chr2"], "pos": [10, 20], "llr": [-1.25, None]}
    write_table(columns, tmp_path / "t.tsv")
    write_table(columns, tmp_path / "t.parquet")
    assert (tmp_path / "t.tsv").read_text() == "chrom\tpos\tllr\nchr1\t10\t-1.25\nchr2\t20\t\n"
    assert pq.read_table(tmp_path / "t.parquet").to_pydict() == columns


def test_tracks_leave_out_missing_bases_and_read_back(tmp_path):
    values = np.array([np.nan, 1.5, -2.0, np.nan, 3.25], dtype=np.float32)
    fh = io.StringIO()
    write_bedgraph_values(fh, "chr1", 10, values)
    assert fh.getvalue() == "chr1\t11\t12\t1.5\nchr1\t12\t13\t-2\nchr1\t14\t15\t3.25\n"
    with BigWigWriter(tmp_path / "t.bw", [("chr1", 100), ("chr2", 50)]) as bw:
        bw.add("chr1", 10, values)
        bw.add("chr2", 0, values[1:3])
    with pyBigWig.open(str(tmp_path / "t.bw")) as bw:
        np.testing.assert_array_equal(bw.values("chr1", 10, 15), values)
        assert bw.values("chr2", 0, 2) == [1.5, -2.0] and bw.chroms() == {"chr1": 100, "chr2": 50}
