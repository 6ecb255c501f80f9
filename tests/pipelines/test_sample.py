"""``sample`` loads an exported folder or a Lightning checkpoint and writes WAV + PNG (audio) or FASTA (DNA) with
each sample's exact log-likelihood; same seed, same samples."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from mamba_bio_audio.pipelines.cli import main
from mamba_bio_audio.tokenizers import NucleotideTokenizer
from mamba_bio_audio.pipelines.training.nets import load_net
from mamba_bio_audio.pipelines.training.train import run

STEPS = ["trainer.max_steps=2", "trainer.val_check_interval=null", "trainer.check_val_every_n_epoch=1",
         "trainer.limit_val_batches=1", "test=false", "~callbacks.audio_samples"]


@pytest.fixture(scope="module")
def audio_run(compose, overrides_for, tiny, tmp_path_factory):
    """One tiny exported audio run, trained once for the tests that only read it."""
    return run(compose("experiment=audio/piano_cpu", overrides_for(tmp_path_factory.mktemp("audio") / "run"),
                       tiny.audio, STEPS, "data.seq_len=128", "data.batch_size=2", "data.train_windows=8",
                       "data.eval_items=2"))


def test_sample_audio_from_export_and_checkpoint(audio_run, tmp_path, capsys):
    out = tmp_path / "clips"
    args = ["sample", f"checkpoint={audio_run.export_dir}", f"out={out}", "n=2", "seconds=0.02", "top_p=0.95"]
    assert main(args) == 0
    report = json.loads((out / "samples.json").read_text())["samples"]
    assert len(report) == 2 and all(np.isfinite(r["log_likelihood_nats"]) for r in report)
    pcm, rate = sf.read(str(out / "clip_00.wav"), dtype="int16")
    assert rate == 16000 and pcm.shape == (320,) and (out / "clip_01.png").read_bytes()[:4] == b"\x89PNG"
    assert main(args[:2] + [f"out={tmp_path / 'again'}"] + args[3:]) == 0
    assert np.array_equal(sf.read(str(tmp_path / "again" / "clip_00.wav"), dtype="int16")[0], pcm)
    from_ckpt = load_net(audio_run.last_checkpoint)
    exported = load_net(audio_run.export_dir)
    assert from_ckpt.config.to_dict() == exported.config.to_dict()


def test_sample_log_likelihood_is_exact(audio_run):
    from mamba_bio_audio.audio_generation import sample_audio

    net = load_net(audio_run.export_dir)
    drawn = sample_audio(net, 2, 40, seed=3, top_k=5)
    tokens = drawn.tokens.clone()
    inputs = torch.cat([torch.full((2, 1), 128), tokens[:, :-1]], dim=1)
    with torch.no_grad():
        log_probs = torch.log_softmax(net(inputs).logits[..., :256].float(), -1).gather(-1, tokens[..., None])
    torch.testing.assert_close(drawn.log_likelihood, log_probs[..., 0].sum(1), rtol=1e-4, atol=1e-3)


def test_sample_dna_with_prefix(compose, overrides, tiny, tmp_path):
    result = run(compose("experiment=dna/hg_small_cpu", overrides, tiny.dna, STEPS[:-1], "data.seq_len=64",
                         "data.batch_size=2", "data.train_windows=8", "data.eval_items=2"))
    out = tmp_path / "dna"
    assert main(["sample", f"checkpoint={result.last_checkpoint}", f"out={out}", "n=3", "length=50",
                 "prefix=ACGTACGT", "temperature=0.8"]) == 0
    lines = (out / "samples.fa").read_text().splitlines()
    assert len(lines) == 6 and all(line.startswith("ACGTACGT") and len(line) == 58 for line in lines[1::2])
    assert "log_likelihood_nats=" in lines[0]
    records = json.loads((out / "samples.json").read_text())["samples"]
    net = load_net(result.last_checkpoint)
    tokens = torch.as_tensor([NucleotideTokenizer().encode(line) for line in lines[1::2]])
    with torch.no_grad():
        logits = net(tokens[:, :-1]).logits[..., :net.config.vocab_size].float()
    log_probs = torch.log_softmax(logits, -1).gather(-1, tokens[:, 1:, None])[..., 0]
    torch.testing.assert_close(torch.tensor([r["log_likelihood_nats"] for r in records]), log_probs[:, 7:].sum(1),
                               rtol=1e-4, atol=1e-3)


def test_clip_stats_tell_tone_noise_offset_and_a_stuck_sampler_apart():
    from mamba_bio_audio.pipelines.reporting.audio_out import clip_stats

    rate = 16000
    t = np.arange(rate) / rate
    tone = clip_stats((0.5 * 32767 * np.sin(2 * np.pi * 440 * t)).astype(np.int16), rate)
    assert tone["rms_dbfs"] == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.05)
    assert tone["spectral_flatness"] < 0.01 and tone["longest_flat_s"] < 0.001
    noise = clip_stats((3000 * np.random.default_rng(0).standard_normal(rate)).astype(np.int16), rate)
    assert noise["spectral_flatness"] > 0.4
    stuck = np.concatenate([(3000 * np.random.default_rng(1).standard_normal(rate // 4)), np.full(3 * rate // 4, -2500)])
    stats = clip_stats(stuck.astype(np.int16), rate)
    assert stats["longest_flat_s"] == pytest.approx(0.75, abs=1e-3)
    offset = clip_stats(np.full(rate, -2500, dtype=np.int16), rate)
    assert offset["rms_dbfs"] < -150 and offset["dc_offset"] == pytest.approx(-2500 / 32768)
    assert np.isnan(offset["spectral_flatness"]) and offset["longest_flat_s"] == 1.0
