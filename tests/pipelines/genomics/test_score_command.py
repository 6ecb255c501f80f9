"""``mamba-bio-audio score`` as a user runs it: the bedGraph and bigWig tracks hold the per-base log-likelihoods of
one full forward pass (scored in windows that carry the state), N bases and the first base are left out,
records.tsv gives each record's perplexity; a masked model gives the masked marginal."""
from __future__ import annotations

import csv

import numpy as np
import pyBigWig
import pytest
import torch

from mamba_bio_audio.models import load_pretrained
from mamba_bio_audio.pipelines.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _bedgraph(path) -> dict[tuple[str, int], float]:
    values = {}
    for line in path.read_text().splitlines():
        chrom, start, end, value = line.split("\t")
        assert int(end) == int(start) + 1
        values[(chrom, int(start))] = float(value)
    return values


def test_score_tracks_equal_one_forward_pass(genomics, tmp_path, capsys):
    out = tmp_path / "score"
    assert main(["score", str(genomics.lm), str(genomics.fasta), "--out", str(out), "--window", "100",
                 "--bigwig", "--no-progress"]) == 0
    assert "2 records, 1300 bases (12 without a score" in capsys.readouterr().out  # 2 first bases + 10 N
    model = load_pretrained(genomics.lm)
    track = _bedgraph(out / "loglik.bedGraph")
    with pyBigWig.open(str(out / "loglik.bw")) as bw:
        for chrom, seq in (("chr1", genomics.chr1), ("chr2", genomics.chr2)):
            ids = torch.tensor([[7 + "ACGTN".index(b) for b in seq]])
            with torch.no_grad():
                logp = torch.log_softmax(model(ids).logits[0].float(), -1)
            expected = logp[:-1].gather(-1, ids[0, 1:, None])[:, 0].numpy()
            scored = [i for i in range(1, len(seq)) if seq[i] != "N"]
            assert sorted(p for c, p in track if c == chrom) == scored
            np.testing.assert_allclose([track[(chrom, i)] for i in scored], expected[np.array(scored) - 1],
                                       atol=1e-4)  # bedGraph keeps 5 significant digits
            np.testing.assert_allclose(np.array(bw.values(chrom, 0, len(seq)))[scored],
                                       expected[np.array(scored) - 1], atol=1e-5)
            assert np.isnan(bw.values(chrom, 0, 1)[0])
    with open(out / "records.tsv") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert [(r["name"], r["length"], r["scored"]) for r in rows] == [("chr1", "900", "899"), ("chr2", "400", "389")]
    mean = np.mean([track[("chr2", i)] for i in range(400) if ("chr2", i) in track])
    assert float(rows[1]["perplexity"]) == pytest.approx(np.exp(-mean), rel=1e-4)


def test_score_with_a_masked_model_and_strand_average(genomics, tmp_path):
    fasta = tmp_path / "small.fa"
    fasta.write_text(f">a\n{genomics.chr1[:100]}\n>b\n{genomics.chr2[200:260]}\n")  # b holds the N run
    out = tmp_path / "score"
    assert main(["score", str(genomics.caduceus), str(fasta), "--out", str(out), "--window", "16",
                 "--batch-size", "2", "--rc-average", "--no-progress"]) == 0
    track = _bedgraph(out / "loglik.bedGraph")
    assert len(track) == 160 - 10  # every base but the N run: a masked model needs no left context
    assert all(v < 0 for v in track.values())
