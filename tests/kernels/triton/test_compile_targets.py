"""Every Triton kernel compiles for sm_80 and sm_90 with every launch configuration the heuristics can choose, the
default launches spill nothing, and ``bench kernels`` reports a model that never beats the physical floor.

No GPU is needed: ``mamba-bio-audio bench kernels`` records the launchers' own launches on meta tensors and compiles
them with Triton's GPU backend. It runs in child processes without ``TRITON_INTERPRET`` (this folder's conftest
turns the interpreter on for this process, and interpreted kernels do not compile), one per target in parallel, in
a Triton cache of their own, so the cost measured here is the cold cost: about 30 s wall, 50 s of CPU, on 2 cores.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

pytest.importorskip("triton")

from mamba_bio_audio import ops  # noqa: E402
from mamba_bio_audio.kernels._triton_common import recording_launches  # noqa: E402
from mamba_bio_audio.pipelines.bench import kernels_model, kernels_sass  # noqa: E402
from mamba_bio_audio.pipelines.bench.kernels_matrix import MATRIX  # noqa: E402

ARCHS = ("sm_80", "sm_90")
DEVICE = {"sm_80": "A100", "sm_90": "H100"}
REPORT_SHAPE = "train:768x2x4096:bf16"  # the matrix's "training step 768 bf16"


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> dict:
    """{arch: the JSON and printout of ``bench kernels --shape REPORT_SHAPE --matrix --arch arch``}, the two targets
    in parallel."""
    root = tmp_path_factory.mktemp("compile_targets")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(root / "triton-cache")
    procs = {arch: subprocess.Popen(
        [sys.executable, "-m", "mamba_bio_audio.pipelines.cli", "bench", "kernels", "--shape", REPORT_SHAPE,
         "--matrix", "--arch", arch, "--out-dir", str(root / arch)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for arch in ARCHS}
    results = {}
    for arch, proc in procs.items():
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"bench kernels {arch} failed ({proc.returncode}):\n{out[-2000:]}\n{err[-4000:]}"
        (path,) = (root / arch).glob("kernels_*.json")
        results[arch] = json.loads(path.read_text()) | {"printed": out}
    return results


@pytest.mark.parametrize("arch", ARCHS)
def test_every_launch_configuration_compiles(compiled, arch):
    matrix = compiled[arch]["matrix"]
    assert [c["config"] for c in matrix] == [label for label, *_ in MATRIX]
    failed = [f"{c['config']}: {r['kernel']}: {r[arch]['error']}" for c in matrix for r in c["launches"]
              if "error" in r[arch]]
    assert not failed, "\n".join(failed)
    for config in matrix:
        assert config["launches"], config["config"]
        for row in config["launches"]:
            assert 0 < row[arch]["registers"] <= 255 and row[arch]["num_warps"] == row["num_warps"], row


@pytest.mark.parametrize("arch", ARCHS)
def test_default_launches_spill_nothing(compiled, arch):
    spills = [f"{c['config']}: {r['kernel']} spills {r[arch]['spill_store_bytes']} B, "
              f"stack {r[arch]['stack_bytes']} B" for c in compiled[arch]["matrix"] if c["default"]
              for r in c["launches"] if r[arch]["spill_store_bytes"] or r[arch]["stack_bytes"]]
    assert not spills, "\n".join(spills)


def test_the_matrix_reaches_every_heuristic_choice(compiled):
    """The oracle: the tiers each launcher's heuristic can pick, written out by hand from the launchers."""
    seen: dict[str, dict[str, set]] = {}
    for config in compiled["sm_90"]["matrix"]:
        for row in config["launches"]:
            values = seen.setdefault(row["kernel"], {})
            for key, value in (row["constexprs"] | {"num_warps": row["num_warps"]}).items():
                values.setdefault(key, set()).add(value)
    for kernel in ("_scan_fwd_kernel", "_scan_bwd_kernel"):
        assert {1, 4, 16, 64, 256} <= seen[kernel]["N"] and seen[kernel]["BLOCK_L"] == {16}
        assert {1, 4, 8, 16, 32} <= seen[kernel]["NL"] and {1, 4, 8} <= seen[kernel]["NK"]
        assert {4, 8, 16} <= seen[kernel]["SUB"]
        for flag in ("HAS_D", "HAS_Z", "HAS_BIAS", "SOFTPLUS"):
            assert seen[kernel][flag] == {True, False}, (kernel, flag)
    # warps on channels (N 1 and 4: 2); the backward's N 256 puts 4 on its 8 in-thread states
    assert seen["_scan_fwd_kernel"]["num_warps"] == {1, 2} and seen["_scan_bwd_kernel"]["num_warps"] == {1, 2, 4}
    assert {1, 2, 8, 16, 64} <= seen["_scan_fwd_kernel"]["BLOCK_D"]  # 4: the wider layout's, NL 8
    assert {1, 2, 4, 16, 64} <= seen["_scan_bwd_kernel"]["BLOCK_D"]
    # L split into segments (the first passes run) and not
    assert {"_scan_fwd_local_kernel", "_scan_bwd_local_kernel"} <= seen.keys()
    assert seen["_scan_fwd_kernel"]["HAS_H0"] == seen["_scan_fwd_kernel"]["STORE_STATES"] == {True, False}
    assert seen["_scan_bwd_kernel"]["HAS_DLAST"] == seen["_scan_bwd_kernel"]["ATOMIC_BC"] == {True, False}
    for kernel in ("_conv_fwd_kernel", "_conv_bwd_kernel"):
        assert seen[kernel]["W"] == {2, 3, 4} and {16, 256} <= seen[kernel]["BLOCK_L"]
        for flag in ("HAS_BIAS", "HAS_INIT", "SILU"):
            assert seen[kernel][flag] == {True, False}, (kernel, flag)
    assert seen["_conv_update_kernel"]["W"] == {2, 4} and seen["_conv_update_kernel"]["BLOCK_T"] == {1, 4}
    assert seen["_rms_fwd_kernel"]["num_warps"] == {1, 4, 8, 16}
    assert seen["_rms_fwd_kernel"]["HAS_RES"] == seen["_rms_bwd_kernel"]["HAS_DRES_OUT"] == {True, False}
    assert seen["_state_update_kernel"]["BLOCK_M"] == {32, 16, 8, 4}
    assert seen["_state_update_kernel"]["num_warps"] == {4, 8}
    assert seen["_state_update_kernel"]["HAS_Z"] == {True, False}


@pytest.mark.parametrize("arch", ARCHS)
def test_the_report_is_a_model_that_never_beats_the_floor(compiled, arch):
    report, device = compiled[arch], DEVICE[arch]
    assert "not a measurement" in report["note"] and "not a measurement" in report["printed"]
    assert report["calibrate_against"] == kernels_model.DEVICES["H100"]["name"]
    (train,) = report["shapes"]
    # batch 2 × 1536 channels leaves fewer than 16 warps per SM: L is split, each direction's first pass and carry
    # pass run first
    assert [r["kernel"] for r in train["launches"]] == [
        "_rms_fwd_kernel", "_conv_fwd_kernel", "_scan_fwd_local_kernel", "_chain_segments_kernel", "_scan_fwd_kernel",
        "_scan_bwd_local_kernel", "_chain_segments_kernel", "_scan_bwd_kernel", "_conv_bwd_kernel", "_rms_bwd_kernel"]
    for row in train["launches"]:
        model = row["model"][device]
        assert model["bound_ms"] == max(model[k] for k in ("issue_ms", "mufu_ms", "dram_ms", "chain_ms"))
        if kernels_model.is_split_pass(row["kernel"]):  # no floor of its own: its direction's counts
            assert model["floor_ms"] == 0 and model["bound_over_floor"] is None
        else:
            assert model["bound_over_floor"] >= 1.0, (row["kernel"], device, model)
        assert model["warps_per_sm"] > 0 and model["occupancy"] == pytest.approx(model["warps_per_sm"] / 64, abs=1e-4)
        assert row[arch]["mix_per_element"]["instructions"] > 0
    scan_fwd = train["launches"][4]
    # one exp2 per (channel, step, state) at least, and the grid the launcher chose: d_inner / BLOCK_D × batch ×
    # the fewest segments that give 16 warps per SM
    assert scan_fwd[arch]["mix_per_element"]["mufu_ex2"] >= 1.0
    blocks, batch, segments = scan_fwd["grid"]
    assert (blocks, batch) == (1536 // scan_fwd["constexprs"]["BLOCK_D"], 2)
    warps_per_segment = blocks * batch * scan_fwd["num_warps"]
    sms = kernels_model.DEVICES[device]["sms"]
    assert (segments - 1) * warps_per_segment < 16 * sms <= segments * warps_per_segment
    for direction in ("scan_fwd", "scan_fwd_bwd"):
        assert train["summary"][device][direction]["bound_over_floor"] >= 1.0
    # the matrix's training step is the same launch: same resources
    (step,) = [c for c in report["matrix"] if c["config"] == "training step 768 bf16"]
    assert [r[arch]["registers"] for r in step["launches"]] == [r[arch]["registers"] for r in train["launches"]]


def test_the_plan_records_what_the_backend_launches(device):
    """The launches a real call makes (on the GPU, or on CPU tensors under the interpreter; recorded instead of run)
    equal the ones ``ops.triton_launches`` plans on meta tensors for the same sizes."""
    batch, d_inner, n_state, length = 2, 8, 4, 40
    gen = torch.Generator().manual_seed(0)
    u, delta, z = (torch.randn(batch, d_inner, length, generator=gen).to(device).requires_grad_() for _ in range(3))
    B, C = (torch.randn(batch, n_state, length, generator=gen).to(device) for _ in range(2))
    A = (-torch.rand(d_inner, n_state, generator=gen) - 0.5).to(device)
    D, bias = torch.ones(d_inner, device=device), torch.zeros(d_inner, device=device)
    with recording_launches(132) as real:
        out = ops.selective_scan_fn(u, delta, A, B, C, D, z=z, delta_bias=bias, delta_softplus=True, backend="triton")
        out.sum().backward()
    planned = ops.triton_launches("scan", 132, batch, d_inner, n_state, length, z_from_in_proj=False)

    def key(launch):
        return launch.kernel.fn.__name__, launch.grid, launch.kwargs

    assert [key(lr) for lr in real] == [key(lp) for lp in planned]
    # 2 programs of one warp on 132 SMs: L (3 chunks) split in 3, each direction's first pass and carry pass before
    # its kernel
    assert [launch.kernel.fn.__name__ for launch in real] == [
        "_scan_fwd_local_kernel", "_chain_segments_kernel", "_scan_fwd_kernel",
        "_scan_bwd_local_kernel", "_chain_segments_kernel", "_scan_bwd_kernel"]
    assert real[2].grid[2] == 3


def test_occupancy_known_answers():
    h100 = kernels_model.DEVICES["H100"]
    # 219 registers: 224 per thread, 7168 per warp, 2 warps per sub-partition = 8 warps = 2 blocks of 4
    assert kernels_model.occupancy(219, 2048, 4, h100)["warps_per_sm"] == 8
    # 128 registers at 8 warps: 4 warps per sub-partition = 16 warps = 25 %
    assert kernels_model.occupancy(128, 4096, 8, h100)["occupancy"] == 0.25
    # shared memory bound: 100 KiB + 1 KiB reserved per block fits twice in 228 KiB
    assert kernels_model.occupancy(32, 100 * 1024, 4, h100) == {
        "blocks_per_sm": 2, "warps_per_sm": 8, "occupancy": 0.125, "limited_by": "shared_memory"}


def test_sass_mix_counts_the_inner_loop():
    sass = """
        /*0000*/                   LDG.E.U16 R2, desc[UR4][R2.64] ;
.L_x_1:
        /*0010*/                   MUFU.EX2 R4, R5 ;
        /*0020*/                   FFMA R6, R4, R6, R7 ;
        /*0030*/              @!P0 LDG.E.128 R8, desc[UR4][R2.64] ;
        /*0040*/                   SHFL.UP PT, R9, R6, 0x1, RZ ;
        /*0050*/                   STG.E desc[UR4][R2.64], R6 ;
        /*0060*/               @P1 BRA `(.L_x_1) ;
        /*0070*/                   EXIT ;
.L_x_2:
        /*0080*/                   BRA `(.L_x_2);
"""
    loop, whole, found = kernels_sass.mix(sass)
    assert found and loop.instructions == 6 and whole.instructions == 9
    assert loop.groups["mufu_ex2"] == 1 and loop.groups["ffma"] == 1 and loop.groups["shfl"] == 1
    assert (loop.global_load_bytes, loop.global_store_bytes, whole.global_load_bytes) == (16, 4, 18)
    # 4 warps over 128 elements: each warp-instruction is 32 · 4 / 128 = 1 thread-instruction per element
    assert loop.per_element(4, 128)["mufu_ex2"] == 1.0


def test_bad_shape_and_the_interpreter_are_refused(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    bad = subprocess.run([sys.executable, "-m", "mamba_bio_audio.pipelines.cli", "bench", "kernels", "--shape",
                          "train:768x8", "--out-dir", str(tmp_path)], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "--shape must be train:D_MODELxBATCHxL" in bad.stderr
    interpreted = subprocess.run([sys.executable, "-m", "mamba_bio_audio.pipelines.cli", "bench", "kernels",
                                  "--out-dir", str(tmp_path)], capture_output=True, text=True,
                                 env=env | {"TRITON_INTERPRET": "1"})
    assert interpreted.returncode == 2 and "TRITON_INTERPRET=1 is set" in interpreted.stderr
    assert not list(tmp_path.iterdir())
