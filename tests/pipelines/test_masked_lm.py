"""Masked-LM pretraining: the BERT masking rule against known answers, the task on the Caduceus experiments
(pretrain, export, fine-tune a classifier from the export) and on a causal Mamba LM."""
from __future__ import annotations

import math

import pytest
import torch

from mamba_bio_audio.models import CaduceusForMaskedLM, load_pretrained
from mamba_bio_audio.pipelines.training.tasks.masked_lm import mlm_mask
from mamba_bio_audio.pipelines.training.train import run
from mamba_bio_audio.targets import IGNORE_INDEX

TINY_CADUCEUS = ["++net.config.d_model=8", "++net.config.n_layer=1", "++net.config.ssm_cfg.d_state=4"]
SMALL_DATA = ["data.seq_len=64", "data.batch_size=2", "data.eval_items=4"]


def test_masking_rule_known_answers():
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(7, 11, (64, 1024), generator=generator)  # A C G T
    ids[:, :100] = 4  # PAD
    ids[:, 100:200] = 11  # N
    ids[:, 200:210] = 1  # [SEP]
    masked, labels = mlm_mask(ids, torch.Generator().manual_seed(1), pad_token_id=4)
    chosen = labels != IGNORE_INDEX
    assert not chosen[:, :210].any()  # PAD, N and specials are never chosen
    assert torch.equal(labels[chosen], ids[chosen])
    assert torch.equal(masked[~chosen], ids[~chosen])
    eligible = 64 * (1024 - 210)
    assert abs(chosen.sum().item() / eligible - 0.15) < 0.005
    as_mask = (masked == 3) & chosen
    unchanged = (masked == ids) & chosen
    changed = chosen & ~as_mask & ~unchanged
    n = chosen.sum().item()
    # a random draw from the 12 ids gives [MASK] 1/12 of the time and leaves the base as it was 1/12 of the time
    assert abs(as_mask.sum().item() / n - (0.8 + 0.1 / 12)) < 0.01
    assert abs(changed.sum().item() / n - 0.1 * 10 / 12) < 0.01
    assert abs(unchanged.sum().item() / n - (0.1 + 0.1 / 12)) < 0.01
    assert masked[changed].max() < 12


def test_masking_is_seeded_and_checks_its_rates():
    ids = torch.randint(7, 11, (4, 256))
    first = mlm_mask(ids, torch.Generator().manual_seed(5))
    assert all(torch.equal(a, b) for a, b in zip(first, mlm_mask(ids, torch.Generator().manual_seed(5))))
    assert not torch.equal(first[1], mlm_mask(ids, torch.Generator().manual_seed(6))[1])
    only_mask = mlm_mask(ids, torch.Generator().manual_seed(5), probability=1.0, mask_fraction=1.0,
                         random_fraction=0.0)[0]
    assert (only_mask == 3).all()
    with pytest.raises(ValueError, match="probability must lie in"):
        mlm_mask(ids, torch.Generator(), probability=1.5)
    with pytest.raises(ValueError, match="mask_fraction \\+ random_fraction must be <= 1"):
        mlm_mask(ids, torch.Generator(), mask_fraction=0.95, random_fraction=0.1)


def test_caduceus_pretrains_exports_and_fine_tunes(compose, overrides, tmp_path):
    cfg = compose("experiment=dna/caduceus_ps_cpu", overrides, "debug=limit", "export=true", TINY_CADUCEUS,
                  SMALL_DATA)
    result = run(cfg)
    assert math.isfinite(result.metrics["test/loss"])
    model = load_pretrained(result.export_dir)
    assert isinstance(model, CaduceusForMaskedLM) and model.config.rcps and model.config.d_model == 8
    finetune = compose("net=caduceus_classifier", "data=apes4", "task=classification", "callbacks=classification",
                       f"net.pretrained={result.export_dir}", "debug=fdr", SMALL_DATA,
                       [o.replace(str(tmp_path / "run"), str(tmp_path / "finetune")) for o in overrides])
    scored = run(finetune)
    confusion = torch.tensor(scored.confusion)
    assert confusion.shape == (4, 4) and int(confusion.sum()) == finetune.data.batch_size  # fdr: one test batch
    assert scored.metrics["test/acc"] == pytest.approx(float(confusion.trace() / confusion.sum()))


def test_a_causal_mamba_trains_under_the_masked_lm_task(compose, overrides, tiny):
    cfg = compose("experiment=dna/hg_small_cpu", "task=masked_lm", overrides, "debug=fdr", tiny.dna, SMALL_DATA)
    assert math.isfinite(run(cfg).metrics["test/loss"])
