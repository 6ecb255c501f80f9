"""``benchmarks/gpu_check.sh --dry-run``: every stage of the GPU run at tiny shapes on the CPU, in one run with one
stage failing on purpose; and the stage runner's limits (time, missing packages)."""
import importlib.util
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_gpu_check():
    """``benchmarks/gpu_check.py``, loaded from its file: it is a script beside the package, not part of it."""
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


gpu_check = _load_gpu_check()
FAILING = "gpu_tests"
# figures a CPU dry run measures (CUDA graphs and the GPU-shape tests cannot run there; FAILING fails on purpose)
CPU_FIGURES = [f.key for f in gpu_check.FIGURES if f.stage != FAILING and "cuda_graph" not in f.key]


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check") / "out"
    env = {k: v for k, v in os.environ.items() if k != "OUT"} | {gpu_check.FAIL_ENV: FAILING,
                                                                 "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--dry-run", "--pack", str(out)],
                          env=env, capture_output=True, text=True, timeout=900)
    summary = json.loads((out / "summary.json").read_text())
    return out, done, summary


def test_every_stage_runs_and_a_failing_one_does_not_stop_the_rest(dry_run):
    out, done, summary = dry_run
    assert done.returncode == 1, done.stdout + done.stderr  # one stage failed
    assert summary["dry_run"] is True
    statuses = {stage["stage"]: stage["status"] for stage in summary["stages"]}
    assert list(statuses) == list(gpu_check.STAGE_NAMES)
    assert statuses.pop(FAILING) == "failed"
    assert set(statuses.values()) == {"ok"}, summary["stages"]
    for stage in summary["stages"]:
        assert stage["limit_s"] == gpu_check.DRY_LIMIT_S and stage["log"] == f"raw/{stage['stage']}.log"
    assert summary["limit_s"] == gpu_check.DRY_LIMIT_S * len(gpu_check.STAGE_NAMES)
    # the stages run one after another inside the run (each time rounded to 0.1 s)
    assert sum(stage["wall_s"] for stage in summary["stages"]) <= summary["wall_s"] + 0.05 * len(summary["stages"])
    assert summary["environment"]["cuda"] is False and Path(summary["environment"]["package"]).resolve() == ROOT / "mamba_bio_audio"


def test_every_figure_is_reported_beside_its_target(dry_run):
    out, done, summary = dry_run
    figures = {fig["key"]: fig for fig in summary["figures"]}
    assert list(figures) == [f.key for f in gpu_check.FIGURES]
    for key in CPU_FIGURES:
        assert isinstance(figures[key]["value"], (int, float)), figures[key]
    for fig in figures.values():
        if fig["value"] is None:
            assert fig["verdict"] == "not measured"
        else:
            assert fig["verdict"] in ((None,) if fig["target"] is None else ("meets", "misses"))
    assert "CUDA graphs need a CUDA device" in figures["generate.per_stream_batch1_cuda_graph"]["detail"]
    assert figures[f"{FAILING}.failed"]["detail"].startswith("failed")
    markdown = (out / "summary.md").read_text()
    assert "Dry run" in markdown and all(name in markdown for name in gpu_check.STAGE_NAMES)
    assert markdown.count("not measured") >= 2 and "≥ 40" in markdown
    assert markdown in done.stdout


def test_the_pack_holds_the_summaries_and_the_raw_logs(dry_run):
    out, _, summary = dry_run
    files = [p for p in out.rglob("*") if p.is_file()]
    assert sorted(p.name for p in files) == ["raw.tar.gz", "summary.json", "summary.md"] and summary["raw"] == "raw.tar.gz"
    with tarfile.open(out / "raw.tar.gz") as tar:
        names = set(tar.getnames())
    assert {f"raw/{name}.log" for name in gpu_check.STAGE_NAMES} <= names
    for member in ("raw/env/env.json", "raw/scan/scan.json", "raw/scan_tune/scan_tune.json"):
        assert member in names
    for stage, prefix in (("train", "train_"), ("train_1m", "memory_"), ("generate", "generate_")):
        assert any(n.startswith(f"raw/{stage}/{prefix}") and n.endswith(".json") for n in names), stage


def test_a_stage_past_its_limit_is_stopped_with_its_children(tmp_path):
    marker = tmp_path / "child.pid"
    script = (f"import subprocess, time; p = subprocess.Popen(['sleep', '60']); "
              f"open({str(marker)!r}, 'w').write(str(p.pid)); time.sleep(60)")
    started = time.monotonic()
    result = gpu_check.run_command([sys.executable, "-c", script], tmp_path / "log", 2, dict(os.environ), tmp_path)
    assert result["status"] == "timeout" and result["rc"] is None and time.monotonic() - started < 20
    assert "stopped after its limit of 2 s" in (tmp_path / "log").read_text()
    child = int(marker.read_text())
    for _ in range(50):
        if not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2]:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the stage's child process outlived the stage")


def test_a_stage_whose_packages_are_missing_is_skipped(tmp_path):
    stage = gpu_check.Stage("probe", 10, ("no_such_module_for_gpu_check",), lambda ctx, st: ["true"], "probe")
    ctx = gpu_check.Context(dry=True, plan=gpu_check.DRY_PLAN, raw=tmp_path)
    record = gpu_check.run_stage(stage, ctx, dict(os.environ), cuda=None)
    assert record["status"] == "skipped" and record["reason"] == "no_such_module_for_gpu_check missing"
    cuda_less = gpu_check.run_stage(gpu_check.Stage("probe", 10, (), lambda ctx, st: ["true"], "probe"),
                                    gpu_check.Context(dry=False, plan=gpu_check.GPU_PLAN, raw=tmp_path),
                                    dict(os.environ), cuda=False)
    assert cuda_less["status"] == "skipped" and "no CUDA device" in cuda_less["reason"]


def test_the_children_import_the_package_from_this_tree_where_it_is_not_installed(tmp_path):
    # -S leaves site-packages (and the editable install's finder) out, as on the GPU machine, where the package is
    # not installed: only the children's PYTHONPATH can find it
    env = gpu_check.child_env(gpu_check.Context(dry=False, plan=gpu_check.GPU_PLAN, raw=tmp_path),
                              gpu_check.package_root(ROOT))
    done = subprocess.run([sys.executable, "-S", "-c", "import mamba_bio_audio; print(mamba_bio_audio.__file__)"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).resolve() == ROOT / "mamba_bio_audio" / "__init__.py"


def test_the_gpu_plan_measures_the_targets_shapes_first():
    scan = gpu_check.scan_shapes(gpu_check.GPU_PLAN).split(",")
    assert scan[0] == "1x1024x16x65536:bf16" and scan[1] == "8x2048x16x2048:bf16"  # the targets' shapes first
    batch_one = [scan[0], *scan[2:]]
    assert sorted(batch_one, key=lambda s: int(s[10:-5])) == [f"1x1024x16x{2 ** k}:bf16" for k in range(10, 19)]


def test_pytest_counts_read_a_run_stopped_before_its_closing_line(tmp_path):
    log = tmp_path / "log"
    log.write_text("[gw0] [ 10%] PASSED tests/a.py::t1\n[gw1] [ 20%] FAILED tests/a.py::t2\n"
                   "tests/b.py::t3 SKIPPED (needs a CUDA device) [ 30%]\n")
    assert gpu_check.pytest_counts(log) == {"passed": 1, "failed": 1, "skipped": 1}
    log.write_text("FAILED tests/a.py::t2 - boom\n===== 3 passed, 1 failed, 2 skipped, 1 error in 4.20s =====\n")
    assert gpu_check.pytest_counts(log) == {"passed": 3, "failed": 2, "skipped": 2}
