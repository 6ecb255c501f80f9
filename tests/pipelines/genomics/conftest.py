"""Tiny inputs for the genomics commands: a DNA LM folder (Mamba, d_model 16, 2 layers), a Caduceus masked LM
folder, a reference FASTA of two sequences (one with an N run) and a VCF touching every case vep meets."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

VCF_HEADER = ("##fileformat=VCFv4.2\n##contig=<ID=chr1,length=900>\n##contig=<ID=chr2,length=400>\n"
              "##INFO=<ID=SVTYPE,Number=1,Type=String,Description=\"structural variant type\">\n"
              "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")


def _other(base: str, k: int = 1) -> str:
    return "ACGT"[("ACGT".index(base) + k) % 4]


def vcf_lines(chr1: str, chr2: str) -> list[str]:
    """Records (1-based POS) of: SNVs (one multi-allelic), variants sharing a window, a deletion, an insertion,
    a structural and a symbolic allele, an SNV whose window holds the N run of chr2."""
    snv = lambda chrom, seq, p: f"{chrom}\t{p}\t.\t{seq[p - 1]}\t{_other(seq[p - 1])}\t.\t.\t."  # noqa: E731
    return [f"chr1\t60\trs60\t{chr1[59]}\t{_other(chr1[59])},{_other(chr1[59], 2)}\t.\t.\t.",
            snv("chr1", chr1, 70), f"chr1\t75\t.\t{chr1[74:77]}\t{chr1[74]}\t.\t.\t.",
            f"chr1\t90\t.\t{chr1[89]}\t{chr1[89]}GA\t.\t.\t.", snv("chr1", chr1, 300),
            f"chr1\t310\t.\t{chr1[309]}\t<DEL>\t.\t.\tSVTYPE=DEL", f"chr1\t320\t.\t{chr1[319]}\t*\t.\t.\t.",
            snv("chr1", chr1, 700), snv("chr2", chr2, 100), snv("chr2", chr2, 250)]


@pytest.fixture(scope="session")
def genomics(tmp_path_factory):
    """SimpleNamespace(lm, caduceus, fasta, vcf, chr1, chr2, root)."""
    from mamba_bio_audio import MambaLMHeadModel
    from mamba_bio_audio.config import MambaConfig
    from mamba_bio_audio.models import CaduceusConfig, CaduceusForMaskedLM

    root = tmp_path_factory.mktemp("genomics")
    torch.manual_seed(0)
    MambaLMHeadModel(MambaConfig(d_model=16, n_layer=2, vocab_size=12, ssm_cfg={"d_state": 4},
                                 pad_token_id=4)).save_pretrained(root / "lm")
    CaduceusForMaskedLM(CaduceusConfig(d_model=8, n_layer=2, ssm_cfg={"d_state": 4},
                                       complement_map="dna")).save_pretrained(root / "caduceus")
    rng = np.random.default_rng(0)
    chr1 = "".join(rng.choice(list("ACGT"), 900))
    chr2 = "".join(rng.choice(list("ACGT"), 400))
    chr2 = chr2[:230] + "N" * 10 + chr2[240:]
    fasta = root / "ref.fa"
    fasta.write_text(f">chr1\n{chr1[:450]}\n{chr1[450:]}\n>chr2\n{chr2}\n")
    vcf = root / "variants.vcf"
    vcf.write_text(VCF_HEADER + "\n".join(vcf_lines(chr1, chr2)) + "\n")
    return SimpleNamespace(root=root, lm=root / "lm", caduceus=root / "caduceus", fasta=fasta, vcf=vcf,
                           chr1=chr1, chr2=chr2)


def _write_vcf(path: Path, lines: list[str]) -> Path:
    path.write_text(VCF_HEADER + "\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="session")
def write_vcf():
    """write_vcf(path, record lines) -> path: a VCF with the fixture's header."""
    return _write_vcf
