"""SIGTERM, SIGINT and SIGUSR1 during training save ``checkpoints/last.ckpt`` at the step where the run
stopped, print the ``ckpt_path=`` to resume with and exit with 128 + the signal number; under DDP every rank
stops at the same step. The signals are real (``os.kill`` from a callback at a chosen step:
:mod:`signal_at`)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mamba_bio_audio.pipelines.cli import main

HERE = Path(__file__).parent  # the subprocesses run here, so ``signal_at`` imports as it does in pytest
RUN = ["pretrain", "experiment=dna/hg_small_cpu", "data.seq_len=64", "data.batch_size=2", "data.train_windows=16",
       "data.eval_items=2", "trainer.max_steps=6", "trainer.val_check_interval=null",
       "trainer.check_val_every_n_epoch=1", "trainer.limit_val_batches=1", "test=false", "export=true",
       "+callbacks.signal_at._target_=signal_at.SignalAt", "+callbacks.signal_at.step=3"]


def _cli(overrides, tiny, *extra) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("MAMBA_BIO_AUDIO_RUN_DIR", "LOCAL_RANK")}
    return subprocess.run([sys.executable, "-m", "mamba_bio_audio.pipelines.cli", *RUN, *overrides, *tiny, *extra],
                          capture_output=True, text=True, timeout=240, cwd=HERE, env={**env, "OMP_NUM_THREADS": "1"},
                          start_new_session=True)  # its own process group, which a signal may target


def _stopped_at(run_dir: Path) -> int:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["global_step"]


def test_sigterm_saves_last_ckpt_and_exits_143(overrides, tiny, tmp_path):
    # SIGTERM to the whole process group (as SLURM or a terminal sends it), DataLoader workers included, in
    # the middle of step 2's validation: the validation finishes (the workers ignore it), step 3 trains and
    # the run stops there, step 3 not being a validation step
    done = _cli(overrides, tiny.dna, "data.num_workers=2", "data.eval_items=4", "trainer.limit_val_batches=2",
                "trainer.val_check_interval=2", "trainer.check_val_every_n_epoch=null", "callbacks.signal_at.step=2",
                "+callbacks.signal_at.group=true", "+callbacks.signal_at.in_validation=true")
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert done.returncode == 143, done.stderr[-3000:]
    assert f"stopped by SIGTERM at step 3: resume with ckpt_path={checkpoint}" in done.stdout
    assert _stopped_at(tmp_path / "run") == 3
    # the run did not finish: no metrics, no export, no report of a best model
    assert not (tmp_path / "run" / "metrics.json").exists() and not (tmp_path / "run" / "export").exists()
    assert "best checkpoint" not in done.stdout


def _stop_in_this_process(overrides, tiny, tmp_path, capsys, name: str) -> tuple[int, Path]:
    # the CLI's main in this process, real signals to pytest's own process: cheaper than a new interpreter
    code = main([*RUN, *overrides, *tiny.dna, f"+callbacks.signal_at.name={name}"])
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert f"stopped by {name} at step 3: resume with ckpt_path={checkpoint}" in capsys.readouterr().out
    assert _stopped_at(tmp_path / "run") == 3
    return code, checkpoint


def test_sigint_exits_130_and_the_run_resumes_in_its_folder(overrides, tiny, tmp_path, capsys):
    code, checkpoint = _stop_in_this_process(overrides, tiny, tmp_path, capsys, "SIGINT")
    assert code == 130
    assert main([*RUN[:-2], *overrides, *tiny.dna, f"ckpt_path={checkpoint}"]) == 0
    assert _stopped_at(tmp_path / "run") == 6  # last.ckpt kept current, no last-v1.ckpt beside it
    assert not list((tmp_path / "run" / "checkpoints").glob("last-v*.ckpt"))


def test_sigusr1_exits_138(overrides, tiny, tmp_path, capsys):
    code, _ = _stop_in_this_process(overrides, tiny, tmp_path, capsys, "SIGUSR1")
    assert code == 138


def test_second_ctrl_c_stops_at_once_without_saving(overrides, tiny, tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:  # Lightning's exit on a KeyboardInterrupt
        main([*RUN, *overrides, *tiny.dna, "+callbacks.signal_at.name=SIGINT", "+callbacks.signal_at.times=2"])
    assert stopped.value.code == 1
    assert "interrupted again: stopped at once, without saving this step" in capsys.readouterr().err
    assert not (tmp_path / "run" / "checkpoints" / "last.ckpt").exists()


@pytest.mark.slow
def test_ddp_ranks_stop_together_when_one_rank_gets_sigterm(overrides, tiny, tmp_path):
    # only rank 1 receives the signal; rank 0 (this subprocess, which launched rank 1) learns it at the step's end
    done = _cli(overrides, tiny.dna, "trainer=ddp", "trainer.devices=2", "+callbacks.signal_at.rank=1")
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert done.returncode == 143, done.stderr[-3000:]
    assert f"stopped by SIGTERM at step 3: resume with ckpt_path={checkpoint}" in done.stdout
    assert "rank 1: stopped by SIGTERM at step 3" in done.stdout  # rank 1 exited too: the pipe was closed
    assert _stopped_at(tmp_path / "run") == 3
