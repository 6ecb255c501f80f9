"""The synthetic tasks through the real command line (`pretrain experiment=synthetic/...` with ablation
switches), their DataModules' seeded draws, and the studies' evaluation helpers against one-pass oracles."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mamba_bio_audio.data_prep.synthetic.induction_heads import induction_heads
from mamba_bio_audio.models import load_pretrained
from mamba_bio_audio.pipelines.cli import main
from mamba_bio_audio.pipelines.studies import copying, induction, synthetic_runs
from mamba_bio_audio.pipelines.training.synthetic_data import InductionHeadsDataModule, SelectiveCopyingDataModule


def test_pretrain_scores_only_the_answers_of_a_switched_mamba(tmp_path):
    run = tmp_path / "run"
    code = main(
        ["pretrain", "experiment=synthetic/induction_heads",
         f"paths.output_dir={run}", "logger=csv", "trainer.accelerator=cpu", "~callbacks.rich_progress_bar",
         "+trainer.enable_model_summary=false", "data.seq_len=32", "data.batch_size=4", "data.train_items=8",
         "data.eval_items=6", "data.eval_batch_size=3", "trainer.max_steps=2", "trainer.val_check_interval=2",
         "++net.config.d_model=16", "++net.config.ssm_cfg.use_conv=false",
         "++net.config.ssm_cfg.selective_dt=false", "trainer.num_sanity_val_steps=0",
         "trainer.log_every_n_steps=1"])
    assert code == 0
    config = json.loads((run / "export" / "config.json").read_text())
    assert config["ssm_cfg"]["use_conv"] is False and config["ssm_cfg"]["selective_dt"] is False
    model = load_pretrained(run / "export").eval()
    test = InductionHeadsDataModule(seq_len=32, batch_size=4, eval_items=6, seed=0).dataset("test", 6, 0)
    inputs, targets = (torch.stack(t) for t in zip(*[test[i] for i in range(6)]))
    with torch.no_grad():  # the oracle: cross entropy of the last position alone
        expected = F.cross_entropy(model(inputs).logits[:, -1], targets[:, -1]).item()
    assert abs(json.loads((run / "metrics.json").read_text())["test/loss"] - expected) < 1e-4


def test_datamodule_draws_are_seeded_and_splits_differ():
    make = lambda seed: SelectiveCopyingDataModule(seq_len=48, batch_size=4, train_items=8, eval_items=4,
                                                  n_tokens=6, seed=seed)
    first = [next(iter(make(0).train_dataloader())) for _ in range(2)]
    torch.testing.assert_close(first[0], first[1])
    assert not torch.equal(first[0][0], next(iter(make(1).train_dataloader()))[0])
    inputs, targets = first[0]
    assert inputs.shape == (4, 48) and ((targets != -100).sum(1) == 6).all()
    module = make(0)
    valid, test = next(iter(module.val_dataloader())), next(iter(module.test_dataloader()))
    assert not torch.equal(valid[0], test[0])
    loader = module.train_dataloader()
    loader.sampler.set_epoch(1)
    assert not torch.equal(next(iter(loader))[0], first[0][0])  # fresh sequences every epoch


def test_chunked_last_token_accuracy_equals_one_pass():
    model = synthetic_runs.mamba_lm(16, 16, 2, seed=0, d_state=4).eval()
    noise = torch.Generator().manual_seed(5)
    with torch.no_grad():  # off the init, which predicts the same id for every sequence (and never the answer)
        for param in model.parameters():
            param.add_(torch.randn(param.shape, generator=noise) * 0.3)
    inputs, targets = induction_heads(np.random.default_rng(3), 8, 300)
    with torch.no_grad():  # the oracle: the one-pass prediction made the answer, so agreeing with it scores 1
        targets[:, -1] = model(torch.from_numpy(inputs)).logits[:, -1].argmax(-1).numpy()
    assert len(set(targets[:, -1].tolist())) >= 3  # agreement cannot come from a constant prediction
    for chunk in (None, 64, 50):
        got = synthetic_runs.last_token_accuracy(model, lambda r, b, n: (inputs.copy(), targets.copy()),
                                                 n=8, length=300, seed=0, batch=8, chunk=chunk)
        assert got == 1.0, chunk


def test_transformer_matched_to_mamba_parameters_and_verdicts_name_a_miss():
    mamba = synthetic_runs.mamba_lm(16, 64, 2, seed=0, d_state=16)
    width = induction.matched_transformer_width(synthetic_runs.n_params(mamba.backbone.layers[0]), 64)
    transformer = synthetic_runs.transformer_lm(16, 64, 2, n_head=4, d_intermediate=width, seed=0)
    assert abs(synthetic_runs.n_params(transformer) / synthetic_runs.n_params(mamba) - 1) < 0.01
    missed = copying.verdict({"mamba": {"accuracy": 0.6, "final_train_loss": 1.0}, "non_selective": {"accuracy": 0.2},
                              "transformer": {"accuracy": 0.3}})
    assert missed[0].startswith("target MISSED") and "Mamba below 95 %" in missed[0]
    met = induction.verdict({"models": {"mamba": {"accuracy": {"256": 1.0, "1048576": 0.995}, "final_train_loss": 0.0},
                                        "transformer": {"accuracy": {"256": 1.0, "1024": 0.4}}},
                             "transformer_stops_at": 1024})
    assert met[0].startswith("target met") and "below 99 % from 1024" in met[1]


def test_state_half_lives_of_a_layer_with_known_decay():
    """Δ = softplus(bias) = 0.01 on every token (dt_proj's weight zeroed) and |A| = 1 .. N per channel, except one
    channel of the second layer given |A| = 1e-6: its slowest entry halves after ln 2 / (0.01 · |A|) tokens."""
    model = synthetic_runs.mamba_lm(16, 16, 2, seed=0, d_state=4)
    with torch.no_grad():
        for layer in model.backbone.layers:
            mixer = layer.mixer
            mixer.dt_proj.weight.zero_()
            mixer.dt_proj.bias.fill_(math.log(math.expm1(0.01)))
            mixer.A_log.copy_(torch.log(torch.arange(1.0, 5.0)).repeat(mixer.d_inner, 1))
        model.backbone.layers[1].mixer.A_log[5, 2] = math.log(1e-6)
    lives = induction.state_half_lives(model, induction_heads, n=2, length=64, seed=0)
    assert [life["layer"] for life in lives] == [0, 1]
    assert lives[0]["slowest_half_life"] == pytest.approx(math.log(2) / 0.01, rel=1e-4)
    assert lives[1]["slowest_half_life"] == pytest.approx(math.log(2) / (0.01 * 1e-6), rel=1e-3)
    assert (lives[0]["channels_beyond_2^20"], lives[1]["channels_beyond_2^20"]) == (0, 1)
    assert lives[1]["channels"] == model.backbone.layers[1].mixer.d_inner
    verdict = induction.verdict({"models": {"mamba": {"accuracy": {"256": 1.0, "65536": 0.5}, "final_train_loss": 0.0,
                                                      "state_half_lives": lives},
                                            "transformer": {"accuracy": {"256": 0.1}}}, "transformer_stops_at": 256})
    assert "layer 0: 69 tokens" in verdict[1] and "can explain a fall" in verdict[1]
    held = [life | {"slowest_half_life": 2.0**21} for life in lives]
    verdict = induction.verdict({"models": {"mamba": {"accuracy": {"256": 1.0, "65536": 0.5}, "final_train_loss": 0.0,
                                                      "state_half_lives": held},
                                            "transformer": {"accuracy": {"256": 0.1}}}, "transformer_stops_at": 256})
    assert "does not explain a fall before 2^20" in verdict[1]


def test_pretrain_refuses_a_net_vocabulary_smaller_than_the_task(tmp_path, capsys):
    code = main(["pretrain", "experiment=synthetic/selective_copying", f"paths.output_dir={tmp_path / 'run'}",
                 "logger=csv", "trainer.accelerator=cpu", "++net.config.d_model=16", "++net.config.vocab_size=8",
                 "data.seq_len=64", "data.n_tokens=4"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "net.config.vocab_size >= 16" in err and "got 8" in err, err
    assert not (tmp_path / "run" / "checkpoints").exists()  # refused before fitting


@pytest.mark.parametrize("key, value, message", [("data.seq_len", "0", "data.seq_len must be a positive integer"),
                                                ("data.seed", "-1", "data.seed must be an integer >= 0")])
def test_pretrain_names_a_bad_synthetic_data_value(key, value, message, tmp_path, capsys):
    code = main(["pretrain", "experiment=synthetic/induction_heads", f"paths.output_dir={tmp_path / 'run'}",
                 "logger=csv", "trainer.accelerator=cpu", f"{key}={value}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err, err
    assert not (tmp_path / "run").exists()


def test_ablation_study_without_the_dna_names_the_command_that_makes_it(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no data/hg_small here
    code = main(["bench", "reviewers", "--study", "ablation", "--quick", "--out-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "mamba-bio-audio examples dna --only hg_small" in err and "data/hg_small" in err, err
    assert not (tmp_path / "out").exists()
