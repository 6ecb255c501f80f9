"""Decode speed of one model, greedy, in one process: the figures ``bench generate`` and ``bench cpu`` print.

:func:`measure_decode` times ``tokens`` recurrent steps of a causal LM (Mamba or Transformer++) after a prompt of
``prompt_len`` seeded random ids; :func:`measure_sashimi_sampling` times ``samples`` steps of a SaShiMi LM from the
mu-law start token. Each step is ``model.step`` and an argmax over the real vocabulary into the next input; the
clock runs over the steps only (state allocation and prefill are outside), after a warm-up run of the same loop
(numba compilation, the allocator, the caches). ``fast=False`` decodes through the generic step
(``allocate_inference_cache(..., fast=False)``), so the two paths can be compared in one run;
:func:`measure_compiled_decode` times the generic step of a Mamba LM compiled by ``torch.compile``, the third.
"""
from __future__ import annotations

import time

import torch

from mamba_bio_audio.generation import InferenceParams, uses_fast_step
from mamba_bio_audio.pipelines.bench.timing import sync
from mamba_bio_audio.tokenizers import MU_LAW_START_TOKEN

__all__ = ["measure_compiled_decode", "measure_decode", "measure_sashimi_sampling"]


def _positive(name: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")


def _timed_loop(model, prompt: torch.Tensor, steps: int, fast: bool, make_step=None) -> tuple[float, str]:
    """Allocate, prefill ``prompt`` (batch, P), then time ``steps`` greedy steps: (wall seconds, path). The steps
    are ``model.step``, or ``make_step(state)`` (a ``step(token, state) -> (logits, state)`` for this state)."""
    vocab = model.config.vocab_size
    device = prompt.device
    state = model.allocate_inference_cache(prompt.shape[0], prompt.shape[1] + steps, fast=fast)
    logits, state = model.prefill(prompt, state)
    token = logits[:, -1, :vocab].argmax(-1)
    step = model.step if make_step is None else make_step(state)
    sync(device)
    started = time.perf_counter()
    for _ in range(steps):
        logits, state = step(token, state)
        token = logits[:, :vocab].argmax(-1)
    sync(device)
    if make_step is not None:
        return time.perf_counter() - started, "compiled generic"
    return time.perf_counter() - started, "fast" if _fused_step_ran(state, token) else "generic"


def _fused_step_ran(state, token: torch.Tensor) -> bool:
    """Whether the steps just timed took the fused step: the state has one and it applies to such a call (it
    falls back per call, e.g. when the kernel settings name another backend)."""
    return uses_fast_step(state) and state.fast_step.applies(token)


def _measure(model, prompt: torch.Tensor, steps: int, warmup: int, fast: bool, make_step=None) -> tuple[float, str]:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            _timed_loop(model, prompt, warmup, fast, make_step)
            return _timed_loop(model, prompt, steps, fast, make_step)
    finally:
        model.train(was_training)


def _compiled_steps(model, backend: str = "inductor"):
    """A ``make_step`` for :func:`_timed_loop`: the generic one-token forward of a Mamba LM through
    ``torch.compile`` (``backend``, ``fullgraph=True``), and a dict whose "compile_s" the first call fills in. The
    compiled function sees a view of the state whose ``seqlen_offset`` stays 1 (to a Mamba mixer it only says
    "step"; a guard on the real offset would recompile at every token), over the state's own layer tensors."""
    compiled = torch.compile(
        lambda ids, view: model(ids[:, None], inference_params=view, num_last_tokens=1).logits[:, -1],
        fullgraph=True, dynamic=False, backend=backend)
    timing = {}

    def make_step(state):
        view = InferenceParams(max_seqlen=state.max_seqlen, max_batch_size=state.max_batch_size,
                               key_value_memory_dict=state.key_value_memory_dict, seqlen_offset=1)

        def step(token, state):
            if "compile_s" not in timing:
                started = time.perf_counter()
                logits = compiled(token, view)
                timing["compile_s"] = time.perf_counter() - started
            else:
                logits = compiled(token, view)
            state.seqlen_offset += 1
            return logits, state
        return step
    return make_step, timing


def measure_decode(model, *, batch: int, tokens: int, prompt_len: int = 1, seed: int = 0, fast: bool = True) -> dict:
    """Greedy decoding speed of a causal LM: ``tokens`` steps at ``batch`` rows after a seeded random prompt
    (batch, ``prompt_len``). Returns {"tokens_per_s" (per row), "us_per_token" (wall per step), "batch",
    "tokens", "path": "fast" | "generic" (the step that ran)}."""
    for name, value in (("batch", batch), ("tokens", tokens), ("prompt_len", prompt_len)):
        _positive(name, value)
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    prompt = torch.randint(0, model.config.vocab_size, (batch, prompt_len), generator=generator).to(device)
    wall, path = _measure(model, prompt, tokens, min(tokens, 16), fast)
    return {"tokens_per_s": round(tokens / wall, 1), "us_per_token": round(wall / tokens * 1e6, 2),
            "batch": batch, "tokens": tokens, "path": path}


def measure_compiled_decode(model, *, batch: int, tokens: int, prompt_len: int = 1, seed: int = 0,
                            backend: str = "inductor") -> dict:
    """As :func:`measure_decode` (same prompt, same loop), each step the generic one-token forward of a Mamba LM
    compiled with ``torch.compile`` (``backend``, ``fullgraph=True``; its compilation is in the warm-up, outside the
    clock). Returns {"tokens_per_s", "us_per_token", "batch", "tokens", "compile_s", "path": "compiled generic"}."""
    for name, value in (("batch", batch), ("tokens", tokens), ("prompt_len", prompt_len)):
        _positive(name, value)
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    prompt = torch.randint(0, model.config.vocab_size, (batch, prompt_len), generator=generator).to(device)
    make_step, timing = _compiled_steps(model, backend)
    wall, path = _measure(model, prompt, tokens, min(tokens, 16), False, make_step)
    return {"tokens_per_s": round(tokens / wall, 1), "us_per_token": round(wall / tokens * 1e6, 2),
            "batch": batch, "tokens": tokens, "compile_s": round(timing["compile_s"], 1), "path": path}


def measure_sashimi_sampling(model, *, batch: int, samples: int, seed: int = 0, fast: bool = True) -> dict:
    """Greedy sampling speed of a SaShiMi LM: ``samples`` steps at ``batch`` streams from the start token (a
    multiple of ``config.total_pool`` weighs every phase of the U-Net its share). Returns
    {"samples_per_s_total", "samples_per_s_per_stream", "us_per_sample" (wall per step), "batch", "samples",
    "path"}. ``seed`` seeds nothing random today (greedy from the start token) and is kept for the interface."""
    _positive("batch", batch)
    _positive("samples", samples)
    torch.manual_seed(seed)
    device = next(model.parameters()).device
    prompt = torch.full((batch, 1), MU_LAW_START_TOKEN, dtype=torch.long, device=device)
    wall, path = _measure(model, prompt, samples, model.config.total_pool, fast)
    per_stream = samples / wall
    return {"samples_per_s_total": round(per_stream * batch, 1), "samples_per_s_per_stream": round(per_stream, 1),
            "us_per_sample": round(wall / samples * 1e6, 2), "batch": batch, "samples": samples, "path": path}
