"""``bench data-dna`` runs end to end at a tiny size and writes its JSON."""
import argparse
import json

from mamba_bio_audio.pipelines.bench import data_dna


def test_bench_data_dna_smoke(tmp_path):
    parser = argparse.ArgumentParser()
    data_dna.add_arguments(parser)
    args = parser.parse_args(["--size-mb", "2", "--formats", "plain", "--repeats", "1", "--seq-len", "16384",
                              "--windows", "4", "--work-dir", str(tmp_path), "--out-dir", str(tmp_path / "results")])
    assert data_dna.run(args) == 0
    (report,) = (tmp_path / "results").glob("data_dna_*.json")
    report = json.loads(report.read_text())
    results = report["results"]
    assert report["benchmark"] == "data_dna" and {"zlib", "isal", "numpy"} <= report["versions"].keys()
    assert [r["input"] for r in results] == ["plain", "windows-uniform", "windows-mamba"]
    assert results[0]["fasta_mb"] > 1.5 and results[0]["peak_rss_mb"]["main"] > 0
