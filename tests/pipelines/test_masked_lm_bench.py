"""``compare experiment=compare/dna_models_quick``: every run of the comparison (pretraining, fine-tuning,
baselines) end to end on tiny models, its JSON and PNG; the optimizers are the Hydra tasks'; the downstream task
on a prepared species dataset."""
from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch

from mamba_bio_audio.pipelines.cli import main
from mamba_bio_audio.pipelines.commands import compare_dna_models as dna_models


def test_dna_models_quick(tmp_path):
    assert main(["compare", "experiment=compare/dna_models_quick", f"compare.species_data={tmp_path / 'none'}",
                 f"compare.out_dir={tmp_path}", f"paths.output_dir={tmp_path / 'run'}"]) == 0
    (report_path,) = tmp_path.glob("dna_models_*.json")
    report = json.loads(report_path.read_text())
    assert report["benchmark"] == "dna_models" and (tmp_path / report["plot"]).read_bytes()[:4] == b"\x89PNG"
    runs = report["pretraining"]
    assert set(runs) == {"mamba_lm", "mamba_mlm", "bimamba_mlm", "rcps_mlm"}
    params = [r["params"] for r in runs.values()]
    assert runs["bimamba_mlm"]["params"] == runs["rcps_mlm"]["params"]
    assert max(params) / min(params) < 1.1  # the causal Mamba's width is matched to the others' count
    assert len({r["tokens"] for r in runs.values()}) == 1 and all(r["tokens_per_s"] > 0 for r in runs.values())
    downstream = report["downstream"]
    assert set(downstream) == {"mamba", "mamba_rc_aug", "bimamba", "bimamba_rc_aug", "rcps", "rcps_rc_aug"}
    for key in ("rcps", "rcps_rc_aug"):  # RC-invariant: the same accuracy on both strands
        assert downstream[key]["forward"] == downstream[key]["reverse"] == downstream[key]["conjoined"]
    assert report["data"]["classes"] == ["human", "orangutan"] and report["data"]["test_windows"] == 8
    assert report["parameters"]["pretrain_task"][0] == "task.optimizer.lr=8.0e-3"


TINY = SimpleNamespace(width=8, layers=1, d_state=4)


@pytest.mark.parametrize("task, lr, min_lr", [("lm", 8e-3, 8e-4), ("masked_lm", 8e-3, 8e-4),
                                               ("classification", 2e-3, 2e-4)])
def test_the_optimizer_and_schedule_are_the_tasks(task, lr, min_lr):
    """Warmup over the first 10 % of the steps, a cosine down to min_lr at the last; decay on matrices only."""
    torch.manual_seed(0)
    model = {"lm": lambda: dna_models.pretrain_model("mamba", TINY),
             "masked_lm": lambda: dna_models.pretrain_model("bimamba", TINY),
             "classification": lambda: dna_models.classifier_from(dna_models.pretrain_model("rcps", TINY), 2)}[task]()
    overrides = [f"task.optimizer.lr={lr}", "task.scheduler.warmup_fraction=0.1", f"task.scheduler.min_lr={min_lr}"]
    optimizer, scheduler = dna_models.task_optimizer(model, task, overrides, steps=20)
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.defaults["betas"] == (0.9, 0.95)
    assert sorted(g["weight_decay"] for g in optimizer.param_groups) == [0.0, 0.1]
    decayed = next(g for g in optimizer.param_groups if g["weight_decay"])["params"]
    names = [name for name, p in model.named_parameters() if any(p is q for q in decayed)]
    assert names and all(p.ndim >= 2 for p in decayed)
    assert not [name for name in names if "embedding" in name or "norm" in name or name.endswith("bias")]
    rates = []
    for _ in range(20):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[0] == pytest.approx(lr / 2) and rates[1] == pytest.approx(lr)  # warmup: 2 steps
    assert rates[11] == pytest.approx(min_lr + (lr - min_lr) * (1 + math.cos(math.pi * 9 / 18)) / 2)  # cosine midway
    assert optimizer.param_groups[0]["lr"] == pytest.approx(min_lr)


def test_downstream_reads_a_prepared_species_set(data_dir):
    """The downstream task reads a prepared species dataset (the four-species fixture) when one is given."""
    args = SimpleNamespace(species_data=data_dir / "apes4", seq_len=32, batch=4, finetune_steps=2, eval_windows=3,
                           seed=0)
    task = dna_models.downstream_task(args, [], [])
    assert task.classes == ["human", "chimpanzee", "gorilla", "orangutan"]
    windows, labels = task.sample(4, torch.Generator())
    assert windows.shape == (4, 32) and windows.dtype == torch.int64 and labels.max() < 4
    assert task.test[0].shape == (12, 32) and sorted(set(task.test[1].tolist())) == [0, 1, 2, 3]


def test_the_causal_model_is_scored_on_its_own_masked_bases():
    """Under the masked-LM objective the causal Mamba's loss is the cross-entropy of each masked position's
    logits against that position's base (aligned, as the Caduceus models'), not against the next position's."""
    from mamba_bio_audio.models.caduceus import mlm_mask

    torch.manual_seed(0)
    model = dna_models.pretrain_model("mamba", TINY)
    windows = torch.randint(7, 11, (2, 33), generator=torch.Generator().manual_seed(1))
    loss = dna_models.held_out_loss(model, windows, "mlm", seed=2)  # the held-out figure of the curves
    with torch.no_grad():
        masked, labels = mlm_mask(windows[:, :-1], torch.Generator().manual_seed(2),
                                  pad_token_id=dna_models.TOKENIZER.pad_token_id)
        logits = model.eval()(masked).logits
    expected = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100)
    assert (labels != -100).any() and loss == pytest.approx(expected.item(), rel=1e-5)
