"""``mamba-bio-audio bench kernels``: a static report of every Triton kernel, compiled for GPU targets without a GPU.

For each shape it records the launches a Mamba block makes (``ops.triton_launches``: the launchers' own
configurations, on meta tensors), compiles each for ``--arch`` targets (:mod:`.kernels_compile`), and reports per
kernel: registers, spill bytes, shared memory, the instruction mix of the inner loop per element
(:mod:`.kernels_sass`), and on the H100 (sm_90) and A100 (sm_80) blocks and warps per SM, waves, and a static lower
bound on the time against the physical floor (:mod:`.kernels_model`). It is a model, not a measurement: the JSON
names the GPU a measured run (``benchmarks/gpu_check.sh``) would calibrate it against.

Shapes: ``train:D_MODELxBATCHxL[:bf16|:fp16]`` (one training step of a Mamba block, d_inner = 2·d_model, N 16,
conv width 4) or ``decode:D_MODELxBATCH[:dtype]`` (one decode step). ``--matrix`` compiles every launch
configuration the heuristics can choose (:mod:`.kernels_matrix`) and reports their resources, instead of the default
shapes or after the ``--shape`` ones: the compile tests' input.
"""
from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from mamba_bio_audio import ops
from mamba_bio_audio.pipelines.bench.kernels_compile import (ARCHS, check_compilable, compile_launch, kernel_name,
                                                             toolchain)
from mamba_bio_audio.pipelines.bench.kernels_matrix import MATRIX
from mamba_bio_audio.pipelines.bench.kernels_model import CALIBRATE_AGAINST, DEVICES, bound, element_work
from mamba_bio_audio.pipelines.bench.kernels_sass import mix
from mamba_bio_audio.pipelines.reporting.bench_results import start, write_result

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# the paper's 125M (d_model 768) and 1.4B (2048) shapes from L 2K to 1M, the scan targets
# (d_inner 2048 at (8, L 2048); d_inner 1024 at (1, L 2^16)), and decode at batch 1 and 256
DEFAULT_SHAPES = ("train:768x8x2048:bf16", "train:768x8x2048", "train:768x1x16384:bf16", "train:768x1x131072:bf16",
                  "train:768x1x1048576:bf16", "train:2048x8x2048:bf16", "train:2048x1x1048576:bf16",
                  "train:1024x8x2048:bf16", "train:512x1x65536:bf16",
                  "decode:768x1:bf16", "decode:768x256:bf16", "decode:2048x1:bf16", "decode:2048x256:bf16")
MODEL_NOTE = ("A static model, not a measurement: resources from ptxas and the compiled metadata, the inner loop's "
              "SASS, and per-device peak rates; calibrate it against a measured run (benchmarks/gpu_check.sh).")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arch", action="append", choices=sorted(ARCHS), default=None,
                        help="GPU target to compile for, repeatable (default: sm_80 and sm_90)")
    parser.add_argument("--shape", action="append", default=None,
                        help="train:D_MODELxBATCHxL[:bf16|:fp16] or decode:D_MODELxBATCH[:dtype], repeatable "
                             f"(default: {', '.join(DEFAULT_SHAPES)})")
    parser.add_argument("--deterministic", action="store_true", help="the scan backward in deterministic mode")
    parser.add_argument("--matrix", action="store_true",
                        help="compile every launch configuration the heuristics can choose (resources only), "
                             "instead of the default shapes, or after the --shape ones")
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"),
                        help="where the JSON goes (default: %(default)s)")


def parse_shape(text: str) -> dict:
    """'train:768x8x2048:bf16' -> {'kind': 'train', 'd_model': 768, 'batch': 8, 'length': 2048, 'dtype': 'bf16'}."""
    match = re.fullmatch(r"(train|decode):(\d+)x(\d+)(?:x(\d+))?(?::(\w+))?", text.strip())
    if (not match or (match[1] == "train") != (match[4] is not None) or (match[5] or "fp32") not in DTYPES
            or min(int(g) for g in match.groups()[1:4] if g) < 1):
        raise ValueError(f"--shape must be train:D_MODELxBATCHxL[:bf16|:fp16] or decode:D_MODELxBATCH[:dtype] with "
                         f"positive sizes; got {text!r}")
    shape = {"kind": match[1], "d_model": int(match[2]), "batch": int(match[3]), "dtype": match[5] or "fp32"}
    return shape | ({"length": int(match[4])} if match[4] else {})


def _launches(shape: dict, sm_count: int, deterministic: bool) -> list:
    dtype = DTYPES[shape["dtype"]]
    if shape["kind"] == "train":
        return ops.triton_launches("training_step", sm_count, shape["batch"], shape["d_model"], shape["length"],
                                   dtype, deterministic=deterministic)
    return ops.triton_launches("decode_step", sm_count, shape["batch"], shape["d_model"], dtype)


def _config(launch) -> dict:
    return {"grid": list(launch.grid), "constexprs": {k: v for k, v in launch.kwargs.items() if k != "num_warps"},
            "num_warps": launch.kwargs.get("num_warps", 4)}


def _compile(launch, archs: list[str], sass: bool) -> dict:
    out = {}
    for arch in archs:
        try:
            out[arch] = compile_launch(launch, ARCHS[arch], sass=sass)
        except Exception as err:  # noqa: BLE001  a compile failure is a result of this report, not its end
            first_line = (str(err).strip().splitlines() or [""])[0]
            out[arch] = f"{type(err).__name__}: {first_line[:300]}"
    return out


def report_shape(shape: dict, archs: list[str], deterministic: bool) -> dict:
    """Every launch of ``shape`` compiled for ``archs``, with its mix and, per device of those archs, its model.

    The launches are recorded per device (the SM count picks grids, the scan's layout and its segments along L), and
    each device's own launch of a kernel is compiled for that device's arch; a row is one kernel, in launch order,
    with the configuration of the first device that launches it (a device without the kernel, e.g. without a split
    of L, has no entry for it)."""
    devices = {name: dev for name, dev in DEVICES.items() if dev["arch"] in archs}
    per_device = {name: _labelled(_launches(shape, dev["sms"], deterministic)) for name, dev in devices.items()}
    rows = []
    for label in _merged_order([list(launches) for launches in per_device.values()]):
        first = next(launches[label] for launches in per_device.values() if label in launches)
        name = kernel_name(first.kernel)
        _, iterations, unit = element_work(name, first)
        row = {"kernel": name, **({"launch": label} if label != name else {}), **_config(first),
               "iterations_per_program": iterations, "element": unit,
               "devices": [dev_name for dev_name, launches in per_device.items() if label in launches]}
        for dev_name in row["devices"]:
            dev, launch = devices[dev_name], per_device[dev_name][label]
            arch = dev["arch"]
            compiled = _compile(launch, [arch], sass=True)[arch]
            if isinstance(compiled, str):
                row[arch] = {"error": compiled}
                continue
            elements, _, _ = element_work(name, launch)
            loop, whole, found = mix(compiled.sass)
            row[arch] = compiled.fields() | {
                "inner_loop": "loop" if found else "whole kernel", "inner_loop_warp_instructions": loop.instructions,
                "mix_per_element": loop.per_element(compiled.num_warps, elements)}
            row.setdefault("model", {})[dev_name] = {"grid": list(launch.grid)} | bound(
                name, launch, compiled, loop, whole, dev)
        rows.append(row)
    return {"shape": shape, "launches": rows, "summary": _summary(rows, devices)}


def _labelled(launches: list) -> dict:
    """The launches by label: the kernel's name, with " #k" from its second launch on (the carry pass runs once
    per scan direction)."""
    out, seen = {}, {}
    for launch in launches:
        name = kernel_name(launch.kernel)
        seen[name] = seen.get(name, 0) + 1
        out[name if seen[name] == 1 else f"{name} #{seen[name]}"] = launch
    return out


def _merged_order(orders: list[list[str]]) -> list[str]:
    """The kernel names of several launch lists in one order: the first list's, each other name placed after the
    name it follows in its own list."""
    merged: list[str] = []
    for order in orders:
        for i, name in enumerate(order):
            if name not in merged:
                merged.insert(merged.index(order[i - 1]) + 1 if i else 0, name)
    return merged


def _summary(rows: list[dict], devices: dict) -> dict:
    """Per device: the step's bound and floor (sum over launches), and the scan's forward and forward+backward."""
    out = {}
    for dev_name in devices:
        mine = [r for r in rows if dev_name in r["devices"]]
        models = [(r["kernel"], r["model"][dev_name]) for r in mine if dev_name in r.get("model", {})]
        if len(models) != len(mine):  # a launch of this device did not compile
            continue
        entry = {"bound_ms": sum(m["bound_ms"] for _, m in models), "floor_ms": sum(m["floor_ms"] for _, m in models)}
        # a direction's launches: its kernel and, when L is split, its first pass (``_scan_*_local_kernel``) and the
        # carry pass after it (``_chain_segments_kernel``, the direction of the launch before it)
        directions, previous = [], ""
        for k, _ in models:
            previous = k[:9] if k.startswith("_scan_") else previous if k == "_chain_segments_kernel" else ""
            directions.append(previous)
        for label, prefixes in (("scan_fwd", ("_scan_fwd",)), ("scan_fwd_bwd", ("_scan_fwd", "_scan_bwd"))):
            scan = [m for d, (_, m) in zip(directions, models) if d in prefixes]
            if {d for d in directions if d in prefixes} == set(prefixes):
                b, f = sum(m["bound_ms"] for m in scan), sum(m["floor_ms"] for m in scan)
                entry[label] = {"bound_ms": round(b, 5), "floor_ms": round(f, 5), "bound_over_floor": _ratio(b, f)}
        entry["bound_over_floor"] = _ratio(entry["bound_ms"], entry["floor_ms"])
        out[dev_name] = {k: round(v, 5) if isinstance(v, float) else v for k, v in entry.items()}
    return out


def _ratio(bound: float, floor: float) -> float | None:
    """bound ÷ floor; None where the floor rounds to nothing (a few-element shape: the floors are kept to 4
    decimals of a millisecond)."""
    return round(bound / floor, 3) if floor else None


def _times(ratio: float | None) -> str:
    return "—×" if ratio is None else f"{ratio:.2f}×"


def report_matrix(archs: list[str]) -> list[dict]:
    """Every configuration of :data:`.kernels_matrix.MATRIX`, compiled for ``archs`` (resources, no SASS)."""
    out = []
    for label, plan, sizes, options, default in MATRIX:
        sizes = tuple(DTYPES.get(s, s) if isinstance(s, str) else s for s in sizes)
        launches = ops.triton_launches(plan, DEVICES["H100"]["sms"], *sizes, **options)
        rows = []
        for launch in launches:
            compiled = _compile(launch, archs, sass=False)
            resources = {arch: ({"error": c} if isinstance(c, str) else c.fields()) for arch, c in compiled.items()}
            rows.append({"kernel": kernel_name(launch.kernel), **_config(launch), **resources})
        out.append({"config": label, "plan": plan, "default": default, "launches": rows})
    return out


def shape_label(shape: dict) -> str:
    """{'kind': 'train', 'd_model': 768, 'batch': 8, 'length': 2048, 'dtype': 'bf16'} -> 'train 768×8×2048 bf16'."""
    sizes = [shape["d_model"], shape["batch"]] + ([shape["length"]] if "length" in shape else [])
    return f"{shape['kind']} {'×'.join(map(str, sizes))} {shape['dtype']}"


def print_table(shapes: list[dict], console: Console) -> None:
    table = Table(title="Triton kernels, static: registers / spill bytes (st+ld) / occupancy / waves / bound ÷ floor "
                        "(a model, not a measurement)")
    for column in ("shape", "kernel", "sm_90 regs/spill", "H100 occ / waves", "H100 bound µs", "÷ floor",
                   "sm_80 regs/spill", "A100 occ / waves", "A100 bound µs", "÷ floor "):
        table.add_column(column, justify="left" if column in ("shape", "kernel") else "right")
    for entry in shapes:
        label = shape_label(entry["shape"])
        for row in entry["launches"]:
            cells = [label, row.get("launch", row["kernel"]).strip("_").replace("_kernel", "")]
            for arch, dev in (("sm_90", "H100"), ("sm_80", "A100")):
                res, model = row.get(arch), row.get("model", {}).get(dev)
                cells.append("—" if res is None else res.get("error", "")[:20] or
                             f"{res['registers']} / {res['spill_store_bytes'] + res['spill_load_bytes']}")
                cells += (["—"] * 3 if model is None else
                          [f"{model['occupancy']:.1%} / {model['waves']:.2f}", f"{model['bound_ms'] * 1e3:.1f}",
                           "—" if model["bound_over_floor"] is None else f"{model['bound_over_floor']:.2f}"])
            table.add_row(*cells)
            label = ""
    console.print(table)


def run(args) -> int:
    archs = sorted(set(args.arch or ARCHS))
    check_compilable()
    shapes = [] if args.matrix and not args.shape else [parse_shape(s) for s in (args.shape or DEFAULT_SHAPES)]
    console = Console() if Console().is_terminal else Console(width=170)
    started, clock = start(), time.perf_counter()
    report = {"note": MODEL_NOTE, "calibrate_against": DEVICES[CALIBRATE_AGAINST]["name"],
              "devices": {k: v for k, v in DEVICES.items() if v["arch"] in archs}, "archs": archs,
              "toolchain": toolchain()}
    if shapes:  # first: the matrix then finds these kernels compiled, disassembled too
        report["shapes"] = [report_shape(shape, archs, args.deterministic) for shape in shapes]
        print_table(report["shapes"], console)
        for entry in report["shapes"]:
            for dev, summary in entry["summary"].items():
                scan = "".join(f", {k} {_times(v['bound_over_floor'])} floor" for k, v in summary.items()
                               if isinstance(v, dict))
                console.print(f"{shape_label(entry['shape'])}: {dev} step bound {summary['bound_ms'] * 1e3:.1f} µs = "
                              f"{_times(summary['bound_over_floor'])} floor{scan}")
        console.print(MODEL_NOTE)
    if args.matrix:
        report["matrix"] = report_matrix(archs)
        failed = [f"{c['config']}: {r['kernel']} {arch}" for c in report["matrix"] for r in c["launches"]
                  for arch in archs if "error" in r[arch]]
        console.print(f"{sum(len(c['launches']) for c in report['matrix'])} launches × {len(archs)} targets compiled, "
                      f"{len(failed)} failed" + "".join(f"\n  {f}" for f in failed))
    report["seconds"] = round(time.perf_counter() - clock, 2)
    write_result(args.out_dir, "kernels", report, started=started)
    return 0


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="python -m mamba_bio_audio.pipelines.bench.kernels", description=__doc__)
    add_arguments(_parser)
    raise SystemExit(run(_parser.parse_args()))
