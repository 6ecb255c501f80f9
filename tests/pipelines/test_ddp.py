"""DDP with 2 CPU processes (gloo) trains and agrees with one process on the loss of the first step."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mamba_bio_audio.pipelines.cli import main


def _first_step_loss(run_dir: Path) -> float:
    with open(run_dir / "csv" / "metrics.csv") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("train/loss")]
    return float(min(rows, key=lambda r: int(r["step"]))["train/loss"])


def _pretrain_args(tmp_path: Path, data_dir: Path, tiny_net: list[str], name: str, *extra: str) -> list[str]:
    return ["pretrain", "experiment=dna/hg_small_cpu", f"paths.data_dir={data_dir}",
            f"paths.output_dir={tmp_path / name}", "logger=csv", "trainer.accelerator=cpu", "data.seq_len=64",
            "data.train_windows=16", "data.eval_items=2", "trainer.max_steps=2", "trainer.limit_val_batches=1",
            "trainer.log_every_n_steps=1", "trainer.val_check_interval=null", "trainer.check_val_every_n_epoch=1",
            "test=false", "export=false", "~callbacks.rich_progress_bar", *tiny_net, *extra]


@pytest.mark.slow
def test_ddp_two_cpu_processes_match_one_process(tmp_path, data_dir, tiny):
    # the one-process reference in this process; the DDP run in its own (it launches the second rank)
    assert main(_pretrain_args(tmp_path, data_dir, tiny.dna, "single", "data.batch_size=4")) == 0
    env = {k: v for k, v in os.environ.items() if k not in ("MAMBA_BIO_AUDIO_RUN_DIR", "LOCAL_RANK")}
    done = subprocess.run([sys.executable, "-m", "mamba_bio_audio.pipelines.cli",
                           *_pretrain_args(tmp_path, data_dir, tiny.dna, "ddp", "trainer=ddp", "trainer.devices=2",
                                           "data.batch_size=2")],
                          capture_output=True, text=True, timeout=300, env={**env, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    checkpoint = torch.load(tmp_path / "ddp" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["global_step"] == 2  # both ranks trained the run to its end
    assert abs(_first_step_loss(tmp_path / "ddp") - _first_step_loss(tmp_path / "single")) < 1e-5
