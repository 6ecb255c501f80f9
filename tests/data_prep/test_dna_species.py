"""Species datasets: splits by chromosome and by locus (no leakage), balanced and reproducible windows."""
import gzip

import numpy as np
import pytest
import torch

from mamba_bio_audio.data_prep.datasets.dna_layout import read_records_tsv
from mamba_bio_audio.data_prep.formats.maf import iter_maf
from mamba_bio_audio.data_prep.datasets.prepared import PreparedDataset
from mamba_bio_audio.data_prep.datasets.prepare_species import prepare_species_genomes, prepare_species_maf
from mamba_bio_audio.data_prep.datasets.species_windows import SpeciesWindowDataset
from mamba_bio_audio.pipelines.cli import main

SPECIES = {"Hsap": "human", "Ptro": "chimpanzee", "Ggor": "gorilla", "Ppyg": "orangutan"}
HELD_OUT = {"valid": ["22:40000000-45000000"], "test": ["22:45000000-"]}


def write_maf(path, rng, n_blocks=120):
    """Blocks of 4 apes at human chr22 positions spread over 38-47 Mb (some straddle the split boundaries)."""
    lines = ["##maf version=1 program=test", "#", ""]
    pos = 38_000_000
    for b in range(n_blocks):
        n = int(rng.integers(80, 400))
        base = rng.choice(np.array(list("ACGTacgt")), n)
        lines.append("a")
        for prefix in SPECIES:
            text = base.copy()
            text[rng.integers(n, size=3)] = "-"
            text = "".join(text)
            size = n - text.count("-")
            chrom = "22" if prefix != "Ppyg" else "Un"
            start = pos if prefix == "Hsap" else int(rng.integers(10 ** 6))
            if prefix == "Ggor" and b % 17 == 3:
                continue  # a species missing from a block
            lines.append(f"s {prefix}.{chrom} {start} {size} {'+' if b % 5 else '-'} 60000000 {text}")
        lines.append("")
        pos += n + int(rng.integers(5000, 150_000))
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


@pytest.fixture
def apes(tmp_path, rng):
    maf = write_maf(tmp_path / "apes.maf.gz", rng)
    prepare_species_maf(maf, tmp_path / "apes", species=SPECIES, reference="Hsap", held_out=HELD_OUT)
    return maf, tmp_path / "apes"


def _blocks(folder, split):
    lines = (folder / f"{split}.blocks.tsv").read_text().splitlines()
    return [line.split("\t") for line in lines[1:]]


def test_maf_split_by_locus_without_leakage(apes, tok):
    maf, folder = apes
    ds = PreparedDataset(folder)
    assert ds.kind == "species" and ds.manifest["species"] == list(SPECIES.values())
    limits = {"train": (0, 40_000_000), "valid": (40_000_000, 45_000_000), "test": (45_000_000, 10 ** 12)}
    seen_blocks, spans = set(), []
    for split in ("train", "valid", "test"):
        rows = _blocks(folder, split)
        assert rows
        for block, name, a, b, *_ in rows:
            a, b = int(a), int(b)
            assert name == "22" and limits[split][0] <= a < b <= limits[split][1]
            assert block not in seen_blocks  # a block (a locus, all species) sits in one split only
            seen_blocks.add(block)
            spans.append((a, b, split))
    spans.sort()
    assert all(s1 == s2 or b1 <= a2 for (a1, b1, s1), (a2, b2, s2) in zip(spans, spans[1:]))
    blocks = {str(b.number): b for b in iter_maf(maf)}
    assert len(seen_blocks) == len(blocks) - int((folder / "maf_stats.tsv").read_text().split()[-1])
    for split in ("train", "valid", "test"):  # every species' tokens of a block sit at the recorded offset
        s = ds.split(split)
        for block, _, _, _, *cells in _blocks(folder, split)[:20]:
            rows = {r.species: r for r in blocks[block].rows}
            for label, (prefix, cell) in enumerate(zip(SPECIES, cells)):
                if cell == "-":
                    assert prefix not in rows
                    continue
                offset, length = map(int, cell.split(":"))
                rec = int(np.flatnonzero(s.records[:, 2] == label)[0])
                np.testing.assert_array_equal(s.record(rec)[offset: offset + length],
                                              tok.encode(rows[prefix].bases(), dtype=np.uint8))


def test_species_reader_is_balanced_and_reproducible(apes):
    _, folder = apes
    valid = SpeciesWindowDataset(folder, "valid", 64, 10_000, seed=1)
    counts = np.bincount([valid.draw(i)[0] for i in range(10_000)], minlength=4) / 10_000
    assert np.all(np.abs(counts - 0.25) < 0.02)
    again = SpeciesWindowDataset(folder, "valid", 64, 10_000, seed=1)
    again.set_epoch(3)  # evaluation splits ignore the epoch
    for i in range(0, 10_000, 997):
        (x1, y1), (x2, y2) = valid[i], again[i]
        assert torch.equal(x1, x2) and int(y1) == int(y2) and x1.shape == (64,)
    train = SpeciesWindowDataset(folder, "train", 64, 200, seed=1)
    first = [train.draw(i) for i in range(200)]
    train.set_epoch(1)
    assert sum(a == b for a, b in zip(first, (train.draw(i) for i in range(200)))) < 20


def test_species_windows_left_pad_short_records(tmp_path, rng, dna):
    dna.write_fasta(tmp_path / "a.fa", [("chr2", "ACGTTG"), ("chr1", "AC" * 50)])
    dna.write_fasta(tmp_path / "b.fa", [("chr2", "GGGN"), ("chr1", "T" * 10)])
    prepare_species_genomes({"a": [tmp_path / "a.fa"], "b": [tmp_path / "b.fa"]}, tmp_path / "ds")
    ds = SpeciesWindowDataset(tmp_path / "ds", "train", 8, 50)  # chr1 is a valid chromosome: train holds chr2
    for i in range(50):
        x, y = ds[i]
        expected = {0: [4, 4, 7, 8, 9, 10, 10, 9], 1: [4, 4, 4, 4, 9, 9, 9, 11]}[int(y)]
        assert x.tolist() == expected


def test_genomes_split_by_hyena_chromosomes(tmp_path, rng, dna):
    genomes = {}
    for sp, names in {"human": [f"chr{i}" for i in range(1, 14)] + ["chrX"],
                      "mouse": [f"{i}" for i in range(1, 14)] + ["chrUn_x"]}.items():
        path = dna.write_fasta(tmp_path / f"{sp}.fa.gz", [(n, dna.random_dna(rng, 300, n_runs=1)) for n in names],
                               compress="bgzf")
        genomes[sp] = [path]
    prepare_species_genomes(genomes, tmp_path / "ds", exclude=["chrUn*"])
    ds = PreparedDataset(tmp_path / "ds")
    where = {}
    for split in ds.split_names:
        for row in read_records_tsv(tmp_path / "ds", split):
            key = (row["species"], row["name"].replace("chr", ""))
            assert key not in where
            where[key] = split
    for sp in ("human", "mouse"):
        assert {c for (s, c), split in where.items() if s == sp and split == "valid"} == {"1", "3", "12", "13"}
        assert {c for (s, c), split in where.items() if s == sp and split == "test"} == {"5", "7", "9", "10", "11"}
    assert ("human", "X") in where and ("mouse", "Un_x") not in where
    labels = ds.split("train").records[:, 2]
    assert set(labels.tolist()) == {0, 1}


def test_species_errors(tmp_path, rng, dna):
    fa = dna.write_fasta(tmp_path / "a.fa", [("chr1", "ACGT"), ("chr1", "AC")])
    with pytest.raises(ValueError, match="duplicate sequence name 'chr1' for a"):
        prepare_species_genomes({"a": [fa]}, tmp_path / "ds")
    with pytest.raises(ValueError, match="both in valid and test"):
        prepare_species_genomes({"a": [fa]}, tmp_path / "ds", valid_chroms=["1"], test_chroms=["chr1"])
    (tmp_path / "x.maf").write_text("##maf version=1\na\ns Hsap.1 0 4 + 10 ACGT\ns Ptro.1 0 4 +\n")
    with pytest.raises(ValueError, match=r"x.maf, line 4: malformed 's' line"):
        prepare_species_maf(tmp_path / "x.maf", tmp_path / "ds", species={"Hsap": "h", "Ptro": "c"})
    (tmp_path / "y.maf").write_text("##maf version=1\na\ns Hsap.1 0 4 + 10 ACXT\n")
    with pytest.raises(ValueError, match=r"y.maf, line 3: unknown character 'X'"):
        prepare_species_maf(tmp_path / "y.maf", tmp_path / "ds", species={"Hsap": "h"})
    assert dna.entries(tmp_path) == ["a.fa", "x.maf", "y.maf"]


def test_cli_prepare_species(tmp_path, rng, dna, capsys):
    maf = write_maf(tmp_path / "a.maf.gz", rng, n_blocks=40)
    args = ["prepare-species", "--maf", str(maf), "--out", str(tmp_path / "apes"), "--quiet"]
    for prefix, name in SPECIES.items():
        args += ["--species", f"{prefix}={name}"]
    assert main(args + ["--valid", "22:40000000-45000000", "--test", "22:45000000-"]) == 0
    assert "train 4 records" in capsys.readouterr().out
    fa = dna.write_fasta(tmp_path / "h.fa", [("chr1", "ACGT"), ("chr2", "ACGG")])
    fb = dna.write_fasta(tmp_path / "o.fa", [("chr1", "ACTT"), ("chr2", "AGGG")])
    assert main(["prepare-species", "--genome", f"human={fa}", "--genome", f"other={fb}", "--window", "4",
                 "--out", str(tmp_path / "g"), "--quiet"]) == 0
    assert main(["prepare-species", "--genome", f"human={fa}", "--genome", f"other={fa}",
                 "--out", str(tmp_path / "h"), "--quiet"]) == 2
    assert "is given for both human and other" in capsys.readouterr().err
    assert main(["prepare-species", "--out", str(tmp_path / "z"), "--quiet"]) == 2
    assert "give either --genome" in capsys.readouterr().err
