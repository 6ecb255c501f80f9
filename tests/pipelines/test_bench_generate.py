"""``bench generate`` runs end to end on a short grid, the decode loop alone too, and writes its JSON."""
import argparse
import json

import pytest
import torch

from mamba_bio_audio.pipelines.bench import generate


def test_bench_writes_json(tmp_path, capsys, run_bench):
    assert run_bench(generate, ["--preset", "sc09_small", "--batch-sizes", "1,3", "--samples", "16", "--threads", "1",
                                "--devices", "cpu", "--decode-steps", "10", "--out-dir", str(tmp_path)]) == 0
    (out,) = tmp_path.glob("generate_*.json")
    report = json.loads(out.read_text())
    assert [(r["device"], r["batch"]) for r in report["results"]] == [("cpu", 1), ("cpu", 3)]
    for result in report["results"]:
        assert result["samples_per_s_per_stream"] > 0
        assert abs(result["samples_per_s_total"] - result["batch"] * result["samples_per_s_per_stream"]) < 1
    assert report["parameters"]["params"] == 6_260_224 and report["meets_targets"] is None
    assert report["machine"]["torch_threads"] == 1 and report["versions"]["torch"] == torch.__version__
    # --decode-steps: the decode loop alone, eager on the CPU (steps rounded up to the pools' 16); no CUDA graphs
    assert [(r["batch"], r["mode"]) for r in report["decode"]] == [(1, "eager"), (1, "cuda_graph"), (3, "eager"),
                                                                   (3, "cuda_graph")]
    for eager, graphs in (report["decode"][:2], report["decode"][2:]):
        assert eager["steps"] == 16 and abs(eager["samples_per_s_total"] - eager["batch"] *
                                            eager["samples_per_s_per_stream"]) < 1
        assert abs(eager["latency_ms"] * eager["samples_per_s_per_stream"] / 1e3 - 1) < 0.01
        assert graphs == {"device": "cpu", "backend": "cpu", "batch": eager["batch"], "mode": "cuda_graph",
                          "steps": 16, "skipped": "CUDA graphs need a CUDA device"}
    assert report["decode_meets_targets"] == {"eager": None, "cuda_graph": None}  # the targets are for CUDA
    out = capsys.readouterr().out
    assert "samples/s per stream" in out and "decode eager" in out


@pytest.mark.parametrize("argv, message", [
    (["--batch-sizes", "0,2"], "--batch-sizes must be comma-separated positive integers"),
    (["--batch-sizes", "a"], "--batch-sizes must be comma-separated positive integers"),
    (["--samples", "0"], "--samples must be >= 1"),
    (["--threads", "0"], "--threads must be >= 1"),
])
def test_bad_arguments_are_refused(argv, message):
    parser = argparse.ArgumentParser()
    generate.add_arguments(parser)
    with pytest.raises(ValueError, match=message):
        generate.run(parser.parse_args(argv))


def test_cuda_without_a_gpu_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    parser = argparse.ArgumentParser()
    generate.add_arguments(parser)
    with pytest.raises(ValueError, match="no CUDA device"):
        generate.run(parser.parse_args(["--devices", "cpu,cuda"]))
