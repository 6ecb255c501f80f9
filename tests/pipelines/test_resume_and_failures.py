"""Resume gives the weights of an uninterrupted run; Ctrl-C leaves a resumable checkpoint; a NaN loss stops the
run with a message and keeps the last good checkpoint."""
from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch

from mamba_bio_audio.pipelines.training import train
from mamba_bio_audio.pipelines.training.train import TrainingStopped, run

SHORT = ["experiment=dna/hg_small_cpu", "data.seq_len=64", "data.batch_size=2", "data.train_windows=6",
         "data.eval_items=2", "trainer.max_epochs=2", "trainer.max_steps=-1", "trainer.val_check_interval=null",
         "trainer.check_val_every_n_epoch=1", "trainer.limit_val_batches=1", "trainer.log_every_n_steps=1",
         "test=false", "export=false"]


def _weights(checkpoint) -> dict:
    return torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]


def _with_callback(monkeypatch, callback) -> None:
    build = train.build

    def build_with(cfg):
        datamodule, task, trainer = build(cfg)
        trainer.callbacks.insert(0, callback)
        return datamodule, task, trainer

    monkeypatch.setattr(train, "build", build_with)


class StopAfterFirstEpoch(pl.Callback):
    def on_train_epoch_end(self, trainer, pl_module):
        trainer.should_stop = True


class InterruptAt(pl.Callback):
    def __init__(self, step: int):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            raise KeyboardInterrupt


class PoisonAt(pl.Callback):
    def __init__(self, step: int):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            with torch.no_grad():
                pl_module.net.backbone.embedding.weight.fill_(float("nan"))


def test_resumed_run_ends_with_the_same_weights(compose, data_dir, tmp_path, tiny, monkeypatch):
    base = [f"paths.data_dir={data_dir}", "logger=csv", "trainer.accelerator=cpu", "~callbacks.rich_progress_bar",
            *SHORT, *tiny.dna]
    whole = run(compose(base, f"paths.output_dir={tmp_path / 'whole'}"))
    with monkeypatch.context() as patch:
        _with_callback(patch, StopAfterFirstEpoch())
        first = run(compose(base, f"paths.output_dir={tmp_path / 'part'}"))
    assert _weights(first.last_checkpoint).keys() == _weights(whole.last_checkpoint).keys()
    resumed = run(compose(base, f"paths.output_dir={tmp_path / 'resumed'}", f"ckpt_path={first.last_checkpoint}"))
    a, b = _weights(whole.last_checkpoint), _weights(resumed.last_checkpoint)
    assert not torch.equal(_weights(first.last_checkpoint)["net.lm_head.weight"], a["net.lm_head.weight"])
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=0, msg=key)


def test_ctrl_c_leaves_a_resumable_checkpoint(compose, overrides, tiny, monkeypatch, capsys, tmp_path):
    with monkeypatch.context() as patch:
        _with_callback(patch, InterruptAt(step=4))
        with pytest.raises(SystemExit):
            run(compose(overrides, SHORT, tiny.dna))
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert f"resume with ckpt_path={checkpoint}" in capsys.readouterr().out
    assert torch.load(checkpoint, weights_only=True)["global_step"] == 4
    resumed = run(compose(overrides, SHORT, tiny.dna, f"ckpt_path={checkpoint}"))
    assert torch.load(resumed.last_checkpoint, weights_only=True)["global_step"] == 6


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(compose, overrides, tiny, monkeypatch, tmp_path):
    _with_callback(monkeypatch, PoisonAt(step=4))
    with pytest.raises(TrainingStopped, match=r"non-finite training loss .* at step 4.*last good checkpoint: .*last\.ckpt"):
        run(compose(overrides, SHORT, tiny.dna))
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["global_step"] == 3
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point())


class LastCheckpointSteps(pl.Callback):
    """The global step held by ``last.ckpt`` at the start of every training batch (None before it exists)."""

    def __init__(self, path):
        self.path, self.steps = path, []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.steps.append(torch.load(self.path, weights_only=True)["global_step"] if self.path.exists() else None)


def test_last_checkpoint_stays_current_when_the_metric_stops_improving(compose, overrides, tiny, monkeypatch, tmp_path):
    # monitoring the step with mode=min makes the first validation the best for good: no later top-k save;
    # validation every 2 steps, training ends at step 9, between validations
    probe = LastCheckpointSteps(tmp_path / "run" / "checkpoints" / "last.ckpt")
    _with_callback(monkeypatch, probe)
    result = run(compose(overrides, SHORT, tiny.dna, "callbacks.model_checkpoint.monitor=step",
                         "callbacks.model_checkpoint.mode=min", "trainer.max_epochs=3", "trainer.max_steps=9",
                         "trainer.val_check_interval=2", "trainer.check_val_every_n_epoch=null"))
    assert torch.load(result.best_checkpoint, weights_only=True)["global_step"] == 2
    assert probe.steps == [None, None, 2, 2, 4, 4, 6, 6, 8]
    assert torch.load(result.last_checkpoint, weights_only=True)["global_step"] == 9


@pytest.mark.parametrize("test", ["true", "false"])
def test_export_holds_the_best_weights(compose, overrides, tiny, tmp_path, test):
    # the best checkpoint (step 2) is not the last (step 6): the export holds the best one's weights, whether or
    # not trainer.test loaded them first
    from mamba_bio_audio.models import load_pretrained

    result = run(compose(overrides, SHORT, tiny.dna, "callbacks.model_checkpoint.monitor=step",
                         "callbacks.model_checkpoint.mode=min", "trainer.max_epochs=3", "trainer.max_steps=6",
                         "trainer.val_check_interval=2", "trainer.check_val_every_n_epoch=null",
                         f"test={test}", "export=true"))
    assert torch.load(result.best_checkpoint, weights_only=True)["global_step"] == 2
    best = {k[len("net."):]: v for k, v in _weights(result.best_checkpoint).items() if k.startswith("net.")}
    last = {k[len("net."):]: v for k, v in _weights(result.last_checkpoint).items() if k.startswith("net.")}
    exported = load_pretrained(result.export_dir).state_dict()
    assert set(exported) == set(best)
    assert any(not torch.equal(best[k], last[k]) for k in best)  # a test that could tell them apart
    for key, value in exported.items():
        assert torch.equal(value, best[key]), key
