"""``mamba-bio-audio bench reviewers``: the studies that answer the Mamba paper's reviewers (docs/reviewers.md).

Each chosen study (default: all, in :data:`STUDIES` order) is a module of :mod:`mamba_bio_audio.pipelines.studies`
imported only when chosen; a chosen study whose module is missing (or lacks the interface) stops the command
before any study runs, naming it. Each study's result goes through the one writer
(:mod:`~mamba_bio_audio.pipelines.reporting.bench_results`) as ``reviewers_<name>_<stamp>.json`` with its PNG
beside it; its verdict lines are printed, then a one-line summary per study.
"""
from __future__ import annotations

import argparse
import importlib
import inspect
from pathlib import Path
from types import ModuleType

from mamba_bio_audio.pipelines.reporting.bench_results import start, write_result

STUDIES = ("copying", "induction", "ablation", "mqar", "cost")
PACKAGE = "mamba_bio_audio.pipelines.studies"
RESULT_KEYS = ("parameters", "results", "verdict")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--study", action="append", choices=STUDIES, default=None,
                        help="a study to run (repeat for several; default: all): copying (selective copying), "
                             "induction (induction heads to 2^20), ablation (conv and selectivity), mqar (recall "
                             "vs state size), cost (training time and memory vs Transformer++)")
    parser.add_argument("--full", action="store_true", help="the papers' sizes (for a GPU) instead of the CPU default")
    parser.add_argument("--quick", action="store_true",
                        help="smoke-test sizes (seconds; the figures mean nothing): for the studies that offer it")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch and numba threads (default: one per core). Use 1 when other work shares the "
                             "cores: the studies' small models run many times slower with two threads on a busy core")
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"), help="where the JSON goes")


def load_study(name: str) -> ModuleType:
    """The study module ``name``; ValueError naming it when it is missing or lacks ``run_study`` / ``plot``."""
    module_name = f"{PACKAGE}.{name}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name not in (module_name, PACKAGE):
            raise  # the study exists but something it imports is missing: that error names the culprit
        raise ValueError(f"study {name!r}: its module {module_name} is missing") from None
    missing = [attr for attr in ("run_study", "plot") if not callable(getattr(module, attr, None))]
    if missing:
        raise ValueError(f"study {name!r}: {module_name} lacks {', '.join(missing)}")
    return module


def _check_result(name: str, result) -> None:
    if not isinstance(result, dict) or any(key not in result for key in RESULT_KEYS):
        raise ValueError(f"study {name!r} returned no {{{', '.join(RESULT_KEYS)}}} dict")
    if not all(isinstance(line, str) for line in result["verdict"]):
        raise ValueError(f"study {name!r}: its verdict must be a list of strings")


def run(args) -> int:
    if args.full and args.quick:
        raise ValueError("--full and --quick exclude each other")
    names = list(dict.fromkeys(args.study or STUDIES))
    modules = {name: load_study(name) for name in names}  # every chosen module first: fail before any work
    if args.quick:
        refusing = [n for n, m in modules.items() if "quick" not in inspect.signature(m.run_study).parameters]
        if refusing:
            raise ValueError(f"--quick: the studies {', '.join(refusing)} have no quick size; leave them out")
    if args.threads is not None:
        from mamba_bio_audio import ops

        ops.set_cpu_threads(args.threads)  # the result files' headers record the counts the studies ran with
    summary = []
    for name, module in modules.items():
        print(f"== study {name}{' (full)' if args.full else ' (quick)' if args.quick else ''}", flush=True)
        started = start()
        options = {"quick": True} if args.quick else {}
        result = module.run_study(full=args.full, seed=args.seed, **options)
        _check_result(name, result)
        report = {"study": name, "size": "full" if args.full else "quick" if args.quick else "default",
                  "seed": args.seed, **result}
        path = write_result(args.out_dir, f"reviewers_{name}", report, started=started,
                            plot=lambda png, module=module, result=result: module.plot(result, png))
        for line in result["verdict"]:
            print(f"  {line}")
        summary.append((name, result["verdict"][0] if result["verdict"] else "(no verdict)", path))
    print("summary:")
    for name, first, path in summary:
        print(f"  {name:10s} {first}  [{path.name}]")
    return 0
