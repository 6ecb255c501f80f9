"""``examples dna`` on tiny stand-ins for the Debian package files (no network, no real packages)."""
import gzip
import os
import stat

import pytest

from mamba_bio_audio.data_prep.examples import dna as examples_dna
from mamba_bio_audio.data_prep.examples.debian import package_file
from mamba_bio_audio.data_prep.datasets.dna_layout import read_records_tsv
from mamba_bio_audio.data_prep.examples.dna import APES_MAF, CHR20, CHR20_FAI, CHRX, prepare_hg_small
from mamba_bio_audio.data_prep.datasets.prepared import PreparedDataset
from mamba_bio_audio.pipelines.cli import main


def _place(cache, f, data: bytes):
    path = cache / f.package / f.path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def fake_cache(tmp_path, rng, dna):
    """The example package files, tiny, where the cache keeps them: chr20 BGZF, chrX plain gzip, a MAF."""
    cache = tmp_path / "cache"
    chr20 = dna.random_dna(rng, 30_000, n_runs=2)
    dna.write_fasta(_place(cache, CHR20, b""), [("20", chr20)], compress="bgzf")
    _place(cache, CHR20_FAI, f"20\t{len(chr20)}\t4\t60\t61\n".encode())
    dna.write_fasta(_place(cache, CHRX, b""), [("X  gi|224589822|ref|NC_000023.10|", dna.random_dna(rng, 20_000))],
                    compress="gzip")
    lines = ["##maf version=1", ""]
    for pos in [39_000_000, 41_000_000, 44_999_990, 46_000_000]:
        seq = dna.random_dna(rng, 40)
        lines += ["a"] + [f"s {p}.22 {pos if p == 'Hsap' else 0} 40 + 51304566 {seq}"
                          for p in ("Hsap", "Ptro", "Ggor", "Ppyg")] + [""]
    _place(cache, APES_MAF, gzip.compress(("\n".join(lines) + "\n").encode()))
    return cache


def test_hg_small_holds_out_the_end_of_chr20(tmp_path, fake_cache):
    locate = examples_dna.debian_locator(fake_cache, system_root=tmp_path / "no-root")
    prepare_hg_small(tmp_path / "hg", locate, held_out_bases=5000)
    ds = PreparedDataset(tmp_path / "hg")
    rows = {s: [(r["name"], r["start"], r["end"]) for r in read_records_tsv(tmp_path / "hg", s)]
            for s in ds.split_names}
    assert rows == {"train": [("20", "0", "25000"), ("X", "0", "20000")], "valid": [("20", "25000", "27500")],
                    "test": [("20", "27500", "30000")]}
    assert "Not hg38" in ds.manifest["notes"] and "GRCh37" in ds.manifest["notes"]


def test_cli_examples_dna_apes4(tmp_path, fake_cache, capsys):
    assert main(["examples", "dna", "--out", str(tmp_path / "data"), "--cache", str(fake_cache), "--only", "apes4",
                 "--quiet"]) == 0
    ds = PreparedDataset(tmp_path / "data" / "apes4")
    assert ds.manifest["species"] == ["human", "chimpanzee", "gorilla", "orangutan"]
    assert "no bonobo" in ds.manifest["notes"]
    assert {s: ds.split(s).info["records"] for s in ds.split_names} == {"train": 4, "valid": 4, "test": 4}
    assert (tmp_path / "data" / "apes4" / "maf_stats.tsv").read_text().splitlines()[-1] == "straddling\t1"
    assert main(["examples", "dna", "--out", str(tmp_path / "data"), "--cache", str(fake_cache), "--only", "apes4",
                 "--quiet"]) == 0
    assert "up to date" in capsys.readouterr().out


def _fake_tool(folder, name, script):
    path = folder / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_package_files_installed_cached_or_fetched(tmp_path, monkeypatch):
    root, cache, bin_dir = tmp_path / "root", tmp_path / "cache", tmp_path / "bin"
    (root / "usr/share/doc/pkg").mkdir(parents=True)
    (root / "usr/share/doc/pkg/file.txt").write_text("installed")
    assert package_file("pkg", "usr/share/doc/pkg/file.txt", cache, root).read_text() == "installed"
    bin_dir.mkdir()
    _fake_tool(bin_dir, "apt-get", 'echo "deb of $2" > "$2_1.0_all.deb"\n')
    _fake_tool(bin_dir, "dpkg-deb", 'mkdir -p "$3/usr/share/doc/other" && cp "$2" "$3/usr/share/doc/other/file.txt"\n')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    fetched = package_file("other", "usr/share/doc/other/file.txt", cache, root)
    assert fetched == cache / "other/usr/share/doc/other/file.txt" and fetched.read_text() == "deb of other\n"
    assert sorted(p.name for p in cache.iterdir()) == ["other"]  # no temporary folders left
    with pytest.raises(FileNotFoundError, match="neither installed nor in"):
        package_file("other", "usr/share/doc/other/missing.txt", cache, root, fetch=False)
    _fake_tool(bin_dir, "apt-get", 'echo "E: Unable to locate package $2" >&2; exit 100\n')
    with pytest.raises(ValueError, match="apt-get download nope failed .*Unable to locate package nope.*update"):
        package_file("nope", "usr/share/doc/nope/x", cache, root)
    assert sorted(p.name for p in cache.iterdir()) == ["other"]
