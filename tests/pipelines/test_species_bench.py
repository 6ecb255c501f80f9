"""``bench species``: the same classifier at several window lengths, the k-mer baseline on the same test
windows, JSON + PNG."""
import json

from mamba_bio_audio.pipelines.cli import main


def test_bench_species_on_tiny_data(data_dir, tmp_path, capsys):
    args = ["bench", "species", "--data", str(data_dir), "--dataset", "apes4", "--lengths", "64,256",
            "--steps", "2", "--tokens-per-step", "256", "--eval-items", "8", "--kmer-items", "64",
            "--work-dir", str(tmp_path / "runs"), "--out-dir", str(tmp_path / "results")]
    assert main(args) == 0
    [result] = (tmp_path / "results").glob("species_*.json")
    report = json.loads(result.read_text())
    assert [r["seq_len"] for r in report["rows"]] == [64, 256] and [r["batch"] for r in report["rows"]] == [4, 1]
    for row in report["rows"]:
        assert 0 <= row["test_acc"] <= 1 and 0 <= row["kmer_test_acc"] <= 1 and len(row["confusion"]) == 4
    assert report["chance"] == 0.25 and (tmp_path / "results" / report["png"]).stat().st_size > 1000
    assert "L 256: classifier" in capsys.readouterr().out
