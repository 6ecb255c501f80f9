"""``mamba-bio-audio finetune [KEY=VALUE ...]``: sequence classification from a pretrained LM (Great Apes)."""
from __future__ import annotations

from mamba_bio_audio.pipelines.commands.training_command import CLASSIFICATION_TASK, add_overrides, train_command


def add_arguments(parser) -> None:
    add_overrides(parser, "experiment=species/apes4_cpu net.pretrained=logs/hg_small_cpu/runs/<run>/export")


def run(args) -> int:
    return train_command(args, ["experiment=species/apes4_cpu"], CLASSIFICATION_TASK, "finetune")
