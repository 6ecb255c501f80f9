"""``benchmarks/gpu_check.sh``: the GPU run in one command of at most 8.5 minutes, on the device machine this
project borrows (one H100/H200; its limits, 10 minutes a command and 8 returned files, are written into
:data:`STAGES` and ``--pack``).

Stages, each a child process with its own wall-clock limit (:data:`STAGES`, 490 s in all on a GPU), its own log,
and its exit status recorded; a stage that fails or runs out of time does not stop the ones after it:

1. ``env``: versions, the device, and that the package imports from this tree;
2. ``kernel_tests``: ``pytest tests/kernels/triton -m "not gpu"`` natively (compiled kernels, inductor);
3. ``gpu_tests``: ``pytest tests/kernels/triton -m gpu`` (real shapes);
4. ``scan``: ``bench scan`` at batch 1, 1024 channels, N 16, bf16, L = 2^10 ... 2^18 (as far as the time allows)
   and at (8, 2048, 2048), forward and forward+backward, against the reference, causal flash attention at equal
   width and the bandwidth and exponential floors (``pipelines/bench/floors.py``), all measured in this run;
5. ``static``: ``bench kernels``, the static model of the same scans (compile only), to set beside the measurement;
6. ``scan_tune``: ``benchmarks/scan_tune.py``, BLOCK_L 16/64 x the lanes on the states (each layout's own, 16),
   forward and backward separately;
7. ``split``: ``benchmarks/scan_tune.py`` again, batch 1, 1024 channels, L 2^11 ... 2^14, L split into the
   backend's segments or run whole, forward and backward: the L below which ``scan_segments`` should not split;
8. ``train``: ``bench train``, Mamba against Transformer++ at the 125M shape, L 2048, batch 1, 2, 4, 8;
9. ``train_1m``: ``bench memory``, one chunked training step of the 7M DNA model on 2^20 tokens at batch 1;
10. ``generate``: ``bench generate``, SaShiMi decode at batch 1 and 256, eager and with CUDA graphs.

Then ``summary.md`` (one page) and ``summary.json``: each stage's status and each figure beside its target
(:data:`FIGURES`), "not measured" where a stage did not produce it. The raw files (logs, every JSON, PNGs) are
under ``raw/``; ``--pack`` puts them into ``raw.tar.gz`` instead, since the device machine returns at most 8
files (the default when the output folder comes from ``$OUT``).

``--dry-run`` runs every stage on the CPU at tiny shapes (Triton's interpreter for the Triton paths; the test
stages run a small selection) so that the test suite keeps this script working; its figures exercise the code
and mean nothing for the targets.

The package need not be installed: the children import ``mamba_bio_audio`` from this tree, its root first on
``PYTHONPATH`` (an installed copy elsewhere does not shadow it). A stage whose Python packages
are missing is skipped with "<module> missing". ``MBA_GPU_CHECK_FAIL=stage[,stage]`` makes the named stages exit
with status 3 instead of running (to check that the rest go on).

This module imports only the standard library, so that it runs before the package is importable.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.util import find_spec
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
FAIL_ENV = "MBA_GPU_CHECK_FAIL"
DRY_LIMIT_S = 180  # per stage in a dry run
SWEEP_MARGIN_S = 15  # a sweep's --time-budget is its stage's limit less this (start-up, writing the JSON)
BASE_MODULES = ("torch", "numpy", "einops", "yaml")
EXPAND = 2  # the models' d_inner / d_model (the Mamba block's default expansion): a scan shape's training step


@dataclass(frozen=True)
class Plan:
    """The shapes of one kind of run: the targets' shapes on a GPU, or tiny ones for the dry run."""

    scan_width: int
    scan_state: int
    scan_lengths: tuple[int, ...]  # in the order run: the targets' lengths first, in case time runs out
    batch_shape: tuple[int, int, int, int]  # (batch, d_inner, N, L)
    reference_max_length: int
    headline_length: int  # the reference speed-up target's L
    flash_min_length: int  # faster than flash attention from this L on
    flash_length: int  # the L of the "x times flash attention" target
    floor_min_length: int  # within the floor target from this L on
    tune_shapes: str
    split_shapes: str  # batch 1 at short L: where splitting L into segments stops paying
    train_batches: str
    train_1m_log2: int
    generate_batches: str


GPU_PLAN = Plan(scan_width=1024, scan_state=16, scan_lengths=tuple(2 ** k for k in (16, 15, 14, 11, 12, 13, 10, 17, 18)),
                batch_shape=(8, 2048, 16, 2048), reference_max_length=2 ** 16, headline_length=2 ** 16,
                flash_min_length=2 ** 11, flash_length=2 ** 15, floor_min_length=2 ** 14,
                tune_shapes="1x1024x16x65536:bf16,8x2048x16x2048:bf16",
                split_shapes=",".join(f"1x1024x16x{2 ** k}:bf16" for k in (11, 12, 13, 14)),
                train_batches="1,2,4,8", train_1m_log2=20,
                generate_batches="1,256")
DRY_PLAN = Plan(scan_width=8, scan_state=16, scan_lengths=(16,), batch_shape=(2, 8, 16, 16),
                reference_max_length=16, headline_length=16, flash_min_length=16, flash_length=16,
                floor_min_length=16, tune_shapes="1x8x4x16:bf16", split_shapes="1x4x4x32:bf16", train_batches="2",
                train_1m_log2=7,
                generate_batches="1,2")


def _shape_text(shape) -> str:
    return "x".join(map(str, shape)) + ":bf16"


def scan_shapes(plan: Plan) -> str:
    """``bench scan --shapes``: the headline length at batch 1 first (nothing measured yet, so ``--time-budget``
    cannot skip it on a first shape's compile costs), then the batch shape, then batch 1 over the other lengths."""
    batch_one = [(1, plan.scan_width, plan.scan_state, n) for n in plan.scan_lengths]
    shapes = batch_one[:1] + [plan.batch_shape] + batch_one[1:]
    return ",".join(_shape_text(s) for s in shapes)


# --------------------------------------------------------------------------------------------------------------
# stages


@dataclass
class Context:
    """What a stage's command is built from."""

    dry: bool
    plan: Plan
    raw: Path  # the folder of logs and stage folders
    python: str = sys.executable

    def folder(self, stage: str) -> Path:
        return self.raw / stage


@dataclass(frozen=True)
class Stage:
    name: str
    limit_s: int  # wall-clock limit on the GPU
    modules: tuple[str, ...]  # importable modules it needs
    command: Callable[[Context, "Stage"], list[str]]
    what: str
    compiles_for_gpu: bool = False  # compiles for a GPU target even in a dry run: never under the interpreter

    def sweep_budget(self, ctx: Context) -> str:
        return str(DRY_LIMIT_S if ctx.dry else self.limit_s - SWEEP_MARGIN_S)


def _bench(ctx: Context, name: str, *args: str) -> list[str]:
    return [ctx.python, "-m", "mamba_bio_audio.pipelines.cli", "bench", name, *args]


def _env_command(ctx: Context, stage: Stage) -> list[str]:
    return [ctx.python, str(HERE / "gpu_check.py"), "--env-report", str(ctx.folder(stage.name) / "env.json")]


def _pytest(ctx: Context, marker: str, workers: int, *selection: str) -> list[str]:
    command = [ctx.python, "-m", "pytest", "-v", "-p", "no:cacheprovider", "-m", marker,
               *(selection or ["tests/kernels/triton"])]
    if not ctx.dry and find_spec("xdist") is not None:
        command += ["-n", str(workers)]
    if find_spec("pytest_timeout") is not None:
        command += ["--timeout", "120"]
    return command


def _kernel_tests(ctx: Context, stage: Stage) -> list[str]:
    dry = ["tests/kernels/triton/test_triton_rms_norm.py::test_many_rows_share_the_weight_gradient"]
    return _pytest(ctx, "not gpu", 8, *(dry if ctx.dry else []))


def _gpu_tests(ctx: Context, stage: Stage) -> list[str]:
    return _pytest(ctx, "gpu", 4, *(["tests/kernels/triton/test_triton_gpu_shapes.py"] if ctx.dry else []))


def _scan(ctx: Context, stage: Stage) -> list[str]:
    p = ctx.plan
    args = ["--backends", "reference,triton", "--shapes", scan_shapes(p), "--reference-max-length",
            str(p.reference_max_length), "--attention", "--floors", "--time-budget", stage.sweep_budget(ctx),
            "--out", str(ctx.folder(stage.name) / "scan.json")]
    args += ["--repeats", "1", "--interpret"] if ctx.dry else ["--repeats", "5", "--reference-repeats", "1"]
    return _bench(ctx, "scan", *args)


def _scan_tune(ctx: Context, stage: Stage) -> list[str]:
    args = ["--shapes", ctx.plan.tune_shapes, "--time-budget", stage.sweep_budget(ctx),
            "--out", str(ctx.folder(stage.name) / "scan_tune.json")]
    args += (["--block-l", "16", "--block-d", "4", "--repeats", "1", "--interpret"] if ctx.dry else
             ["--block-l", "16,64", "--block-d", "4", "--lanes", "0,16", "--max-tile", "8192", "--repeats", "10",
              "--compile-workers", "9"])
    return [ctx.python, str(HERE / "scan_tune.py"), *args]


def _split(ctx: Context, stage: Stage) -> list[str]:
    """scan_tune at the default launch (BLOCK_L 16, BLOCK_D 4) with the backend's segments and with none."""
    args = ["--shapes", ctx.plan.split_shapes, "--block-l", "16", "--block-d", "4", "--segments", "0,1",
            "--time-budget", stage.sweep_budget(ctx), "--out", str(ctx.folder(stage.name) / "split.json")]
    args += ["--repeats", "1", "--interpret"] if ctx.dry else ["--repeats", "10"]
    return [ctx.python, str(HERE / "scan_tune.py"), *args]


def static_shapes(plan: Plan) -> list[str]:
    """``bench kernels --shape`` of the training steps whose scans ``scan`` measures: the headline length at batch
    1 and the batch shape (d_inner = :data:`EXPAND` d_model; the model's N is 16)."""
    batch, d_inner, _, length = plan.batch_shape
    return [f"train:{plan.scan_width // EXPAND}x1x{plan.headline_length}:bf16",
            f"train:{d_inner // EXPAND}x{batch}x{length}:bf16"]


def _static(ctx: Context, stage: Stage) -> list[str]:
    shapes = [arg for shape in static_shapes(ctx.plan) for arg in ("--shape", shape)]
    return _bench(ctx, "kernels", "--arch", "sm_90", *shapes, "--out-dir", str(ctx.folder(stage.name)))


def _device_args(ctx: Context) -> list[str]:
    return ["--device", "cpu", "--threads", "1"] if ctx.dry else ["--device", "cuda"]


def _train(ctx: Context, stage: Stage) -> list[str]:
    args = [*_device_args(ctx), "--batches", ctx.plan.train_batches, "--time-budget", stage.sweep_budget(ctx),
            "--out-dir", str(ctx.folder(stage.name))]
    args += ["--seq-len", "64", "--steps", "1", "--warmup", "0"] if ctx.dry else ["--seq-len", "2048", "--steps",
                                                                                 "2", "--warmup", "1"]
    return _bench(ctx, "train", *args)


def _train_1m(ctx: Context, stage: Stage) -> list[str]:
    return _bench(ctx, "memory", *_device_args(ctx), "--sizes", "7m", "--lengths", str(ctx.plan.train_1m_log2),
                  "--variants", "mamba-chunked", "--chunk-size", "64" if ctx.dry else "65536", "--steps", "1",
                  "--warmup", "0", "--time-budget", stage.sweep_budget(ctx), "--out-dir", str(ctx.folder(stage.name)))


def _generate(ctx: Context, stage: Stage) -> list[str]:
    args = ["--preset", "sc09_small", "--batch-sizes", ctx.plan.generate_batches,
            "--out-dir", str(ctx.folder(stage.name))]
    args += (["--devices", "cpu", "--samples", "16", "--decode-steps", "16", "--threads", "1"] if ctx.dry else
             ["--devices", "cuda", "--samples", "256", "--decode-steps", "128"])
    return _bench(ctx, "generate", *args)


STAGES = (
    Stage("env", 15, ("torch",), _env_command, "versions, the device, the package importing from this tree"),
    Stage("kernel_tests", 85, BASE_MODULES + ("pytest", "triton"), _kernel_tests,
          "pytest tests/kernels/triton -m 'not gpu' (compiled kernels, inductor)"),
    Stage("gpu_tests", 80, BASE_MODULES + ("pytest", "triton"), _gpu_tests,
          "pytest tests/kernels/triton -m gpu (real shapes)"),
    Stage("scan", 100, BASE_MODULES + ("numba", "rich", "triton"), _scan,
          "bench scan: vs reference, causal flash attention, bandwidth and exp2 floors"),
    Stage("static", 20, BASE_MODULES + ("triton",), _static,
          "bench kernels: the static model of the scan's launches at the scan stage's shapes (compile only)",
          compiles_for_gpu=True),
    Stage("scan_tune", 45, BASE_MODULES + ("numba", "rich", "triton"), _scan_tune,
          "benchmarks/scan_tune.py: BLOCK_L 16/64 x the lanes on the states, forward and backward"),
    Stage("split", 20, BASE_MODULES + ("numba", "rich", "triton"), _split,
          "benchmarks/scan_tune.py: L split into segments or not, batch 1, L 2K-16K, forward and backward"),
    Stage("train", 65, BASE_MODULES + ("numba", "matplotlib"), _train,
          "bench train: Mamba vs Transformer++, 125M, L 2048, batch 1..8"),
    Stage("train_1m", 30, BASE_MODULES + ("numba", "matplotlib"), _train_1m,
          "bench memory: 7M DNA model, one chunked step on 2^20 tokens"),
    Stage("generate", 30, BASE_MODULES + ("rich",), _generate,
          "bench generate: SaShiMi decode at batch 1 and 256, eager and CUDA graphs"),
)
STAGE_NAMES = tuple(stage.name for stage in STAGES)


def _kill_group(process: subprocess.Popen) -> None:
    """SIGTERM to the stage's process group (its own children too), SIGKILL after 5 s."""
    for sig, wait_s in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def run_command(command: list[str], log_path: Path, limit_s: float, env: dict, cwd: Path) -> dict:
    """Run ``command`` in its own process group with stdout and stderr to ``log_path``, stopped after ``limit_s``
    seconds. Returns status ("ok", "failed", "timeout"), rc, wall_s and cpu_s (user + system time of the
    processes it waited for)."""
    started = time.monotonic()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(log_path, "w") as log:
        log.write(f"$ {shlex.join(command)}\n")
        log.flush()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   cwd=cwd, env=env, start_new_session=True)
        try:
            rc = process.wait(timeout=limit_s)
            status = "ok" if rc == 0 else "failed"
        except subprocess.TimeoutExpired:
            _kill_group(process)
            rc, status = None, "timeout"
            log.write(f"\n[gpu_check] stopped after its limit of {limit_s:.0f} s\n")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = after.ru_utime - usage.ru_utime + after.ru_stime - usage.ru_stime
    return {"status": status, "rc": rc, "wall_s": round(time.monotonic() - started, 1), "cpu_s": round(cpu_s, 1)}


def missing_modules(modules) -> list[str]:
    return [name for name in modules if find_spec(name) is None]


def run_stage(stage: Stage, ctx: Context, env: dict, cuda: bool | None) -> dict:
    """One stage: skipped (missing modules, no CUDA on a GPU run), deliberately failed (:data:`FAIL_ENV`), or run."""
    record = {"stage": stage.name, "what": stage.what, "limit_s": DRY_LIMIT_S if ctx.dry else stage.limit_s,
              "log": f"raw/{stage.name}.log"}
    missing = missing_modules(stage.modules)
    if missing:
        return record | {"status": "skipped", "reason": f"{', '.join(missing)} missing", "wall_s": 0.0}
    if cuda is False and not ctx.dry and stage.name != "env":
        return record | {"status": "skipped", "reason": "no CUDA device (run with --dry-run without one)",
                         "wall_s": 0.0}
    ctx.folder(stage.name).mkdir(parents=True, exist_ok=True)
    command = stage.command(ctx, stage)
    if stage.name in os.environ.get(FAIL_ENV, "").split(","):
        command = [ctx.python, "-c", f"import sys; print('deliberate failure: {FAIL_ENV} names this stage'); "
                                     "sys.exit(3)"]
    if stage.compiles_for_gpu:
        env = {k: v for k, v in env.items() if k != "TRITON_INTERPRET"}
    result = run_command(command, ctx.raw / f"{stage.name}.log", record["limit_s"], env, REPO)
    return record | result


# --------------------------------------------------------------------------------------------------------------
# the package from this tree


def package_root(repo: Path) -> Path:
    """The folder that, first on PYTHONPATH, imports ``mamba_bio_audio`` from this tree: the repository root, which
    holds the one package (children run with ``PYTHONSAFEPATH``, so the working folder alone would not do)."""
    if not (repo / "mamba_bio_audio" / "__init__.py").is_file():
        raise FileNotFoundError(f"{repo}: no mamba_bio_audio/__init__.py; run gpu_check.py from the repository")
    return repo


def child_env(ctx: Context, site: Path) -> dict:
    """The children's environment: ``site`` first on PYTHONPATH, safe paths, Triton's interpreter on a dry run."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.update(PYTHONSAFEPATH="1", PYTHONUNBUFFERED="1", MPLBACKEND="Agg")
    if ctx.dry:
        env["TRITON_INTERPRET"] = "1"
    else:
        env.pop("TRITON_INTERPRET", None)
    env.pop("OUT", None)
    return env


def environment_report(path: Path) -> None:
    """The ``env`` stage: versions, the device, and where the package imports from (JSON at ``path``)."""
    import inspect
    from importlib import metadata

    import torch

    import mamba_bio_audio
    import mamba_bio_audio.pipelines.cli  # noqa: F401
    from mamba_bio_audio import ops

    reference_scan = ops.kernel("selective_scan_fn", "reference")  # the kernels, through their one door

    versions = {}
    for name in ("torch", "triton", "numba", "numpy", "einops", "pyyaml", "safetensors", "rich", "matplotlib",
                 "lightning", "hydra-core", "omegaconf", "soundfile", "pytest", "pytest-xdist", "pytest-timeout"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    cuda = torch.cuda.is_available()
    device = {"name": torch.cuda.get_device_name(), "capability": list(torch.cuda.get_device_capability()),
              "memory_gib": round(torch.cuda.get_device_properties(0).total_memory / 2 ** 30, 1),
              "multiprocessors": torch.cuda.get_device_properties(0).multi_processor_count} if cuda else None
    report = {"python": platform.python_version(), "executable": sys.executable, "platform": platform.platform(),
              "cpu_count": os.cpu_count(), "cuda": cuda, "cuda_runtime": torch.version.cuda, "device": device,
              "versions": versions, "package": str(Path(mamba_bio_audio.__file__).parent),
              "kernels": str(Path(inspect.getfile(reference_scan)).parents[1])}
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


# --------------------------------------------------------------------------------------------------------------
# figures


@dataclass(frozen=True)
class Figure:
    key: str
    stage: str
    label: str
    unit: str
    target: tuple[str, float] | None  # (comparison, value); None: reported, no target
    extract: Callable[[Path, Plan], tuple[float | None, str]]  # stage folder, plan -> (value, detail)


def _json(folder: Path, pattern: str) -> dict:
    paths = sorted(folder.glob(pattern))
    if not paths:
        raise FileNotFoundError(f"no {pattern} in {folder.name}")
    return json.loads(paths[-1].read_text())


OUTCOME = re.compile(r"\b(\d+) (passed|failed|errors?|skipped|xfailed|xpassed|deselected)\b")
VERBOSE = re.compile(r"\b(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b")


def pytest_counts(log: Path) -> dict:
    """passed / failed (errors included) / skipped of a pytest log: its closing line, or, for a run stopped
    before it, its verbose per-test lines."""
    text = log.read_text(errors="replace")
    closing = [line for line in text.splitlines() if re.search(r" in [\d.]+s", line) and OUTCOME.search(line)]
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    if closing:
        for number, outcome in OUTCOME.findall(closing[-1]):
            key = {"error": "failed", "errors": "failed", "xpassed": "passed", "xfailed": "skipped"}.get(outcome,
                                                                                                        outcome)
            if key in counts:
                counts[key] += int(number)
        return counts
    for outcome in VERBOSE.findall(text):
        counts[{"PASSED": "passed", "XPASS": "passed", "SKIPPED": "skipped", "XFAIL": "skipped"}.get(outcome,
                                                                                                     "failed")] += 1
    return counts


def _tests(outcome: str):
    def extract(folder: Path, plan: Plan):
        log = folder.parent / f"{folder.name}.log"
        if not log.is_file() or "deliberate failure" in log.read_text(errors="replace")[:400]:
            return None, ""
        counts = pytest_counts(log)
        return counts[outcome], f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped"
    return extract


def _scan_rows(folder: Path) -> tuple[dict, list[dict]]:
    report = _json(folder, "scan.json")
    return report, [row for row in report["results"] if row["backend"] == "triton" and "fwd_ms" in row]


def _sweep_rows(plan: Plan, rows: list[dict]) -> list[dict]:
    return [row for row in rows if row["shape"][:3] == [1, plan.scan_width, plan.scan_state]]


def _at_length(key: str, length_of: Callable[[Plan], int]):
    def extract(folder: Path, plan: Plan):
        length = length_of(plan)
        _, rows = _scan_rows(folder)
        row = next((r for r in _sweep_rows(plan, rows) if r["shape"][3] == length and r.get(key) is not None), None)
        return (None, f"L {length} not measured") if row is None else (row[key], f"L {length}")
    return extract


def _over_lengths(key: str, min_length_of: Callable[[Plan], int], worst: Callable = min):
    def extract(folder: Path, plan: Plan):
        _, rows = _scan_rows(folder)
        found = [(r[key], r["shape"][3]) for r in _sweep_rows(plan, rows)
                 if r["shape"][3] >= min_length_of(plan) and r.get(key) is not None]
        if not found:
            return None, ""
        value, length = worst(found)
        return value, f"worst at L {length} of L {min(n for _, n in found)} ... {max(n for _, n in found)}"
    return extract


def _at_batch_shape(key: str):
    def extract(folder: Path, plan: Plan):
        _, rows = _scan_rows(folder)
        row = next((r for r in rows if r["shape"] == list(plan.batch_shape)), None)
        return (None, "") if row is None else (row.get(key), "x".join(map(str, plan.batch_shape)))
    return extract


def _longest_length(folder: Path, plan: Plan):
    report, rows = _scan_rows(folder)
    lengths = [r["shape"][3] for r in _sweep_rows(plan, rows)]
    skipped = [s["shape"][3] for s in report.get("skipped_shapes", [])]
    return (max(lengths) if lengths else None), (f"not run (time): L {skipped}" if skipped else "every L run")


def _floor_rate(key: str, scale: float, what: str):
    def extract(folder: Path, plan: Plan):
        report, rows = _scan_rows(folder)
        device = rows[0]["device"] if rows else "cuda"
        rates = (report.get("floors") or {}).get(device)
        if rates is None:
            return None, ""
        detail = f"{rates['copy_buffer_bytes'] / 2 ** 20:.0f} MiB buffer" if what == "copy_buffer" else rates[what]
        return round(rates[key] / scale, 3), detail
    return extract


def _measured_over_static(direction: str, batch_shape: bool):
    """The scan's measured time (``scan`` stage) over the static model's bound for the same launches (this stage):
    how far the model is from the GPU."""
    def extract(folder: Path, plan: Plan):
        shape = list(plan.batch_shape) if batch_shape else [1, plan.scan_width, plan.scan_state, plan.headline_length]
        _, rows = _scan_rows(folder.parent / "scan")
        row = next((r for r in rows if r["shape"] == shape), None)
        if row is None:
            return None, f"{'x'.join(map(str, shape))} not measured by scan"
        static = _json(folder, "kernels_*.json")
        entry = next((e for e in static["shapes"] if [e["shape"]["batch"], EXPAND * e["shape"]["d_model"],
                                                      e["shape"]["length"]] == [shape[0], shape[1], shape[3]]), None)
        summary = None if entry is None else entry["summary"].get("H100", {}).get(f"scan_{direction}")
        if summary is None:
            return None, f"{'x'.join(map(str, shape))} not in the static report"
        measured = row[f"{direction}_ms"]
        return round(measured / summary["bound_ms"], 2), (f"{'x'.join(map(str, shape))}: {measured} ms measured, "
                                                          f"{summary['bound_ms']} ms modelled (H100)")
    return extract


def _tuned(direction: str):
    def extract(folder: Path, plan: Plan):
        report = _json(folder, "scan_tune.json")
        default = report["defaults"][0]
        best = next((r for r in report["best"] if r["direction"] == direction and r["shape"] == default["shape"]),
                    None)
        if best is None:
            return None, ""
        return best["speedup_over_default"], (f"BLOCK_L {best['block_l']}, BLOCK_D {best['block_d']}, NL "
                                              f"{best.get('lanes') or 'default'}: {best['ms']} ms "
                                              f"(default {default[f'{direction}_ms']} ms) at "
                                              f"{'x'.join(map(str, default['shape']))}")
    return extract


def _split_pays(direction: str):
    """The longest L at which running L whole is faster than the backend's split (0: at none), each L's ratio in
    the detail."""
    def extract(folder: Path, plan: Plan):
        report = _json(folder, "split.json")
        whole = {r["shape"][3]: r["speedup_over_default"] for r in report["results"]
                 if r["direction"] == direction and r["segments"] == 1 and "speedup_over_default" in r}
        if not whole:
            return None, ""
        detail = ", ".join(f"L {length}: {ratio:.2f}x" for length, ratio in sorted(whole.items()))
        return max((length for length, ratio in whole.items() if ratio > 1), default=0), \
            f"unsplit / split speed: {detail}"
    return extract


def _train_memory(folder: Path, plan: Plan):
    report = _json(folder, "train_*.json")
    key = "peak_mb" if report["parameters"]["device"] == "cuda" else "above_baseline_mb"
    by = {(r["arch"], r["batch"]): r.get(key) for r in report["results"]}
    ratios = [(by[("mamba", b)] / by[("transformer", b)], b) for a, b in by
              if a == "mamba" and by[("mamba", b)] and by.get(("transformer", b))]
    if not ratios:
        return None, ""
    worst, batch = max(ratios)
    return round(worst, 3), f"worst at batch {batch} ({key}); batches {sorted(b for _, b in ratios)}"


def _train_speed(arch: str):
    def extract(folder: Path, plan: Plan):
        rows = [r for r in _json(folder, "train_*.json")["results"] if r["arch"] == arch and "tokens_per_s" in r]
        if not rows:
            return None, ""
        row = max(rows, key=lambda r: r["batch"])
        return row["tokens_per_s"], f"batch {row['batch']}, L {row['seq_len']}"
    return extract


def _train_1m(key: str, scale: float):
    def extract(folder: Path, plan: Plan):
        rows = [r for r in _json(folder, "memory_*.json")["results"] if key in r]
        if not rows:
            return None, ""
        row = max(rows, key=lambda r: r["seq_len"])
        return round(row[key] / scale, 2), f"L {row['seq_len']}, batch 1, {row.get('memory', '')}"
    return extract


def _decode(mode: str, largest: bool):
    def extract(folder: Path, plan: Plan):
        rows = [r for r in _json(folder, "generate_*.json")["decode"] if r["mode"] == mode]
        measured = [r for r in rows if "latency_ms" in r]
        if not measured:
            reasons = {r.get("skipped") or r.get("error") for r in rows} - {None}
            return None, "; ".join(sorted(reasons))
        row = max(measured, key=lambda r: r["batch"]) if largest else min(measured, key=lambda r: r["batch"])
        value = row["samples_per_s_total"] if largest else row["samples_per_s_per_stream"]
        return value, f"batch {row['batch']}, {row['latency_ms']} ms/step"
    return extract


def _sample_audio(folder: Path, plan: Plan):
    rows = _json(folder, "generate_*.json")["results"]
    row = min(rows, key=lambda r: r["batch"]) if rows else None
    return (None, "") if row is None else (row["samples_per_s_per_stream"], f"batch {row['batch']}, sample_audio")


def _length(attr: str) -> Callable[[Plan], int]:
    return lambda plan: getattr(plan, attr)


FIGURES = (
    Figure("kernel_tests.failed", "kernel_tests", "kernel tests failed or in error", "tests", ("=", 0),
           _tests("failed")),
    Figure("kernel_tests.passed", "kernel_tests", "kernel tests passed", "tests", (">=", 1), _tests("passed")),
    Figure("gpu_tests.failed", "gpu_tests", "GPU-shape tests failed or in error", "tests", ("=", 0),
           _tests("failed")),
    Figure("gpu_tests.passed", "gpu_tests", "GPU-shape tests passed", "tests", (">=", 1), _tests("passed")),
    Figure("scan.speedup_fwd_bwd_vs_reference", "scan", "scan fwd+bwd, x the reference", "x", (">=", 40),
           _at_length("speedup_fwd_bwd", _length("headline_length"))),
    Figure("scan.speedup_fwd_vs_reference", "scan", "scan fwd, x the reference", "x", None,
           _at_length("speedup_fwd", _length("headline_length"))),
    Figure("scan.flash_over_scan_fwd_bwd_min", "scan", "flash attention time / scan time, fwd+bwd, every L >= 2K",
           "x", (">", 1), _over_lengths("flash_over_scan_fwd_bwd", _length("flash_min_length"))),
    Figure("scan.flash_over_scan_fwd_min", "scan", "flash attention time / scan time, fwd, every L >= 2K", "x",
           (">", 1), _over_lengths("flash_over_scan_fwd", _length("flash_min_length"))),
    Figure("scan.flash_over_scan_fwd_bwd_32k", "scan", "flash attention time / scan time, fwd+bwd, L 32K", "x",
           (">=", 7), _at_length("flash_over_scan_fwd_bwd", _length("flash_length"))),
    Figure("scan.flash_over_scan_fwd_32k", "scan", "flash attention time / scan time, fwd, L 32K", "x", (">=", 7),
           _at_length("flash_over_scan_fwd", _length("flash_length"))),
    Figure("scan.x_floor_fwd_max", "scan", "scan fwd time / larger floor, every L >= 2^14", "x", ("<=", 1.4),
           _over_lengths("x_floor_fwd", _length("floor_min_length"), max)),
    Figure("scan.x_floor_fwd_bwd_max", "scan", "scan fwd+bwd time / larger floor, every L >= 2^14", "x",
           ("<=", 1.4), _over_lengths("x_floor_fwd_bwd", _length("floor_min_length"), max)),
    Figure("scan.x_floor_fwd_batch", "scan", "scan fwd time / larger floor at (8, 2048, 2048)", "x", ("<=", 1.4),
           _at_batch_shape("x_floor_fwd")),
    Figure("scan.x_floor_fwd_bwd_batch", "scan", "scan fwd+bwd time / larger floor at (8, 2048, 2048)", "x",
           ("<=", 1.4), _at_batch_shape("x_floor_fwd_bwd")),
    Figure("scan.longest_length", "scan", "longest L measured at batch 1", "tokens", None, _longest_length),
    Figure("scan.copy_bandwidth", "scan", "device copy bandwidth (read + write)", "GB/s", None,
           _floor_rate("copy_bytes_per_s", 1e9, "copy_buffer")),
    Figure("scan.exp2_rate", "scan", "exp2 rate", "G/s", None, _floor_rate("exp2_per_s", 1e9, "exp2_method")),
    Figure("static.fwd_measured_over_bound", "static", "scan fwd, measured / static bound, L 2^16 at batch 1", "x",
           None, _measured_over_static("fwd", batch_shape=False)),
    Figure("static.fwd_bwd_measured_over_bound", "static", "scan fwd+bwd, measured / static bound, L 2^16 at batch 1",
           "x", None, _measured_over_static("fwd_bwd", batch_shape=False)),
    Figure("static.fwd_measured_over_bound_batch", "static", "scan fwd, measured / static bound at (8, 2048, 2048)",
           "x", None, _measured_over_static("fwd", batch_shape=True)),
    Figure("static.fwd_bwd_measured_over_bound_batch", "static",
           "scan fwd+bwd, measured / static bound at (8, 2048, 2048)", "x", None,
           _measured_over_static("fwd_bwd", batch_shape=True)),
    Figure("scan_tune.fwd_best_over_default", "scan_tune", "best fwd launch config, x the default", "x", None,
           _tuned("fwd")),
    Figure("scan_tune.bwd_best_over_default", "scan_tune", "best bwd launch config, x the default", "x", None,
           _tuned("bwd")),
    Figure("split.unsplit_faster_up_to_fwd", "split", "longest L where the unsplit scan fwd beats the split one",
           "tokens", None, _split_pays("fwd")),
    Figure("split.unsplit_faster_up_to_bwd", "split", "longest L where the unsplit scan bwd beats the split one",
           "tokens", None, _split_pays("bwd")),
    Figure("train.mamba_over_transformer_memory", "train", "Mamba / Transformer++ training memory, worst batch",
           "x", ("<=", 1.0), _train_memory),
    Figure("train.mamba_tokens_per_s", "train", "Mamba training tokens/s, largest batch", "tokens/s", None,
           _train_speed("mamba")),
    Figure("train.transformer_tokens_per_s", "train", "Transformer++ training tokens/s, largest batch", "tokens/s",
           None, _train_speed("transformer")),
    Figure("train_1m.peak_gb", "train_1m", "7M DNA model, chunked step on 2^20 tokens: peak memory", "GiB",
           ("<=", 80), _train_1m("peak_mb", 1024)),
    Figure("train_1m.tokens_per_s", "train_1m", "7M DNA model, chunked step on 2^20 tokens: tokens/s", "tokens/s",
           None, _train_1m("tokens_per_s", 1)),
    Figure("generate.per_stream_batch1_eager", "generate", "decode samples/s per stream, batch 1, eager",
           "samples/s", (">=", 16_000), _decode("eager", largest=False)),
    Figure("generate.per_stream_batch1_cuda_graph", "generate", "decode samples/s per stream, batch 1, CUDA graphs",
           "samples/s", (">=", 16_000), _decode("cuda_graph", largest=False)),
    Figure("generate.total_batch256_eager", "generate", "decode samples/s in total, batch 256, eager", "samples/s",
           (">=", 2_000_000), _decode("eager", largest=True)),
    Figure("generate.total_batch256_cuda_graph", "generate", "decode samples/s in total, batch 256, CUDA graphs",
           "samples/s", (">=", 2_000_000), _decode("cuda_graph", largest=True)),
    Figure("generate.sample_audio_per_stream_batch1", "generate", "sample_audio samples/s per stream, batch 1",
           "samples/s", None, _sample_audio),
)
COMPARE = {">=": lambda a, b: a >= b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b, "=": lambda a, b: a == b}
SIGN = {">=": "≥", ">": ">", "<=": "≤", "=": "="}


def figure_record(figure: Figure, raw: Path, plan: Plan, stages: dict) -> dict:
    record = {"key": figure.key, "stage": figure.stage, "label": figure.label, "unit": figure.unit,
              "target": None if figure.target is None else f"{SIGN[figure.target[0]]} {_number(figure.target[1])}"}
    stage = stages.get(figure.stage)
    if stage is None:
        return record | {"value": None, "verdict": "not measured", "detail": "stage not run"}
    try:
        value, detail = figure.extract(raw / figure.stage, plan)
    except (OSError, KeyError, ValueError, TypeError, IndexError, ZeroDivisionError) as err:
        value, detail = None, f"{type(err).__name__}: {err}"
    if value is None:
        reason = stage["status"] if stage["status"] != "ok" else "not in the stage's output"
        return record | {"value": None, "verdict": "not measured", "detail": f"{reason}; {detail}".strip("; ")}
    verdict = None if figure.target is None else ("meets" if COMPARE[figure.target[0]](value, figure.target[1])
                                                  else "misses")
    return record | {"value": value, "verdict": verdict, "detail": detail}


# --------------------------------------------------------------------------------------------------------------
# summary


def _number(value) -> str:
    if value is None:
        return "not measured"
    if isinstance(value, float) and abs(value) < 100:
        return f"{value:.3g}"
    return f"{value:,.0f}" if isinstance(value, (int, float)) else str(value)


def summary_markdown(summary: dict) -> str:
    env = summary.get("environment") or {}
    device = (env.get("device") or {}).get("name") or ("CPU" if env else "unknown device")
    versions = env.get("versions") or {}
    lines = [f"# GPU check: {device}, {summary['date']}", ""]
    if summary["dry_run"]:
        lines += ["**Dry run** (CPU, tiny shapes, Triton interpreter): the figures exercise the script; the targets "
                  "are for the GPU run.", ""]
    lines += [f"Python {env.get('python', '?')}, torch {versions.get('torch', '?')}, triton "
              f"{versions.get('triton', '?')}; {summary['wall_s']:.0f} s of {summary['limit_s']} s.", "",
              "| stage | status | s | limit s | what |", "|---|---|---:|---:|---|"]
    for stage in summary["stages"]:
        status = stage["status"] + (f" ({stage['reason']})" if stage.get("reason") else "") + \
            (f", rc {stage['rc']}" if stage.get("rc") not in (0, None) else "")
        lines.append(f"| {stage['stage']} | {status} | {stage['wall_s']:.0f} | {stage['limit_s']} | {stage['what']} |")
    lines += ["", "| figure | value | target | verdict | detail |", "|---|---:|---|---|---|"]
    for fig in summary["figures"]:
        value = _number(fig["value"]) + (f" {fig['unit']}" if fig["value"] is not None else "")
        lines.append(f"| {fig['label']} | {value} | {fig['target'] or '-'} | {fig['verdict'] or '-'} | "
                     f"{fig['detail']} |")
    return "\n".join(lines) + "\n"


def _pack(out: Path) -> None:
    with tarfile.open(out / "raw.tar.gz", "w:gz") as tar:
        tar.add(out / "raw", arcname="raw")
    shutil.rmtree(out / "raw")


def check(out: Path, dry: bool, names: list[str], pack: bool) -> int:
    """Run ``names`` (in :data:`STAGES` order) into ``out``; write the summary. Returns 0 when no stage failed."""
    started = time.monotonic()
    ctx = Context(dry=dry, plan=DRY_PLAN if dry else GPU_PLAN, raw=out / "raw")
    ctx.raw.mkdir(parents=True, exist_ok=True)
    records, cuda, environment = {}, None, None
    env = child_env(ctx, package_root(REPO))
    for stage in STAGES:
        if stage.name not in names:
            continue
        record = run_stage(stage, ctx, env, cuda)
        records[stage.name] = record
        print(f"[gpu_check] {stage.name}: {record['status']} in {record['wall_s']:.0f} s"
              + (f" ({record['reason']})" if record.get("reason") else ""), flush=True)
        if stage.name == "env" and record["status"] == "ok":
            environment = json.loads((ctx.folder("env") / "env.json").read_text())
            cuda = environment["cuda"]
    figures = [figure_record(f, ctx.raw, ctx.plan, records) for f in FIGURES if f.stage in names]
    summary = {"benchmark": "gpu_check", "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "dry_run": dry, "plan": ctx.plan.__dict__, "wall_s": round(time.monotonic() - started, 1),
               "limit_s": sum(DRY_LIMIT_S if dry else s.limit_s for s in STAGES if s.name in names),
               "environment": environment, "stages": list(records.values()), "figures": figures,
               "raw": "raw.tar.gz" if pack else "raw/"}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    markdown = summary_markdown(summary)
    (out / "summary.md").write_text(markdown)
    if pack:
        _pack(out)
    print(markdown, flush=True)
    return 0 if all(r["status"] in ("ok", "skipped") for r in records.values()) else 1


def _stage_list(text: str | None, option: str) -> list[str]:
    names = [n.strip() for n in (text or "").split(",") if n.strip()]
    unknown = [n for n in names if n not in STAGE_NAMES]
    if unknown:
        raise ValueError(f"{option} names unknown stages {unknown}; stages: {', '.join(STAGE_NAMES)}")
    return names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", nargs="?", type=Path, default=None,
                        help="output folder (default: $OUT when set, with --pack; else "
                             "benchmarks/results/gpu_check_<UTC stamp>)")
    parser.add_argument("--dry-run", action="store_true", help="every stage on the CPU at tiny shapes")
    parser.add_argument("--pack", action="store_true", help="raw files into raw.tar.gz (the device returns 8 files)")
    parser.add_argument("--only", default=None, help=f"comma-separated stages to run, of {', '.join(STAGE_NAMES)}")
    parser.add_argument("--skip", default=None, help="comma-separated stages not to run")
    parser.add_argument("--env-report", type=Path, default=None, help=argparse.SUPPRESS)


def run(args) -> int:
    if args.env_report is not None:
        environment_report(args.env_report)
        return 0
    only, skip = _stage_list(args.only, "--only"), _stage_list(args.skip, "--skip")
    names = [n for n in STAGE_NAMES if (not only or n in only) and n not in skip]
    out, pack = args.out, args.pack
    if out is None and os.environ.get("OUT"):
        out, pack = Path(os.environ["OUT"]), True
    if out is None:
        out = REPO / "benchmarks" / "results" / f"gpu_check_{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}"
    if (out / "raw").exists() or (out / "raw.tar.gz").exists():
        raise ValueError(f"{out} already holds a run (raw/ or raw.tar.gz); give another folder")
    out.mkdir(parents=True, exist_ok=True)
    return check(out, args.dry_run, names, pack)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/gpu_check.sh", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    try:
        return run(parser.parse_args(argv))
    except ValueError as err:
        print(f"gpu_check: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
