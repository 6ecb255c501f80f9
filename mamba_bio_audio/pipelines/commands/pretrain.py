"""``mamba-bio-audio pretrain [KEY=VALUE ...]``: language-model pretraining, causal (DNA or audio) or masked
(Caduceus): any experiment whose net's ``head_type`` is ``causal_lm`` or ``masked_lm``."""
from __future__ import annotations

from mamba_bio_audio.pipelines.commands.training_command import add_overrides, train_command


def add_arguments(parser) -> None:
    add_overrides(parser, "experiment=dna/hg38_mamba_1.4m trainer.devices=8 data.seq_len=1048576")


def run(args) -> int:
    return train_command(args, [], "pretrain")
