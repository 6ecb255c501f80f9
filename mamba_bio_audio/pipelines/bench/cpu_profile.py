"""A training step broken down by op with ``torch.profiler``: where a CPU step's time goes.

Every profiled event's *self* CPU time goes to one category, so the categories add up to the profiled time:

* ``optimizer``: anything under ``Optimizer.step`` / ``Optimizer.zero_grad``;
* ``scan``: the selective scan's custom ops and their autograd node;
* ``layout copies``: ``copy_``, ``clone``, ``contiguous``, ``cat`` (and ``_to_copy``) outside the scan and the
  optimizer: the (B, L, D) ↔ (B, D, L) transposes and the padding;
* the first of ``projections`` (``mm``/``addmm``/``bmm``/``linear`` and their backward nodes), ``conv``
  (``convolution``/``conv1d``, the CPU backend's ``_CausalConvTaps``, and backward), ``loss`` (cross entropy,
  log-softmax, NLL and backward), ``norms``
  (``rsqrt``, ``pow``, ``mean`` and backward: the RMSNorm's ops; nothing else of the model uses them) met walking
  from the event up through its parents;
* ``other``: the rest (elementwise ops, autograd bookkeeping).

The profiler's own overhead makes the profiled step slower than a timed one; the fractions are what counts.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from torch.profiler import ProfilerActivity, profile

__all__ = ["CATEGORIES", "category_of", "profile_step"]

CATEGORIES = ("projections", "conv", "scan", "norms", "loss", "optimizer", "layout copies", "other")
_COPIES = ("aten::copy_", "aten::clone", "aten::contiguous", "aten::cat", "aten::_to_copy")
_BY_NAME = (  # (substring, category), tried in order on an event's name and then on its parents'
    ("selective_scan", "scan"),
    ("convolution", "conv"), ("conv1d", "conv"), ("Convolution", "conv"), ("CausalConv", "conv"),
    ("cross_entropy", "loss"), ("nll_loss", "loss"), ("log_softmax", "loss"), ("NllLoss", "loss"),
    ("LogSoftmax", "loss"),
    ("aten::mm", "projections"), ("aten::addmm", "projections"), ("aten::bmm", "projections"),
    ("aten::linear", "projections"), ("aten::matmul", "projections"), ("MmBackward", "projections"),
    ("AddmmBackward", "projections"), ("BmmBackward", "projections"),
    ("aten::rsqrt", "norms"), ("aten::pow", "norms"), ("aten::mean", "norms"), ("RsqrtBackward", "norms"),
    ("PowBackward", "norms"), ("MeanBackward", "norms"),
)


def _ancestry(event):
    while event is not None:
        yield event
        event = event.cpu_parent


def category_of(event) -> str:
    """The category (one of :data:`CATEGORIES`) an event's self time goes to (see the module docstring)."""
    names = [e.name for e in _ancestry(event)]
    if any("Optimizer." in n for n in names):
        return "optimizer"
    if any("selective_scan" in n for n in names):
        return "scan"
    if event.name in _COPIES:
        return "layout copies"
    for name in names:
        for key, category in _BY_NAME:
            if key in name:
                return category
    return "other"


def profile_step(step: Callable[[], object], steps: int = 1) -> dict:
    """Profile ``steps`` calls of ``step`` (already warmed up). Returns {"total_ms": profiled ms per step,
    "ms": {category: ms per step}} with every category of :data:`CATEGORIES`."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    totals = defaultdict(float)
    for event in prof.events():
        totals[category_of(event)] += event.self_cpu_time_total
    ms = {c: round(totals[c] / 1e3 / steps, 2) for c in CATEGORIES}
    return {"total_ms": round(sum(totals.values()) / 1e3 / steps, 2), "ms": ms}
