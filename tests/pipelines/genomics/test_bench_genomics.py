"""``bench genomics`` on a tiny grid: prefix reuse and naive rescoring measured side by side give equal scores,
the JSON holds every row and the result header, and the PNG is written beside it."""
import json

from mamba_bio_audio.pipelines.bench import genomics


def test_bench_genomics_writes_equal_scores_and_rates(tmp_path, capsys, run_bench):
    assert run_bench(genomics, ["--windows", "64,256", "--variants", "6", "--score-lengths", "", "--d-model", "16",
                                "--n-layer", "1", "--threads", "1", "--out-dir", str(tmp_path)]) == 0
    (out,) = tmp_path.glob("genomics_*.json")
    report = json.loads(out.read_text())
    assert [(r["window"], r["variants"]) for r in report["vep"]] == [(64, 6), (256, 6)]
    for row in report["vep"]:
        assert row["scores_equal"] and row["max_abs_diff"] <= 1e-5
        assert row["prefix_variants_per_s"] > 0 and row["naive_variants_per_s"] > 0
        assert abs(row["speedup"] - row["prefix_variants_per_s"] / row["naive_variants_per_s"]) < 1e-9
    assert report["all_scores_equal"] and report["machine"]["torch_threads"] == 1
    embed = report["embed"]
    assert embed["sequences_per_s"] > 0 if isinstance(embed, dict) else "not installed" in embed
    assert (tmp_path / report["plot"]).is_file()
    assert "prefix reuse" in capsys.readouterr().out
