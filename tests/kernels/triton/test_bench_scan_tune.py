"""``benchmarks/scan_tune.py`` (outside the package) under Triton's interpreter: one point, compiled first by a
worker process, then timed forward and backward beside the default, all through ``mamba_bio_audio.ops``."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mamba_bio_audio import ops

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "scan_tune.py"


@pytest.fixture(scope="module")
def scan_tune():
    """The script as a module, loaded from its file (it is not installed)."""
    spec = importlib.util.spec_from_file_location("scan_tune", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_one_point_sweep_writes_best_and_default(tmp_path):
    out = tmp_path / "tune.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--shapes", "1x4x2x16", "--block-l", "16", "--block-d", "4",
                           "--lanes", "2", "--repeats", "1", "--compile-workers", "1", "--interpret", "--out", str(out)],
                          capture_output=True, text=True, env=os.environ | {"TRITON_INTERPRET": "1"}, timeout=600)
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert report["benchmark"] == "scan_tune" and report["machine"]["loadavg_after"] is not None
    assert report["parameters"]["compile_workers"]["failed"] == []
    assert [(r["direction"], r["block_l"], r["block_d"], r["lanes"], r["segments"]) for r in report["results"]] == [
        ("fwd", 16, 4, 2, 0), ("bwd", 16, 4, 2, 0)]
    assert all(r["ms"] > 0 and r["speedup_over_default"] > 0 for r in report["results"])
    assert report["best"] == report["results"]
    assert report["defaults"][0]["fwd_ms"] > 0 and report["defaults"][0]["bwd_ms"] > 0
    assert "best bwd 1×4×2×16 fp32: BLOCK_L 16, BLOCK_D 4, NL 2" in done.stdout


def test_the_launch_knobs_reach_the_kernel_through_ops(device):
    """A point of the sweep computes the same scan as the default launch (the knobs change speed, not results)."""
    gen = torch.Generator().manual_seed(0)
    u, delta, z = (torch.randn(1, 4, 40, generator=gen).to(device) for _ in range(3))
    A = -torch.rand(4, 2, generator=gen).to(device)
    B, C = (torch.randn(1, 2, 40, generator=gen).to(device) for _ in range(2))
    default = ops.selective_scan_fn(u, delta, A, B, C, z=z, delta_softplus=True, backend="triton")
    tuned = ops.selective_scan_tuned(u, delta, A, B, C, z=z, delta_softplus=True, block_l=16, block_d=2)
    torch.testing.assert_close(tuned, default)
    lanes = ops.selective_scan_tuned(u, delta, A, B, C, z=z, delta_softplus=True, forward_lanes=1, backward_lanes=2)
    torch.testing.assert_close(lanes, default)
    for segments in (1, 2):  # L 40 is 3 chunks of 16: run whole, and split in two
        split = ops.selective_scan_tuned(u, delta, A, B, C, z=z, delta_softplus=True, block_l=16, segments=segments)
        torch.testing.assert_close(split, default)
    with pytest.raises(ValueError, match=r"^A\b.*\(d_inner, N\)"):  # the op's argument checks come first
        ops.selective_scan_tuned(u, delta, A[:2], B, C, block_l=16)


def test_the_grid_keeps_tiles_within_the_register_budget(scan_tune):
    assert scan_tune.grid([32, 64, 128], [2, 4, 8, 16], n_state=16, max_tile=8192) == [
        (32, 2, 0, 0), (32, 4, 0, 0), (32, 8, 0, 0), (32, 16, 0, 0), (64, 2, 0, 0), (64, 4, 0, 0), (64, 8, 0, 0),
        (128, 2, 0, 0), (128, 4, 0, 0)]
    assert scan_tune.grid([16], [4], n_state=16, max_tile=8192, lanes=(0, 16), segments=(0, 1)) == [
        (16, 4, 0, 0), (16, 4, 0, 1), (16, 4, 16, 0), (16, 4, 16, 1)]


@pytest.mark.parametrize("argv, message", [
    (["--block-l", "48"], "--block-l must be comma-separated powers of two"),
    (["--block-d", "0"], "--block-d must be comma-separated powers of two"),
    (["--lanes", "3"], "--lanes must be comma-separated powers of two or 0"),
    (["--segments", "-1"], "--segments must be comma-separated non-negative integers"),
    (["--max-tile", "1"], "no (BLOCK_L, BLOCK_D) point"),
    (["--shapes", "1x4x2x16,1x4x4x16"], "must share one N"),
])
def test_bad_arguments_are_refused(scan_tune, capsys, argv, message):
    assert scan_tune.main(argv + ["--interpret"]) == 2
    assert message in capsys.readouterr().err
