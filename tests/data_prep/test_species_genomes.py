"""Species datasets from genomes: held-out regions with a margin, a minimum window, the species5 recipe, and a
clear error (naming the file and the species, leaving nothing behind) for each kind of bad input."""
import json

import numpy as np
import pytest

from mamba_bio_audio.data_prep.datasets.dna_layout import read_records_tsv
from mamba_bio_audio.data_prep.datasets.prepare_species import prepare_species_genomes
from mamba_bio_audio.data_prep.datasets.prepared import PreparedDataset
from mamba_bio_audio.data_prep.datasets.species_windows import SpeciesWindowDataset
from mamba_bio_audio.data_prep.examples import dna as examples_dna
from mamba_bio_audio.pipelines.cli import main


def _genomes(tmp_path, rng, dna, lengths=None):
    lengths = lengths or {"a": {"c1": 10_000, "c2": 3_000}, "b": {"x": 9_000, "y": 200}}
    out = {}
    for sp, records in lengths.items():
        out[sp] = [dna.write_fasta(tmp_path / f"{sp}.fa", [(n, dna.random_dna(rng, k)) for n, k in records.items()])]
    return out


def test_regions_with_margin_and_window(tmp_path, rng, dna):
    genomes = _genomes(tmp_path, rng, dna)
    held_out = {"a": {"valid": ["c1:6000-7000"], "test": ["c1:8000-"]}, "b": {"valid": ["x:0-2000"], "test": ["x:7000-"]}}
    prepare_species_genomes(genomes, tmp_path / "ds", valid_chroms=(), test_chroms=(), held_out=held_out,
                            margin=500, window=1000)
    rows = {split: [(r["species"], r["name"], int(r["start"]), int(r["end"]))
                    for r in read_records_tsv(tmp_path / "ds", split)] for split in ("train", "valid", "test")}
    # a's c1: train up to 500 before valid; the 1000 bases between valid and test lose 500 each side, so nothing;
    # c2 has no range: train by chromosome. b's y (200 bases) is shorter than the window and left out.
    assert rows["train"] == [("a", "c1", 0, 5500), ("a", "c2", 0, 3000), ("b", "x", 2500, 6500)]
    assert rows["valid"] == [("a", "c1", 6000, 7000), ("b", "x", 0, 2000)]
    assert rows["test"] == [("a", "c1", 8000, 10000), ("b", "x", 7000, 9000)]
    manifest = PreparedDataset(tmp_path / "ds").manifest
    assert manifest["split_by"] == "region" and manifest["species_bases"]["b"]["train"]["short"] == 1
    assert manifest["species_bases"]["a"]["train"]["bases"] == 8500
    ds = SpeciesWindowDataset(tmp_path / "ds", "test", 1000, 40)
    assert all(int((x == 4).sum()) == 0 for x, _ in (ds[i] for i in range(40)))  # no window is padded


def test_exclude_spares_sequences_with_held_out_ranges(tmp_path, rng, dna):
    genomes = _genomes(tmp_path, rng, dna, {"a": {"k.1.1": 3000, "k.1.2": 3000, "k.2.1": 3000, "k.3.1": 3000},
                                            "b": {"z": 6000}})
    held_out = {"a": {"valid": ["k.1.1"], "test": ["k.2.1"]}, "b": {"valid": ["z:0-1000"], "test": ["z:5000-"]}}
    prepare_species_genomes(genomes, tmp_path / "ds", valid_chroms=(), test_chroms=(), held_out=held_out,
                            exclude=["k.1.*", "k.2.*"])
    names = {split: [r["name"] for r in read_records_tsv(tmp_path / "ds", split)] for split in ("train", "valid")}
    assert names["valid"] == ["k.1.1", "z"] and names["train"] == ["k.3.1", "z"]


def test_species5_recipe_is_consistent():
    """Every species of the bundled set has valid and test ranges, and no name is both held out and excluded
    by a range of another split."""
    assert len(examples_dna.SPECIES5) == 5 and len(set(examples_dna.SPECIES5)) == 5
    for name, (source, ranges) in examples_dna.SPECIES5.items():
        assert source in examples_dna.FILES["species5"]
        if name != "human":  # human's ranges come from chr20's length (hg_small's held-out 5 Mb)
            assert set(ranges) == {"valid", "test"} and all(ranges.values())
    assert examples_dna.SPECIES5_MARGIN >= examples_dna.SPECIES5_WINDOW


def test_prepare_species5_calls_the_generic_writer(tmp_path, monkeypatch):
    seen = {}
    fai = tmp_path / "20.fa.gz.fai"
    fai.write_text("20\t63025520\t4\t60\t61\n")
    monkeypatch.setattr(examples_dna, "prepare_species_genomes", lambda genomes, out, **kw: seen.update(kw, out=out))
    locate = lambda f: fai if f is examples_dna.CHR20_FAI else tmp_path / f.path.rsplit("/", 1)[-1]
    examples_dna.prepare_species5(tmp_path / "species5", locate)
    assert seen["held_out"]["human"] == {"valid": ["20:58025520-60525520"], "test": ["20:60525520-63025520"]}
    assert seen["window"] == examples_dna.SPECIES5_WINDOW and seen["valid_chroms"] == ()


@pytest.mark.parametrize("case", ["empty_file", "same_file", "case_names", "short", "all_n", "no_test", "missing_name"])
def test_bad_species_input_is_a_clear_error_and_writes_nothing(tmp_path, rng, dna, case):
    ok = dna.write_fasta(tmp_path / "ok.fa", [("c", dna.random_dna(rng, 4000))])
    other = dna.write_fasta(tmp_path / "other.fa", [("c", dna.random_dna(rng, 4000))])
    regions = {"valid": ["c:0-1000"], "test": ["c:3000-"]}
    genomes, held_out, window, match = {"good": [ok], "bad": [other]}, None, None, None
    if case == "empty_file":
        (tmp_path / "empty.fa").write_text("")
        genomes["bad"] = [other, tmp_path / "empty.fa"]
        match = r"empty.fa: no FASTA records .* \(a genome of bad\)"
    elif case == "same_file":
        genomes["bad"] = [ok]
        match = r"ok.fa is given for both good and bad"
    elif case == "case_names":
        genomes = {"Good": [ok], "good ": [other]}
        match = "differ only in case"
    elif case == "short":
        dna.write_fasta(other, [("c", dna.random_dna(rng, 4000)), ("d", dna.random_dna(rng, 600))])
        held_out, window = {"good": regions, "bad": {"valid": ["c:0-1000"], "test": ["d"]}}, 800
        match = r"species bad \(.*other.fa\): its longest sequence in split 'test' has 600 bases, shorter than one window"
    elif case == "all_n":
        dna.write_fasta(other, [("c", dna.random_dna(rng, 3000) + "N" * 1000)])
        match = r"species bad \(.*other.fa\): every base in split 'test' is N"
    elif case == "no_test":
        held_out = {"good": regions, "bad": {"valid": ["c:0-1000"]}}
        match = r"species bad \(.*other.fa\) has no sequence in split 'test'"
    elif case == "missing_name":
        held_out = {"good": regions, "bad": {"valid": ["chrZ"], "test": ["c:3000-"]}}
        match = r"held-out ranges name chrZ, which the FASTA files of bad \(.*other.fa\) do not hold"
    held_out = held_out or {"good": regions, "bad": regions}
    before = dna.entries(tmp_path)
    with pytest.raises(ValueError, match=match):
        prepare_species_genomes(genomes, tmp_path / "ds", valid_chroms=(), test_chroms=(), held_out=held_out,
                                window=window)
    assert dna.entries(tmp_path) == before  # no dataset, no temporary folder


def test_cli_regions_margin_window_and_flag_spellings(tmp_path, rng, dna, capsys):
    a = dna.write_fasta(tmp_path / "a.fa", [("c", dna.random_dna(rng, 6000))])
    b = dna.write_fasta(tmp_path / "b.fa", [("c", dna.random_dna(rng, 6000))])
    args = ["prepare-species", "--genome", f"a={a}", "--genome", f"b={b}", "--out", str(tmp_path / "ds"),
            "--valid-chroms", "", "--test-chroms", "", "--margin", "200", "--window", "1000", "--no-progress"]
    for sp in ("a", "b"):
        args += ["--valid-region", f"{sp}=c:0-1500", "--test-region", f"{sp}=c:4500-"]
    assert main(args) == 0
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert manifest["parameters"]["margin"] == 200 and manifest["splits"]["train"]["tokens"] == 2 * 2600
    bad = dna.write_fasta(tmp_path / "bad.fa", [("c", "ACGT-ACGT" * 200)])
    assert main(["prepare-species", "--genome", f"a={bad}", "--out", str(tmp_path / "x"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--unknown unk or --unknown n" in err and "unknown='n'" not in err


def test_species_windows_never_all_n(tmp_path, rng, dna):
    seq = "N" * 3000 + dna.random_dna(rng, 1000)
    genomes = {"a": [dna.write_fasta(tmp_path / "a.fa", [("c", seq)])],
               "b": [dna.write_fasta(tmp_path / "b.fa", [("c", dna.random_dna(rng, 4000))])]}
    prepare_species_genomes(genomes, tmp_path / "ds", valid_chroms=(), test_chroms=())
    ds = SpeciesWindowDataset(tmp_path / "ds", "train", 500, 50, max_n_fraction=0.5)
    for i in range(50):
        x, _ = ds[i]
        assert float(np.mean(x.numpy() == 11)) <= 0.5


def test_species_reader_names_species_and_file_when_every_window_is_n(tmp_path, rng, dna):
    seq = dna.random_dna(rng, 40) + "N" * 4000
    genomes = {"a": [dna.write_fasta(tmp_path / "a.fa", [("c", seq)])],
               "b": [dna.write_fasta(tmp_path / "b.fa", [("c", dna.random_dna(rng, 4000))])]}
    prepare_species_genomes(genomes, tmp_path / "ds", valid_chroms=(), test_chroms=())
    ds = SpeciesWindowDataset(tmp_path / "ds", "train", 500, 50, max_n_fraction=0.5)
    with pytest.raises(ValueError, match=r"species a \(.*a.fa\): no window of 500 bases in split 'train'"):
        [ds[i] for i in range(50)]
