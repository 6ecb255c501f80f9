"""``bench scan``'s floors, flash-attention comparison and time budget, on the CPU."""
import argparse
import json

import pytest
import torch

from mamba_bio_audio import ops
from mamba_bio_audio.pipelines.bench import budget, floors, scan


def parse(argv):
    parser = argparse.ArgumentParser()
    scan.add_arguments(parser)
    return parser.parse_args(argv)


def test_scan_work_counts_the_bytes_and_exponentials_it_must_spend():
    work = floors.scan_work((2, 8, 4, 16), itemsize=2)
    # forward: u, delta, z, out (2 x 8 x 16 each) and B, C (2 x 4 x 16 each), 2 bytes per element
    assert work["bytes_fwd"] == 2 * (4 * 2 * 8 * 16 + 2 * 2 * 4 * 16)
    # backward adds dout, u, delta, z read and du, ddelta, dz written, B, C read and dB, dC written
    assert work["bytes_fwd_bwd"] == work["bytes_fwd"] + 2 * (7 * 2 * 8 * 16 + 4 * 2 * 4 * 16)
    assert work["exp2_fwd"] == 2 * 8 * 16 * 4 and work["exp2_fwd_bwd"] == 2 * work["exp2_fwd"]


def test_floor_fields_divide_by_the_larger_floor():
    work = {"bytes_fwd": 1e9, "bytes_fwd_bwd": 3e9, "exp2_fwd": 4e9, "exp2_fwd_bwd": 8e9}
    rates = {"copy_bytes_per_s": 1e12, "exp2_per_s": 1e12}
    fields = floors.floor_fields(work, rates, fwd_ms=8.0, fwd_bwd_ms=16.0)
    assert fields["bandwidth_floor_fwd_ms"] == 1.0 and fields["exp2_floor_fwd_ms"] == 4.0
    assert fields["x_floor_fwd"] == 2.0 and fields["x_floor_fwd_bwd"] == 2.0


def test_rates_are_measured_on_the_cpu(monkeypatch):
    # the interpreter's state is read once per process, and the Triton tests' conftest turns it on for the session
    monkeypatch.setattr(ops, "triton_interpreter_on", lambda: False)
    rates = floors.measure(torch.device("cpu"))
    assert rates["copy_bytes_per_s"] > 1e8 and rates["exp2_per_s"] > 1e6
    assert rates["exp2_method"].startswith("torch.exp2")


def test_attention_and_floors_are_reported_beside_each_time(tmp_path, monkeypatch):
    monkeypatch.setattr(ops, "triton_interpreter_on", lambda: False)  # the CPU's own rates, not the interpreter's
    out = tmp_path / "scan.json"
    assert scan.run(parse(["--shapes", "1x8x4x16:bf16,1x8x4x32:bf16", "--backends", "reference,cpu", "--repeats", "1",
                           "--attention", "--floors", "--reference-max-length", "16", "--out", str(out)])) == 0
    report = json.loads(out.read_text())
    rows = {(tuple(r["shape"]), r["backend"]): r for r in report["results"]}
    assert set(rows) == {((1, 8, 4, 16), "reference"), ((1, 8, 4, 16), "cpu"), ((1, 8, 4, 32), "cpu")}
    assert rows[((1, 8, 4, 32), "cpu")]["speedup_fwd"] is None  # past --reference-max-length
    cpu = rows[((1, 8, 4, 16), "cpu")]
    for key in ("flash_over_scan_fwd", "flash_over_scan_fwd_bwd", "x_floor_fwd", "x_floor_fwd_bwd"):
        assert cpu[key] > 0, key
    assert [a["shape"] for a in report["attention"]] == [[1, 1, 16, 8], [1, 1, 32, 8]]
    assert all(a["backend"] == "sdpa-flash" and a["fwd_ms"] > 0 for a in report["attention"])
    assert report["floors"]["cpu"]["copy_bytes_per_s"] > 0 and report["skipped_shapes"] == []


def test_a_shape_that_would_not_fit_the_time_budget_is_skipped():
    costs = {}
    scan.record_cost(costs, "cpu", 2.0, (1, 8, 4, 16))
    scan.record_cost(costs, "cpu", 0.1, (1, 8, 4, 8))  # a smaller shape does not replace the larger one
    scan.record_cost(costs, "reference", 3.0, (1, 8, 4, 16))
    scan.record_cost(costs, "attention", 1.0, (1, 8, 4, 16))
    assert scan.estimate_seconds((1, 8, 4, 64), ["cpu"], costs) == pytest.approx(8.0)
    # the reference grows with L alone, attention with L squared
    assert scan.estimate_seconds((2, 8, 4, 32), ["reference", "attention"], costs) == pytest.approx(6.0 + 8.0)
    allowance = budget.TimeBudget(5.0)
    assert allowance.allows(1.0) and not allowance.allows(8.0)


def test_the_budget_records_points_it_did_not_start():
    allowance = budget.TimeBudget(60.0)
    calls = []

    def fake_measure(spec, timeout_s):
        calls.append(timeout_s)
        return {"ok": spec["n"]}

    assert allowance.run_point(fake_measure, {"n": 1}, 3600.0) == {"ok": 1} and calls[0] <= 60.0
    allowance.last_point_s = 120.0  # the last point took longer than what is left
    assert allowance.run_point(fake_measure, {"n": 2}, 3600.0) == {"error": budget.NOT_RUN} and len(calls) == 1
    with pytest.raises(ValueError, match="--time-budget must be > 0"):
        budget.TimeBudget(0)


def test_interpret_needs_the_interpreter(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(ops, "triton_interpreter_on", lambda: False)
    with pytest.raises(ValueError, match="--interpret needs TRITON_INTERPRET=1"):
        scan.run(parse(["--backends", "triton", "--interpret"]))


def test_a_backend_that_fails_at_a_shape_is_recorded_and_the_run_goes_on(tmp_path, monkeypatch, capsys):
    timed = scan.time_backend

    def flaky(backend, inputs, *args):
        if backend == "cpu" and inputs["u"].shape[-1] == 8:
            raise RuntimeError("out of resources\ndetails")
        return timed(backend, inputs, *args)

    monkeypatch.setattr(scan, "time_backend", flaky)
    out = tmp_path / "scan.json"
    assert scan.run(parse(["--shapes", "1x4x2x8,1x4x2x16", "--backends", "reference,cpu", "--repeats", "1",
                           "--out", str(out)])) == 0
    rows = json.loads(out.read_text())["results"]
    assert rows[1] == {"shape": [1, 4, 2, 8], "dtype": "float32", "device": "cpu", "backend": "cpu",
                       "error": "RuntimeError: out of resources"}
    assert rows[3]["backend"] == "cpu" and rows[3]["speedup_fwd_bwd"] > 0
    assert "1×4×2×8 cpu (cpu): RuntimeError: out of resources" in capsys.readouterr().out
