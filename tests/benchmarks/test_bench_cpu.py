"""``mamba-bio-audio bench cpu`` through the real command line: its quick run writes the one writer's JSON and PNG
with every part (ceilings, the profiled step by op, the AMP bf16 step, the chunked row, decoding, a peer with its
ratios), and bad arguments are refused with one line naming the option."""
import json
import subprocess
import sys

import pytest

from mamba_bio_audio.pipelines import cli
from mamba_bio_audio.pipelines.bench.cpu_profile import CATEGORIES


def _bench(*argv, cwd):
    return subprocess.run([sys.executable, "-m", "mamba_bio_audio.pipelines.cli", "bench", "cpu", *argv],
                          capture_output=True, text=True, cwd=cwd, timeout=600)


def test_quick_run_writes_every_part(tmp_path):
    done = _bench("--quick", "--threads", "1", "--peers", "mambapy", "--out-dir", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    [path] = tmp_path.glob("cpu_*.json")
    report = json.loads(path.read_text())
    assert list(report)[:4] == ["benchmark", "date", "machine", "versions"] and report["benchmark"] == "cpu"
    assert report["machine"]["torch_threads"] == report["machine"]["numba_threads"] == 1
    assert (tmp_path / report["plot"]).stat().st_size > 0
    settings, ceilings, training = report["settings"], report["ceilings"], report["training"]
    assert (settings["d_model"], settings["length"], settings["compile"]) == (32, 128, False)
    assert ceilings["matmul_gflop_per_s"] > 0 and ceilings["scan_updates_per_s"] > 0
    assert training["tokens_per_s"] == pytest.approx(settings["batch"] * settings["length"]
                                                     / (training["step_ms"] / 1e3), rel=0.01)
    profile = training["profile"]
    assert list(profile["ms"]) == list(CATEGORIES)
    # every op the step runs shows up in its own category, and the categories add up to the profiled step
    for category in ("projections", "conv", "scan", "norms", "loss", "optimizer"):
        assert profile["ms"][category] > 0, category
    assert sum(profile["ms"].values()) == pytest.approx(profile["profiled_step_ms"], abs=0.1)
    assert 0 < profile["projections_fraction_of_matmul"] and 0 < profile["scan_fraction_of_scan_rate"]
    amp = report["amp_bf16"]
    assert amp["speedup_over_fp32"] == pytest.approx(training["step_ms"] / amp["step_ms"], rel=0.01)
    assert amp["tokens_per_s"] == pytest.approx(settings["batch"] * settings["length"] / (amp["step_ms"] / 1e3),
                                                rel=0.01)
    assert "under AMP bf16" in done.stdout
    chunked = report["chunked"]
    assert (chunked["length"], chunked["chunk_size"]) == (512, 128)
    assert chunked["fraction_of_short"] == pytest.approx(chunked["tokens_per_s"] / chunked["short_tokens_per_s"],
                                                         abs=2e-3)
    assert chunked["short_tokens_per_s"] == pytest.approx(settings["batch"] * settings["length"]
                                                          / (chunked["short_step_ms"] / 1e3), rel=0.01)
    # 512 tokens in chunks of 128: three of the four chunks run forward twice (the ms are rounded to 0.1, a few
    # percent of the quick run's ms)
    step, forward = chunked["short_step_ms"], chunked["short_forward_ms"]
    assert chunked["recompute_ceiling"] == pytest.approx(512 * step / (512 * step + 3 * 128 * forward), abs=0.02)
    decode = report["decode"]
    assert decode["tokens"] == 16 and decode["overhead_us_per_token"] == pytest.approx(
        decode["us_per_token"] - decode["arithmetic_us_per_token"], abs=0.02)
    [peer] = report["peers"]
    assert peer["peer"] == "mambapy" and peer["length"] == 128, peer
    assert peer["ours_train_speedup"] == pytest.approx(training["tokens_per_s"] / peer["tokens_per_s"], rel=0.01)
    assert peer["ours_decode_speedup"] == pytest.approx(decode["tokens_per_s"] / peer["decode_tokens_per_s"],
                                                        rel=0.01)
    assert "chunked L 512" in done.stdout and "mambapy (L 128)" in done.stdout


@pytest.mark.parametrize("argv, message", [
    (["--peers", "mambapy,llama"], "--peers: unknown ['llama']"),
    (["--length", "0"], "--length must be >= 1"),
    (["--threads", "0"], "--threads must be between 1"),
])
def test_bad_arguments_are_refused_before_any_work(tmp_path, capsys, argv, message):
    """The console command's own entry point, in process (each subprocess would cost an import of torch)."""
    assert cli.main(["bench", "cpu", *argv, "--out-dir", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err and not list(tmp_path.iterdir())


def test_a_peer_that_does_not_import_is_a_row_not_a_failure(monkeypatch):
    """``sys.modules[name] = None`` makes Python's import of that package fail, as on a machine without it."""
    from mamba_bio_audio.pipelines.bench import cpu_peers

    monkeypatch.setitem(sys.modules, "mambapy", None)
    monkeypatch.setitem(sys.modules, "mambapy.mamba", None)
    row = cpu_peers.measure_peer("mambapy", d_model=16, n_layer=1, vocab=16, batch=1, length=8, decode_tokens=2,
                                 repeats=1)
    assert row["peer"] == "mambapy" and row["skipped"].startswith("not importable") and "tokens_per_s" not in row
