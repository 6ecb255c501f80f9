"""A run resumed in its own folder keeps the metrics.csv of its earlier part and appends to it; the quickstart
report reads the whole curve."""
from __future__ import annotations

import csv

import pytest
import torch

from mamba_bio_audio.pipelines.reporting.quickstart_report import plot_training_curves, read_curve
from mamba_bio_audio.pipelines.training.train import run

STEPS = ["experiment=dna/hg_small_cpu", "data.seq_len=64", "data.batch_size=2", "data.train_windows=40",
         "data.eval_items=2", "trainer.max_epochs=-1", "trainer.val_check_interval=1",
         "trainer.check_val_every_n_epoch=null", "trainer.limit_val_batches=1", "trainer.log_every_n_steps=1",
         "test=false", "export=false"]


def _rows(path) -> list[dict]:
    """The rows of a metrics.csv, each without its empty cells (a new column adds one to every earlier row)."""
    with open(path, newline="") as fh:
        return [{k: v for k, v in row.items() if v} for row in csv.DictReader(fh)]


def _steps(rows, key) -> list[int]:
    return [int(r["step"]) for r in rows if r.get(key)]


def test_resumed_run_appends_to_the_metrics_of_its_first_part(compose, overrides, tiny, tmp_path):
    metrics = tmp_path / "run" / "csv" / "metrics.csv"
    first = run(compose(overrides, STEPS, tiny.dna, "trainer.max_steps=3"))
    before = _rows(metrics)
    resumed = run(compose(overrides, STEPS, tiny.dna, "trainer.max_steps=6", f"ckpt_path={first.last_checkpoint}"))
    after = _rows(metrics)
    assert torch.load(resumed.last_checkpoint, weights_only=True)["global_step"] == 6
    assert after[:len(before)] == before  # the first part's rows, values and all, unchanged
    assert _steps(after, "train/loss") == list(range(6))
    assert _steps(after, "val/loss") == list(range(6))
    plot_training_curves(tmp_path / "curves.png", [{"title": "DNA", "run": tmp_path / "run", "metric": "loss"}])
    assert read_curve(tmp_path / "run", "val/loss")[0] == list(range(6))
    assert (tmp_path / "curves.png").stat().st_size > 1000
    # evaluating in the folder afterwards adds its test row and keeps the curve
    run(compose(overrides, STEPS, tiny.dna, "train=false", "test=true", f"ckpt_path={resumed.last_checkpoint}"))
    evaluated = _rows(metrics)
    assert evaluated[:len(after)] == after and len(evaluated) == len(after) + 1 and evaluated[-1]["test/loss"]


def test_rows_the_resumed_run_logs_again_replace_those_of_the_first_part(compose, overrides, tiny, tmp_path):
    # the first part logs steps 0-3 but is resumed from its checkpoint of step 1 (the best, when the monitor is
    # the step itself), as after a crash: the rows of steps 1-3 come from the resumed run only
    metrics = tmp_path / "run" / "csv" / "metrics.csv"
    best = ["callbacks.model_checkpoint.monitor=step", "callbacks.model_checkpoint.mode=min"]
    first = run(compose(overrides, STEPS, tiny.dna, best, "trainer.max_steps=4"))
    assert torch.load(first.best_checkpoint, weights_only=True)["global_step"] == 1
    step0 = [r for r in _rows(metrics) if r["step"] == "0"]
    run(compose(overrides, STEPS, tiny.dna, best, "trainer.max_steps=3", f"ckpt_path={first.best_checkpoint}"))
    after = _rows(metrics)
    assert [r for r in after if r["step"] == "0"] == step0
    assert _steps(after, "train/loss") == [0, 1, 2]
    assert _steps(after, "val/loss") == [0, 1, 2]


@pytest.mark.filterwarnings("ignore:Only one segment is calculated:UserWarning")  # the spectrogram of a 32-sample clip
def test_audio_samples_keep_their_cadence_across_a_resume(compose, overrides, tiny, tmp_path):
    # clips every 2nd validation, a validation every step: steps 2, 4 and 6, whether the run is resumed at 3 or not
    audio = ["experiment=audio/piano_cpu", "data.seq_len=64", "data.batch_size=2", "data.train_windows=40",
             "data.eval_items=2", "trainer.val_check_interval=1", "trainer.limit_val_batches=1",
             "callbacks.audio_samples.every_n_validations=2", "callbacks.audio_samples.seconds=0.002",
             "test=false", "export=false"]
    first = run(compose(overrides, audio, tiny.audio, "trainer.max_steps=3"))
    state = torch.load(first.last_checkpoint, weights_only=True)["callbacks"]["AudioSamples"]
    assert state == {"validations": 3}
    run(compose(overrides, audio, tiny.audio, "trainer.max_steps=6", f"ckpt_path={first.last_checkpoint}"))
    assert sorted(p.name for p in (tmp_path / "run" / "samples").glob("*.wav")) == [
        "step_000002_0.wav", "step_000004_0.wav", "step_000006_0.wav"]
