"""Every task runs a fast_dev_run on the CPU: DNA LM (with and without sequence-length warmup), species
classification, audio LM on long recordings (Mamba) and on clips (SaShiMi)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from mamba_bio_audio.pipelines.training.train import run

TINY_SASHIMI = ["++net.config.d_model=8", "++net.config.n_layers=1", "++net.config.ssm_cfg={d_state:4}"]


@pytest.mark.parametrize("experiment, extra", [
    ("dna/hg_small_cpu", ["data.seq_len=64", "data.batch_size=2"]),
    ("dna/hg_small_ctx_cpu", ["data.seq_len=128", "data.batch_size=2",
                              "callbacks.seqlen_warmup.stages=[{seq_len:32,epochs:1}]"]),
    ("species/apes4_cpu", ["data.seq_len=64", "data.batch_size=4", "data.eval_items=8"]),
    ("audio/piano_cpu", ["data.seq_len=256", "data.batch_size=2", "data.eval_items=2"]),
    ("audio/piano_sashimi_cpu", ["data.seq_len=256", "data.batch_size=2", "data.eval_items=2"]),
    ("audio/digits_cpu", ["data.batch_size=2", "data.eval_items=2", "data.seq_len=4000"]),
])
def test_fast_dev_run(experiment, extra, compose, overrides, tiny):
    net = TINY_SASHIMI if experiment in ("audio/digits_cpu", "audio/piano_sashimi_cpu") else tiny.audio if experiment.startswith("audio") \
        else tiny.dna
    cfg = compose(f"experiment={experiment}", overrides, "debug=fdr", net, extra)
    result = run(cfg)
    assert math.isfinite(result.metrics["test/loss"])
    if experiment.startswith("species"):
        confusion = np.array(result.confusion)  # torchmetrics' confusion matrix, counted apart from the accuracy
        assert confusion.shape == (4, 4) and confusion.sum() == cfg.data.batch_size  # fdr: one test batch
        assert result.metrics["test/acc"] == pytest.approx(np.trace(confusion) / confusion.sum())
