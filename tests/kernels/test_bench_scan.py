"""``bench scan`` runs end to end on its quick grid and writes its JSON."""
import argparse
import json

import pytest
import torch

from mamba_bio_audio.pipelines.bench import scan


def parse(argv):
    parser = argparse.ArgumentParser()
    scan.add_arguments(parser)
    return parser.parse_args(argv)


def test_quick_bench_writes_json(tmp_path, capsys, run_bench):
    out = tmp_path / "scan.json"
    assert run_bench(scan, ["--quick", "--threads", "1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["benchmark"] == "scan"
    assert list(report)[:4] == ["benchmark", "date", "machine", "versions"]  # the one writer's header
    assert list(report["machine"]) == ["platform", "processor", "cpu_count", "torch_threads", "numba_threads", "gpu",
                                       "loadavg_before", "loadavg_after", "openmp_wait"]
    assert report["machine"]["torch_threads"] == report["machine"]["numba_threads"] == 1
    assert report["versions"]["torch"] == torch.__version__ and report["versions"]["python"] and report["date"]
    assert report["headline"]["result"] is None  # the quick grid does not include the headline shape
    rows = report["results"]
    assert [(r["shape"], r["dtype"], r["backend"]) for r in rows] == [
        ([1, 24, 4, 70], "float32", "reference"), ([1, 24, 4, 70], "float32", "cpu"),
        ([2, 16, 4, 40], "bfloat16", "reference"), ([2, 16, 4, 40], "bfloat16", "cpu"),
    ]
    for row in rows:
        for key in ("fwd_ms", "fwd_bwd_ms", "speedup_fwd", "speedup_fwd_bwd", "state_updates_per_s_fwd",
                    "state_updates_per_s_fwd_bwd"):
            assert isinstance(row[key], (int, float)) and row[key] > 0, key
    assert "Mupd/s fwd" in capsys.readouterr().out


def test_default_out_path_names_device_and_date(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert scan.run(parse(["--shapes", "1x4x2x8", "--backends", "cpu", "--repeats", "1"])) == 0
    (out,) = (tmp_path / "benchmarks" / "results").glob("scan-cpu-*.json")
    assert len(out.stem.removeprefix("scan-cpu-")) == 8
    (row,) = json.loads(out.read_text())["results"]
    assert row["backend"] == "cpu" and row["speedup_fwd"] is None  # no reference, no ratio


def test_parse_shapes():
    assert scan.parse_shapes("1x512x16x16384, 2x64x16x4096:bf16") == [((1, 512, 16, 16384), "fp32"),
                                                                      ((2, 64, 16, 4096), "bf16")]


@pytest.mark.parametrize("argv, message", [
    (["--shapes", "1x512x16"], "--shapes entries must be"),
    (["--shapes", "1x0x16x8"], "--shapes entries must be"),
    (["--shapes", "1x4x2x8:fp8"], "--shapes entries must be"),
    (["--repeats", "0"], "--repeats must be >= 1"),
    (["--backends", "fast"], "--backends must be a comma-separated subset"),
    (["--threads", "0"], "--threads must be between 1 and"),
])
def test_bad_arguments_are_refused(argv, message):
    with pytest.raises(ValueError, match=message):
        scan.run(parse(argv))


def test_triton_without_a_gpu_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no CUDA device"):
        scan.run(parse(["--backends", "cpu,triton"]))
