"""DDP with 2 CPU processes (gloo) trains and agrees with one process on the loss of the first step."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest


def _first_step_loss(run_dir: Path) -> float:
    with open(run_dir / "csv" / "metrics.csv") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("train/loss")]
    return float(min(rows, key=lambda r: int(r["step"]))["train/loss"])


def _pretrain(tmp_path: Path, data_dir: Path, tiny_net: list[str], name: str, *extra: str) -> Path:
    run_dir = tmp_path / name
    cmd = [sys.executable, "-m", "mamba_bio_audio.pipelines.cli", "pretrain", "experiment=dna/hg_small_cpu",
           f"paths.data_dir={data_dir}", f"paths.output_dir={run_dir}", "logger=csv", "trainer.accelerator=cpu",
           "data.seq_len=64", "data.train_windows=16", "data.eval_items=2", "trainer.max_steps=2",
           "trainer.limit_val_batches=1", "trainer.log_every_n_steps=1", "trainer.val_check_interval=null",
           "trainer.check_val_every_n_epoch=1", "test=false", "export=false", "~callbacks.rich_progress_bar",
           *tiny_net, *extra]
    env = {k: v for k, v in os.environ.items() if k not in ("MAMBA_BIO_AUDIO_RUN_DIR", "LOCAL_RANK")}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**env, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    return run_dir


@pytest.mark.slow
def test_ddp_two_cpu_processes_match_one_process(tmp_path, data_dir, tiny):
    single = _pretrain(tmp_path, data_dir, tiny.dna, "single", "data.batch_size=4")
    ddp = _pretrain(tmp_path, data_dir, tiny.dna, "ddp", "trainer=ddp", "trainer.devices=2", "data.batch_size=2")
    assert (ddp / "checkpoints" / "last.ckpt").is_file()
    assert abs(_first_step_loss(ddp) - _first_step_loss(single)) < 1e-5
