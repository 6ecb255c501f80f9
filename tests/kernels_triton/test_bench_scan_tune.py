"""``bench scan-tune`` under Triton's interpreter: one point, compiled first by a worker process, then timed
forward and backward beside the default."""
import argparse
import json

import pytest

from mamba_bio_audio.pipelines.bench import scan_tune


def parse(argv):
    parser = argparse.ArgumentParser()
    scan_tune.add_arguments(parser)
    return parser.parse_args(argv)


def test_one_point_sweep_writes_best_and_default(tmp_path, capsys):
    out = tmp_path / "tune.json"
    assert scan_tune.run(parse(["--shapes", "1x4x2x16", "--chunks", "16", "--block-d", "4", "--repeats", "1",
                                "--compile-workers", "1", "--interpret", "--out", str(out)])) == 0
    report = json.loads(out.read_text())
    assert report["parameters"]["compile_workers"]["failed"] == []
    assert report["parameters"]["num_warps"] == scan_tune.NUM_WARPS_NOTE
    assert [(r["direction"], r["chunk"], r["block_d"]) for r in report["results"]] == [("fwd", 16, 4), ("bwd", 16, 4)]
    assert all(r["ms"] > 0 and r["speedup_over_default"] > 0 for r in report["results"])
    assert report["best"] == report["results"]
    assert report["defaults"][0]["fwd_ms"] > 0 and report["defaults"][0]["bwd_ms"] > 0
    assert "best bwd 1×4×2×16 fp32: CHUNK 16, BLOCK_D 4" in capsys.readouterr().out


def test_the_grid_keeps_tiles_within_the_register_budget():
    assert scan_tune.grid([32, 64, 128], [2, 4, 8, 16], n_state=16, max_tile=8192) == [
        (32, 2), (32, 4), (32, 8), (32, 16), (64, 2), (64, 4), (64, 8), (128, 2), (128, 4)]


@pytest.mark.parametrize("argv, message", [
    (["--chunks", "48"], "--chunks must be comma-separated powers of two"),
    (["--block-d", "0"], "--block-d must be comma-separated powers of two"),
    (["--max-tile", "1"], "no \\(CHUNK, BLOCK_D\\) point"),
    (["--shapes", "1x4x2x16,1x4x4x16"], "must share one N"),
])
def test_bad_arguments_are_refused(argv, message):
    with pytest.raises(ValueError, match=message):
        scan_tune.run(parse(argv + ["--interpret"]))
