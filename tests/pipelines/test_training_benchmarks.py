"""``bench memory`` and ``bench train`` at tiny shapes: one process per point, JSON + PNG, the checks."""
import json

from mamba_bio_audio.pipelines.bench.train_step import measure
from mamba_bio_audio.pipelines.cli import main
from mamba_bio_audio.pipelines.reporting import bench_results

TINY = {"d_model": 16, "n_layer": 2, "vocab_size": 12, "ssm_cfg": {"d_state": 4}}


def test_memory_sweep(tmp_path):
    code = main(["bench", "memory", "--device", "cpu", "--lengths", "7,9", "--sizes", "250k", "--chunk-size", "128",
                 "--variants", "mamba-chunked,transformer", "--max-transformer", "7", "--steps", "1", "--threads",
                 "1", "--out-dir", str(tmp_path)])
    assert code == 0
    report = json.loads(next(tmp_path.glob("memory_*.json")).read_text())
    rows = report["results"]
    assert [(r["variant"], r["seq_len"]) for r in rows] == [("mamba-chunked", 128), ("mamba-chunked", 512),
                                                             ("transformer", 128)]
    for row in rows:
        assert row["peak_mb"] > row["above_baseline_mb"] > 0 and row["tokens_per_s"] > 0
    assert 250e3 < rows[0]["params"] < 270e3 and abs(rows[2]["params"] - rows[0]["params"]) < 0.05 * rows[0]["params"]
    (check,) = report["checks"]["chunked_scaling"]
    assert check["lengths"] == [128, 512] and check["chunk_size"] == 128
    assert (tmp_path / report["plot"]).read_bytes()[:4] == b"\x89PNG"


def test_train_sweep(tmp_path):
    code = main(["bench", "train", "--device", "cpu", "--batches", "2", "--seq-len", "64", "--steps", "1",
                 "--warmup", "0", "--threads", "1", "--out-dir", str(tmp_path)])
    assert code == 0
    report = json.loads(next(tmp_path.glob("train_*.json")).read_text())
    assert [(r["arch"], r["batch"]) for r in report["results"]] == [("mamba", 2), ("transformer", 2)]
    assert report["parameters"]["device"] == "cpu"
    assert report["machine"].keys() == bench_results.machine(bench_results.start()).keys()  # the one writer's header
    assert all("error" not in r for r in report["results"])


def test_a_failing_point_is_recorded_not_raised():
    spec = {"arch": "mamba", "config": {**TINY, "chunk_size": 100}, "batch": 1, "seq_len": 64, "steps": 1,
            "warmup": 0, "device": "cpu", "seed": 0}
    assert "chunk_size" in measure(spec, timeout_s=120)["error"]


def test_a_bad_chunk_size_is_refused_before_any_run(tmp_path, capsys):
    assert main(["bench", "memory", "--device", "cpu", "--chunk-size", "100", "--out-dir", str(tmp_path)]) == 2
    assert "chunk_size must be" in capsys.readouterr().err and not list(tmp_path.iterdir())
