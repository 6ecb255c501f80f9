"""``mamba-bio-audio embed`` on a tiny Mamba LM folder: every output format reads back with the names in input
order and the embeddings of an independent forward pass, a killed run resumes to the output of a fresh run, and
bad input ends in one line naming the file and line, with no output left."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from mamba_bio_audio.config import MambaConfig
from mamba_bio_audio.models import MambaLMHeadModel, load_pretrained
from mamba_bio_audio.pipelines.cli import main
from mamba_bio_audio.pipelines.commands import embed
from mamba_bio_audio.tokenizers import NucleotideTokenizer

RECORDS = {"chrA": 150, "chrB": 90, "chrC": 200}
BED = "track name=test\nchrA\t10\t70\tfirst\nchrC\t0\t200\tsecond\nchrA\t100\t150\n"
REGIONS = [("first", "chrA", 10, 70), ("second", "chrC", 0, 200), ("chrA:100-150", "chrA", 100, 150)]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("embed")
    torch.manual_seed(0)
    config = MambaConfig(d_model=16, n_layer=2, vocab_size=12, ssm_cfg={"d_state": 4}, pad_token_id=4)
    MambaLMHeadModel(config).save_pretrained(root / "lm")
    rng = np.random.default_rng(0)
    seqs = {name: "".join(rng.choice(list("ACGTacgtN"), size=n)) for name, n in RECORDS.items()}
    (root / "genome.fa").write_text("".join(f">{name} some description\n{s[:70]}\n{s[70:]}\n" for name, s in seqs.items()))
    (root / "regions.bed").write_text(BED)
    return root, seqs


def _oracle(root, seqs, regions) -> list[np.ndarray]:
    """Hidden states (L, D) of each region: the model's backbone over the region alone, one pass."""
    model = load_pretrained(root / "lm")
    tokenizer = NucleotideTokenizer()
    out = []
    with torch.no_grad():
        for _, chrom, start, end in regions:
            ids = torch.as_tensor(np.asarray(tokenizer.encode(seqs[chrom][start:end]), dtype=np.int64))[None]
            out.append(model.backbone(ids)[0].numpy())
    return out


def test_parquet_through_the_command_line(inputs, tmp_path):
    root, seqs = inputs
    out = tmp_path / "emb.parquet"
    done = subprocess.run([sys.executable, "-m", "mamba_bio_audio.pipelines.cli", "embed", str(root / "lm"),
                           str(root / "genome.fa"), "--bed", str(root / "regions.bed"), "--out", str(out),
                           "--batch-size", "2", "--no-progress"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "embedded 3 regions per sequence" in done.stdout
    import pyarrow.parquet as pq

    table = pq.read_table(out).to_pydict()
    assert list(zip(table["name"], table["chrom"], table["start"], table["end"])) == REGIONS
    expected = [h.mean(0) for h in _oracle(root, seqs, REGIONS)]
    np.testing.assert_allclose(np.array(table["embedding"]), np.stack(expected), rtol=1e-5, atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emb.parquet"]  # the work folder is gone


def test_per_base_safetensors_from_an_inner_layer(inputs, tmp_path):
    root, seqs = inputs
    assert main(["embed", str(root / "lm"), str(root / "genome.fa"), "--out", str(tmp_path / "e.safetensors"),
                 "--per", "base", "--layer", "1", "--chunk-size", "64", "--no-progress"]) == 0
    model, tokenizer = load_pretrained(root / "lm"), NucleotideTokenizer()
    from safetensors import safe_open

    with safe_open(str(tmp_path / "e.safetensors"), "np") as fh, torch.no_grad():
        assert json.loads(fh.metadata()["names"]) == list(RECORDS)  # every record whole, in file order
        for i, name in enumerate(RECORDS):  # the oracle: block by block, one pass; the residual stream after
            ids = torch.as_tensor(np.asarray(tokenizer.encode(seqs[name]), dtype=np.int64))[None]  # block 1
            hidden, residual = model.backbone.layers[0](model.backbone.embedding(ids))
            hidden, residual = model.backbone.layers[1](hidden, residual)
            np.testing.assert_allclose(fh.get_tensor(f"embedding.{i}"), (hidden + residual)[0].numpy(),
                                       rtol=1e-5, atol=1e-5)


def test_killed_run_resumes_to_the_output_of_a_fresh_run(inputs, tmp_path, monkeypatch, capsys):
    root, _ = inputs
    args = [str(root / "lm"), str(root / "genome.fa"), "--bed", str(root / "regions.bed"), "--batch-size", "1",
            "--no-progress"]
    assert main(["embed", *args, "--out", str(tmp_path / "fresh.npy")]) == 0
    real, calls = embed.embed_batch, []

    def killed_at_the_third_batch(*a, **kw):
        calls.append(a[2])
        if len(calls) == 3:
            raise RuntimeError("killed")
        return real(*a, **kw)

    monkeypatch.setattr(embed, "embed_batch", killed_at_the_third_batch)
    out = tmp_path / "resumed.npy"
    with pytest.raises(RuntimeError, match="killed"):
        main(["embed", *args, "--out", str(out)])
    assert not out.exists() and (tmp_path / "resumed.npy.work").is_dir()
    calls.clear()
    capsys.readouterr()
    assert main(["embed", *args, "--out", str(out)]) == 0
    assert [r.name for batch in calls for r in batch] == ["chrA:100-150"]  # only what the killed run had not done
    assert "2 of them resumed" in capsys.readouterr().out
    np.testing.assert_array_equal(np.load(out), np.load(tmp_path / "fresh.npy"))


def _error(capsys, *argv) -> str:
    assert main(["embed", *map(str, argv), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_bad_input_is_one_line_naming_file_and_line(inputs, tmp_path, capsys):
    root, _ = inputs
    lm, fasta, out = root / "lm", root / "genome.fa", tmp_path / "e.npy"
    bed = tmp_path / "bad.bed"
    bed.write_text("chrA\t0\t10\nchrA\t5\n")
    assert "bad.bed, line 2: expected at least 3 columns" in _error(capsys, lm, fasta, "--bed", bed, "--out", out)
    bed.write_text("chrA\t0\t10\nchrA\t100\t151\tlong\n")
    assert ("bad.bed, line 2: region chrA:100-151 ends past the end of chrA (150 bases in"
            in _error(capsys, lm, fasta, "--bed", bed, "--out", out))
    bed.write_text("chrZ\t0\t10\n")
    assert "bad.bed, line 1: chromosome 'chrZ' is not in" in _error(capsys, lm, fasta, "--bed", bed, "--out", out)
    bad_fasta = tmp_path / "bad.fa"
    bad_fasta.write_text(">one\nACGT\nAC!T\n")
    err = _error(capsys, lm, bad_fasta, "--out", out)
    assert "bad.fa, line 3, column 3: unknown character '!'" in err and "use --unknown unk or --unknown n" in err
    not_fasta = tmp_path / "reads.fa"
    not_fasta.write_text("ACGT\n")
    assert "reads.fa:1: not FASTA" in _error(capsys, lm, not_fasta, "--out", out)
    MambaLMHeadModel(MambaConfig(d_model=8, n_layer=1, vocab_size=256, ssm_cfg={"d_state": 4})).save_pretrained(
        tmp_path / "audio")
    assert "is not a DNA model: its vocabulary has 256 tokens" in _error(capsys, tmp_path / "audio", fasta, "--out", out)
    assert "--layer 2: the model has blocks 0..1" in _error(capsys, lm, fasta, "--layer", 2, "--out", out)
    assert not out.exists() and not (tmp_path / "e.npy.work").exists()
    out.write_bytes(b"someone's file")
    assert "exists; --force replaces it" in _error(capsys, lm, fasta, "--out", out)
    assert out.read_bytes() == b"someone's file"
    own = tmp_path / "own_lm"  # --force never replaces a file of an input folder: the model's own weights
    shutil.copytree(lm, own)
    weights = (own / "model.safetensors").read_bytes()
    assert "lies inside" in _error(capsys, own, fasta, "--out", own / "model.safetensors", "--force")
    assert (own / "model.safetensors").read_bytes() == weights
