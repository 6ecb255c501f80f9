"""What a reader of the quickstart's log sees: a progress line every few seconds when stdout is not a terminal,
a step-labelled bar (no "Epoch 0/-2"), a one-line model summary (no "Total FLOPs"), no Lightning deprecation
warnings, command-line spellings in error hints, and a warning for an empty audio split."""
from __future__ import annotations

import io
import logging
import re
import warnings
from types import SimpleNamespace

import lightning.pytorch as pl
import numpy as np
import soundfile as sf
import torch
from lightning.pytorch.demos.boring_classes import BoringModel

from mamba_bio_audio.data_prep.datasets.prepare_audio import prepare_audio
from mamba_bio_audio.pipelines.commands.shared import cli_message
from mamba_bio_audio.pipelines.training.callbacks.progress import ProgressLines, StepProgressBar
from mamba_bio_audio.pipelines.training.train import run


def test_status_line_has_step_loss_speed_and_eta(monkeypatch):
    lines = ProgressLines(every_s=30, when="never")  # "never": the hooks print nothing and read the clock only here
    trainer = SimpleNamespace(global_step=0, max_steps=400, max_epochs=-1, is_global_zero=True)
    clock = iter([100.0, 160.0])
    monkeypatch.setattr("mamba_bio_audio.pipelines.training.callbacks.progress.time.perf_counter", lambda: next(clock))
    lines.on_train_start(trainer, None)  # at 100 s, from step 0
    trainer.global_step = 120
    lines.on_train_batch_end(trainer, None, {"loss": torch.tensor(1.23456)}, None, 119)
    # at 160 s: 60 s for 120 steps is 0.50 s/step, and 280 steps to go at that rate is 140 s
    assert lines.status(trainer) == "step 120/400 (30 %) · loss 1.2346 · 0.50 s/step · 1:00 elapsed · ETA 2:20"


def test_bar_counts_steps_when_epochs_are_unbounded(tmp_path):
    screen = io.StringIO()  # the bar as a terminal shows it
    bar = StepProgressBar(terminal_only=False, console_kwargs={"file": screen, "force_terminal": True, "width": 100})
    trainer = pl.Trainer(max_epochs=-1, max_steps=3, callbacks=[bar], logger=False, enable_checkpointing=False,
                         enable_model_summary=False, limit_val_batches=0, accelerator="cpu", devices=1,
                         default_root_dir=tmp_path)
    trainer.fit(BoringModel())
    assert "Train (≤ 3 steps)" in screen.getvalue() and "Epoch 0/-2" not in screen.getvalue()


def test_piped_run_prints_lines_and_no_noise(compose, overrides, tiny, capsys):
    shown = [o for o in overrides if "rich_progress_bar" not in o]  # the bar as configured: off in a pipe
    cfg = compose("experiment=species/apes4_cpu", shown, tiny.dna,
                  ["trainer.max_steps=4", "trainer.val_check_interval=2", "trainer.limit_val_batches=1",
                   "data.batch_size=4", "data.seq_len=64", "data.eval_items=8", "data.train_items=16",
                   "callbacks.progress_lines.every_s=0.001", "callbacks.progress_lines.when=always"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(cfg)
    out = capsys.readouterr().out
    assert re.search(r"step \d/4 \(\d+ %\) · loss \d\.\d{4}", out) and "validation at step 2: val/acc" in out
    assert re.search(r"model: [\d.]+ K? ?parameters", out) and "FLOPs" not in out and "Epoch 0/-2" not in out
    assert not [w for w in caught if "LeafSpec" in str(w.message) or "ckpt_path" in str(w.message)]


def test_error_hints_use_the_command_line_flags():
    text = "a.fa, line 3: unknown character '-' at position 4 (0-based); use unknown='unk' or unknown='n' to map"
    assert cli_message(text).endswith("use --unknown unk or --unknown n to map")
    assert cli_message("with iupac='error'; use iupac='n'") == "with --iupac error; use --iupac n"


def test_prepare_audio_warns_about_an_empty_split(tmp_path, caplog):
    for i in range(3):
        sf.write(str(tmp_path / f"{i}.wav"), (0.3 * np.sin(np.arange(4000) / 5)).astype(np.float32), 16000)
    with caplog.at_level(logging.WARNING, logger="mamba_bio_audio.data_prep.datasets.prepare_audio"):
        prepare_audio([tmp_path], tmp_path / "ds", mode="long")  # 88/6/6 of 3 files: 2 train, 0 valid, 1 test
    messages = [r.getMessage() for r in caplog.records]
    assert any("split 'valid' is empty" in m and "--split" in m and "--valid-list" in m for m in messages)
    assert not any("split 'test'" in m or "split 'train'" in m for m in messages)
