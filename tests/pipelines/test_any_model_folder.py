"""``sample`` and ``evaluate`` take any exported model folder: the folder's config.json says what it holds
(a Transformer++ LM, a SaShiMi, a classifier), whatever the experiment's net group says."""
from __future__ import annotations

import json
import math

import pytest
import soundfile as sf
import torch

from mamba_bio_audio.config import MambaConfig, TransformerConfig
from mamba_bio_audio.models import MambaForSequenceClassification, SashimiConfig, SashimiLM
from mamba_bio_audio.models.transformer import TransformerLMHeadModel
from mamba_bio_audio.pipelines.cli import main

EVAL = ["trainer.limit_test_batches=1", "data.eval_items=4", "data.batch_size=2"]


def _transformer_folder(path):
    torch.manual_seed(0)
    TransformerLMHeadModel(TransformerConfig(d_model=32, n_layer=2, n_head=4, d_intermediate=64, vocab_size=12,
                                             pad_token_id=4)).save_pretrained(path)
    return path


def test_sample_a_transformer_and_a_sashimi_folder(tmp_path):
    folder = _transformer_folder(tmp_path / "transformer")
    assert main(["sample", f"checkpoint={folder}", f"out={tmp_path / 'dna'}", "n=2", "length=12"]) == 0
    lines = (tmp_path / "dna" / "samples.fa").read_text().splitlines()
    assert len(lines) == 4 and all(len(line) == 13 and set(line) <= set("ACGT") for line in lines[1::2])
    torch.manual_seed(0)
    SashimiLM(SashimiConfig(d_model=8, n_layers=1, pool=[2, 2])).save_pretrained(tmp_path / "sashimi")
    assert main(["sample", f"checkpoint={tmp_path / 'sashimi'}", f"out={tmp_path / 'audio'}", "n=1",
                 "seconds=0.005"]) == 0
    pcm, rate = sf.read(str(tmp_path / "audio" / "clip_00.wav"), dtype="int16")
    assert rate == 16000 and pcm.shape == (80,)
    records = json.loads((tmp_path / "audio" / "samples.json").read_text())["samples"]
    bits = records[0]["bits_per_sample"]
    assert bits == pytest.approx(-records[0]["log_likelihood_nats"] / 80 / math.log(2))  # 80 samples drawn
    assert abs(bits - 8.0) < 0.5  # an untrained model is about uniform over the 256 mu-law codes


def test_evaluate_a_classifier_and_a_transformer_folder(overrides, tmp_path, capsys):
    torch.manual_seed(0)
    MambaForSequenceClassification(MambaConfig(d_model=16, n_layer=2, vocab_size=12, pad_vocab_size_multiple=8,
                                               ssm_cfg={"d_state": 4}, num_labels=4, pad_token_id=4)
                                   ).save_pretrained(tmp_path / "classifier")
    assert main(["evaluate", "experiment=species/apes4_cpu", f"net.pretrained={tmp_path / 'classifier'}",
                 *overrides, *EVAL]) == 0
    assert "test/acc" in capsys.readouterr().out
    folder = _transformer_folder(tmp_path / "transformer")
    assert main(["evaluate", "experiment=dna/hg_small_cpu", f"net.pretrained={folder}", *overrides, *EVAL]) == 0
    assert "test/loss" in capsys.readouterr().out
