import gzip

import pytest

from mamba_bio_audio.data_prep.formats.fasta import bundled_example, read_fasta


def test_bundled_examples_are_real_mitochondrial_genomes():
    human = read_fasta(bundled_example("MT-human.fa.gz"))
    orang = read_fasta(bundled_example("MT-orang.fa.gz"))
    assert [r.name for r in human] == ["MT_human"] and len(human[0].sequence) == 16569
    assert [r.name for r in orang] == ["MT_orang"] and len(orang[0].sequence) == 16499
    # the revised Cambridge reference sequence starts with GATCACAGGTCTATCACCC
    assert human[0].sequence.upper().startswith("GATCACAGGTCTATCACCC")


def test_plain_and_gzip_agree(tmp_path):
    text = ">a first\nACGT\nNNac\n\n>b\nTTTT\n"
    (tmp_path / "x.fa").write_text(text)
    with gzip.open(tmp_path / "x.fa.gz", "wt") as fh:
        fh.write(text)
    for name in ("x.fa", "x.fa.gz"):
        records = read_fasta(tmp_path / name)
        assert [(r.name, r.description, r.sequence) for r in records] == [("a", "a first", "ACGTNNac"), ("b", "b", "TTTT")]


@pytest.mark.parametrize(
    "content, message",
    [(b"ACGT\n>a\nACGT\n", "x.fa:1: not FASTA"), (b"\n\nhello\n", "x.fa:3: not FASTA"), (b"", "not FASTA"),
     (b">a\nAC\xffGT\n", "unreadable FASTA"), (b"\x1f\x8b\x08\x00garbage", "unreadable FASTA")],
)
def test_bad_files_name_the_file(tmp_path, content, message):
    path = tmp_path / "x.fa"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        read_fasta(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.fa"):
        read_fasta(tmp_path / "nope.fa")
