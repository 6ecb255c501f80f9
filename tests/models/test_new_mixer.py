"""A new mixer is one class and one registry entry: the test below adds a causal depthwise-convolution mixer, trains
it through the real ``pretrain`` pipeline (Hydra compose + ``train.run``, export included), loads the exported
folder by its ``config.json`` and samples it, with no other change to the package."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mamba_bio_audio.data_prep.datasets.prepare_dna import prepare_dna
from mamba_bio_audio.generation import sample_sequences
from mamba_bio_audio.models import factory
from mamba_bio_audio.pipelines.commands.hydra_compose import compose
from mamba_bio_audio.pipelines.training.train import run


class CausalConvMixer(nn.Module):
    """(batch, L, d_model) → (batch, L, d_model): out_proj(silu(causal depthwise conv of in_proj(x))).

    Decoding state: the last ``width - 1`` projected inputs (batch, d_model, width - 1), kept in
    ``inference_params.key_value_memory_dict[layer_idx]`` and updated in place."""

    def __init__(self, d_model: int, width: int = 4, layer_idx: int | None = None, device=None, dtype=None):
        super().__init__()
        self.width, self.layer_idx = width, layer_idx
        self.in_proj = nn.Linear(d_model, d_model, device=device, dtype=dtype)
        self.conv = nn.Conv1d(d_model, d_model, width, groups=d_model, device=device, dtype=dtype)
        self.out_proj = nn.Linear(d_model, d_model, device=device, dtype=dtype)

    def forward(self, hidden_states: torch.Tensor, inference_params=None) -> torch.Tensor:
        x = self.in_proj(hidden_states).transpose(1, 2)
        if inference_params is None:
            x = F.pad(x, (self.width - 1, 0))
        else:
            past = inference_params.key_value_memory_dict[self.layer_idx]
            x = torch.cat([past, x], dim=2)
            past.copy_(x[:, :, x.shape[2] - (self.width - 1):])
        return self.out_proj(F.silu(self.conv(x)).transpose(1, 2))

    def allocate_inference_cache(self, batch_size: int, max_seqlen: int | None, dtype=None) -> torch.Tensor:
        weight = self.in_proj.weight
        return torch.zeros(batch_size, weight.shape[0], self.width - 1, device=weight.device,
                           dtype=dtype or weight.dtype)


def _dna_dataset(root):
    rng = np.random.default_rng(0)
    records = {name: "".join(rng.choice(list("ACGT"), size=n, p=[0.4, 0.1, 0.1, 0.4]))
               for name, n in (("chr1", 20_000), ("chr2", 3_000), ("chr3", 3_000))}
    root.mkdir()
    fasta = root / "genome.fa"
    fasta.write_text("".join(f">{name}\n{seq}\n" for name, seq in records.items()))
    prepare_dna([fasta], root / "hg_small", held_out={"valid": ["chr2"], "test": ["chr3"]})
    return root


def test_a_new_mixer_trains_through_pretrain_and_samples(tmp_path, monkeypatch):
    monkeypatch.setitem(factory.MIXERS, "CausalConv", CausalConvMixer)  # the one registry entry
    data = _dna_dataset(tmp_path / "data")
    cfg = compose("train", [
        "experiment=dna/hg_small_cpu", f"paths.data_dir={data}", f"paths.output_dir={tmp_path / 'run'}",
        "logger=csv", "trainer.accelerator=cpu", "trainer.devices=1", "data.num_workers=0",
        "~callbacks.rich_progress_bar", "+trainer.enable_model_summary=false",
        "++net.config.n_layer=2", "++net.config.d_model=16", "++net.config.ssm_cfg={layer:CausalConv,width:3}",
        "data.seq_len=64", "data.batch_size=8", "data.train_windows=320", "data.eval_items=16",
        "trainer.max_steps=40", "trainer.val_check_interval=40", "trainer.limit_val_batches=1",
    ])
    result = run(cfg)
    # untrained, the loss is that of a uniform guess over the 16 padded ids (ln 16 = 2.77 nats); the bases are
    # drawn 40/10/10/40 %, whose entropy is 1.19 nats: 40 steps learn most of that
    assert result.metrics["test/loss"] < 0.7 * math.log(16), result.metrics

    model = factory.load_pretrained(result.export_dir)
    assert all(isinstance(layer.mixer, CausalConvMixer) for layer in model.backbone.layers)
    prompt = torch.tensor([[7, 8, 9, 10, 7], [10, 10, 7, 8, 9]])
    drawn = sample_sequences(model, prompt, 12, seed=3)
    with torch.no_grad():  # the oracle: one parallel forward over the drawn tokens
        logits = model(drawn.tokens[:, :-1]).logits[..., :model.config.vocab_size].float()
    expected = torch.log_softmax(logits, -1).gather(-1, drawn.tokens[:, 1:, None])[..., 0]
    torch.testing.assert_close(drawn.log_probs[:, 1:], expected, rtol=1e-4, atol=1e-4)


def test_an_unregistered_mixer_or_a_key_it_does_not_take_is_named(monkeypatch):
    from mamba_bio_audio.config import MambaConfig

    with pytest.raises(ValueError, match=r"ssm_cfg\['layer'\] must name a registered mixer \(Mamba1.*'CausalConv'"):
        MambaConfig(d_model=16, n_layer=1, vocab_size=12, ssm_cfg={"layer": "CausalConv"})
    monkeypatch.setitem(factory.MIXERS, "CausalConv", CausalConvMixer)
    with pytest.raises(ValueError, match=r"\['d_state'\] that the CausalConv mixer does not take; it takes width"):
        MambaConfig(d_model=16, n_layer=1, vocab_size=12, ssm_cfg={"layer": "CausalConv", "d_state": 4})
