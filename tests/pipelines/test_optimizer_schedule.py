"""The tasks' optimizer (AdamW from the Hydra partial, weight decay on weight matrices only) and their per-step
learning rate (linear warmup, cosine to min_lr), checked against closed forms."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from hydra.utils import instantiate

from mamba_bio_audio.pipelines.training.tasks.base import warmup_cosine


def closed_form_lr(step: int, total: int, warmup: int, lr: float, min_lr: float) -> float:
    """lr·(step+1)/warmup while warming up, then half a cosine period from lr to min_lr over
    max(1, total - warmup) steps, min_lr after that."""
    if step < warmup:
        return lr * (step + 1) / warmup
    span = max(1, total - warmup)
    progress = min(step - warmup, span) / span
    return min_lr + (lr - min_lr) * (1 + math.cos(math.pi * progress)) / 2


def lr_sequence(optimizer, scheduler, steps: int) -> list[float]:
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


@pytest.mark.parametrize("total, warmup", [(100, 10), (1000, 100), (10, 1), (1, 1), (2, 1), (5, 5), (5, 8),
                                           (3, 2), (7, 6)])
@pytest.mark.parametrize("lr, min_lr", [(8e-3, 1e-5), (2e-3, 0.0), (1e-4, 1e-4)])
def test_schedule_matches_the_closed_form(total, warmup, lr, min_lr):
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=lr)
    steps = total + warmup + 5  # past the end too: min_lr holds
    lrs = lr_sequence(optimizer, warmup_cosine(optimizer, total, warmup, min_lr), steps)
    expected = [closed_form_lr(s, total, warmup, lr, min_lr) for s in range(steps)]
    torch.testing.assert_close(torch.tensor(lrs, dtype=torch.float64), torch.tensor(expected, dtype=torch.float64),
                               rtol=1e-9, atol=1e-12 * lr)


def _task(compose, tiny, tmp_path, *overrides):
    cfg = compose("experiment=dna/hg_small_cpu", f"paths.output_dir={tmp_path}", tiny.dna, *overrides)
    task = instantiate(cfg.task, net=instantiate(cfg.net, _convert_="all"), _convert_="all")
    return cfg, task


@pytest.mark.parametrize("overrides, total, warmup", [
    ((), 50, 5),                                          # lm.yaml: warmup_fraction 0.1
    (("task.scheduler.warmup_steps=12",), 50, 12),
    (("task.scheduler.warmup_fraction=0.001",), 50, 1),   # at least one warmup step
])
def test_task_builds_adamw_groups_and_schedule(compose, tiny, tmp_path, overrides, total, warmup):
    cfg, task = _task(compose, tiny, tmp_path, "task.optimizer.lr=4e-3", "task.optimizer.weight_decay=0.2", *overrides)
    task.trainer = SimpleNamespace(estimated_stepping_batches=total)
    configured = task.configure_optimizers()
    optimizer, scheduler = configured["optimizer"], configured["lr_scheduler"]["scheduler"]
    assert type(optimizer) is torch.optim.AdamW and configured["lr_scheduler"]["interval"] == "step"
    decay_by_param = {id(p): group["weight_decay"] for group in optimizer.param_groups for p in group["params"]}
    for name, param in task.net.named_parameters():
        no_decay = (name.endswith(("bias", ".A_log", ".D")) or "norm" in name.rsplit(".", 1)[0]
                    or "embedding" in name)
        assert decay_by_param.pop(id(param)) == (0.0 if no_decay else 0.2), name
    assert not decay_by_param
    for group in optimizer.param_groups:
        assert group["betas"] == (0.9, 0.95) and group["eps"] == 1e-8
    min_lr = cfg.task.scheduler.min_lr
    expected = [closed_form_lr(s, total, warmup, 4e-3, min_lr) for s in range(total)]
    assert lr_sequence(optimizer, scheduler, total) == pytest.approx(expected, rel=1e-9, abs=1e-15)
