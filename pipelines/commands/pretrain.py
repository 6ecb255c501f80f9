"""``mamba-bio-audio pretrain [KEY=VALUE ...]``: causal LM pretraining (DNA or audio)."""
from __future__ import annotations

from mamba_bio_audio.pipelines.commands.training_command import LM_TASK, add_overrides, train_command


def add_arguments(parser) -> None:
    add_overrides(parser, "experiment=dna/hg38_mamba_1.4m trainer.devices=8 data.seq_len=1048576")


def run(args) -> int:
    return train_command(args, [], LM_TASK, "pretrain")
