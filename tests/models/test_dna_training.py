"""A tiny Mamba LM learns real DNA: the human mitochondrial genome bundled with data_prep."""
import gzip
import math
from pathlib import Path

import pytest
import torch

from mamba_bio_audio import MambaLMHeadModel
from mamba_bio_audio.models import param_groups

FASTA = Path(__file__).resolve().parents[2] / "mamba_bio_audio" / "data_prep" / "examples" / "data" / "MT-human.fa.gz"
IDS = {"A": 7, "C": 8, "G": 9, "T": 10}  # the DNA tokenizer's ids; anything else is N (11)


def read_mt_human() -> torch.Tensor:
    with gzip.open(FASTA, "rt") as handle:
        sequence = "".join(line.strip() for line in handle if not line.startswith(">")).upper()
    assert len(sequence) == 16569
    return torch.tensor([IDS.get(base, 11) for base in sequence])


@pytest.mark.slow
def test_loss_falls_on_mitochondrial_dna(make_config):
    torch.manual_seed(0)
    genome = read_mt_human()
    train, held_out = genome[:15000], genome[15000:]
    window, batch = 33, 8
    generator = torch.Generator().manual_seed(0)
    evaluation = torch.stack([held_out[s:s + window] for s in range(0, 16 * 96, 96)])

    model = MambaLMHeadModel(make_config(d_model=32, ssm_cfg={"d_state": 8}))
    optimizer = torch.optim.AdamW(param_groups(model, 0.1), lr=8e-3, betas=(0.9, 0.95))

    def held_out_loss():
        with torch.no_grad():
            return model(evaluation[:, :-1], targets=evaluation[:, 1:]).loss.item()

    initial = held_out_loss()
    for _ in range(40):
        starts = torch.randint(0, len(train) - window, (batch,), generator=generator)
        windows = torch.stack([train[s:s + window] for s in starts.tolist()])
        loss = model(windows[:, :-1], targets=windows[:, 1:]).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    final = held_out_loss()
    assert initial > 0.9 * math.log(16)  # about uniform over the 16 rows of the head
    # ln 4 is a uniform guess over A, C, G, T; the base composition alone is worth about 1.33 nats here.
    assert final < 0.8 * initial and final < math.log(4), (initial, final)
