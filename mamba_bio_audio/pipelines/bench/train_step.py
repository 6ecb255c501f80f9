"""Peak memory and tokens/s of training steps of one model configuration, measured in a fresh process.

:func:`measure` starts ``python -m mamba_bio_audio.pipelines.bench.train_step SPEC`` and reads back the one JSON
line it prints, so every measurement owns its process and its memory peak. The child builds the causal LM of
the spec (Mamba or Transformer++, from a config dict), AdamW, and seeded random DNA ids (batch, seq_len + 1);
runs one short priming step (kernels loaded and compiled), records the resident memory (``baseline``), resets
the peak, then runs ``warmup + steps`` full training steps (forward, backward, optimizer step) and records:

* CPU: the peak resident set size of the child (``VmHWM`` of ``/proc/self/status`` after resetting it with
  ``/proc/self/clear_refs``; ``ru_maxrss`` where that is not available, which then includes the start-up);
* CUDA: ``torch.cuda.max_memory_allocated`` (tensors) and ``max_memory_reserved`` (the caching allocator);
* tokens/s: batch · seq_len / the median time of the timed steps.

SPEC is a JSON object: ``arch`` ("mamba" | "transformer"), ``config`` (config fields; ``chunk_size`` and
``checkpoint_blocks`` included), ``batch``, ``seq_len``, ``steps``, ``warmup``, ``device``, ``amp`` (bf16
autocast on CUDA), ``seed``. ``threads`` (CPU threads of torch and numba) and ``malloc_mmap_threshold`` (glibc:
allocations from this size up are mapped and unmapped one by one, so freed memory goes back to the system
instead of fragmenting the heap; 0 keeps glibc's dynamic default) set the child's environment.
"""
from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

PROC_STATUS = Path("/proc/self/status")
PROC_CLEAR_REFS = Path("/proc/self/clear_refs")


def measure(spec: dict, timeout_s: float) -> dict:
    """Run ``spec`` in a child process. Returns its figures, or ``{"error": ...}`` (out of memory, a timeout,
    a crash) so that a sweep goes on past a configuration that does not fit."""
    env = dict(os.environ)
    if spec.get("threads"):
        env.update(OMP_NUM_THREADS=str(spec["threads"]), NUMBA_NUM_THREADS=str(spec["threads"]))
    if spec.get("malloc_mmap_threshold"):
        env["MALLOC_MMAP_THRESHOLD_"] = str(spec["malloc_mmap_threshold"])
    try:
        done = subprocess.run([sys.executable, "-m", __name__, json.dumps(spec)], capture_output=True, text=True,
                              timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout_s:.0f} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        return {"error": tail[0][:300]}
    return json.loads(lines[-1])


def _status_mb(field: str) -> float:
    for line in PROC_STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def _reset_peak_rss() -> bool:
    try:
        PROC_CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def _build(spec: dict, device):
    import torch

    from mamba_bio_audio.models.factory import config_from_dict
    from mamba_bio_audio.models import param_groups
    from mamba_bio_audio.models.factory import model_class

    torch.manual_seed(spec["seed"])
    config = config_from_dict({"architecture": spec["arch"], **spec["config"]})
    model = model_class(config)(config, device=device)
    optimizer = torch.optim.AdamW(param_groups(model, 0.1), lr=1e-3, betas=(0.9, 0.95))
    return model.train(), optimizer


def _train_step(model, optimizer, ids, amp: bool) -> float:
    import torch

    with torch.autocast(ids.device.type, dtype=torch.bfloat16, enabled=amp):
        loss = model(ids[:, :-1], targets=ids[:, 1:]).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss)


def _child(spec: dict) -> dict:
    import torch

    from mamba_bio_audio.tokenizers import BASE_IDS

    device = torch.device(spec["device"])
    cuda = device.type == "cuda"
    model, optimizer = _build(spec, device)
    generator = torch.Generator().manual_seed(spec["seed"])
    draws = torch.randint(len(BASE_IDS), (spec["batch"], spec["seq_len"] + 1), generator=generator)
    ids = torch.tensor(BASE_IDS)[draws].to(device)  # random bases
    amp = bool(spec.get("amp")) and cuda
    _train_step(model, optimizer, ids[:, :129], amp)  # priming: kernels loaded / compiled, optimizer state made
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        baseline_mb = torch.cuda.memory_allocated() / 2**20
    else:
        baseline_mb = _status_mb("VmRSS")
        peak_reset = _reset_peak_rss()
    losses, times = [], []
    for step in range(spec["warmup"] + spec["steps"]):
        started = time.perf_counter()
        losses.append(_train_step(model, optimizer, ids, amp))
        if cuda:
            torch.cuda.synchronize()
        if step >= spec["warmup"]:
            times.append(time.perf_counter() - started)
    step_s = statistics.median(times)
    result = {"params": sum(p.numel() for p in model.parameters()), "baseline_mb": round(baseline_mb, 1),
              "step_s": round(step_s, 4), "steps_s": [round(t, 4) for t in times],
              "tokens_per_s": round(spec["batch"] * spec["seq_len"] / step_s, 1), "loss": round(losses[-1], 4)}
    if cuda:
        result.update(peak_mb=round(torch.cuda.max_memory_allocated() / 2**20, 1),
                      reserved_mb=round(torch.cuda.max_memory_reserved() / 2**20, 1), memory="cuda allocated")
    elif peak_reset:
        result.update(peak_mb=round(_status_mb("VmHWM"), 1), memory="peak RSS (VmHWM reset after priming)")
    else:
        result.update(peak_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                      memory="peak RSS (ru_maxrss, whole process)")
    result["above_baseline_mb"] = round(result["peak_mb"] - baseline_mb, 1)
    result["threads"] = torch.get_num_threads()
    return result


def main(argv: list[str]) -> int:
    import torch

    spec = json.loads(argv[0])
    try:
        result = _child(spec)
    except torch.cuda.OutOfMemoryError:
        result = {"error": "out of memory"}
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
