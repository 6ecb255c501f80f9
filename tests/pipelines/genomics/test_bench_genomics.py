"""``bench genomics`` on a tiny grid: prefix reuse and naive rescoring measured side by side give equal scores,
the JSON holds every row and the result header, and the PNG is written beside it."""
import argparse
import json

import torch

from mamba_bio_audio.pipelines.bench import genomics


def test_bench_genomics_writes_equal_scores_and_rates(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    genomics.add_arguments(parser)
    args = parser.parse_args(["--windows", "64,256", "--variants", "6", "--score-lengths", "", "--d-model", "16",
                              "--n-layer", "1", "--threads", "1", "--out-dir", str(tmp_path)])
    threads = torch.get_num_threads()
    try:
        assert genomics.run(args) == 0
    finally:
        torch.set_num_threads(threads)
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
