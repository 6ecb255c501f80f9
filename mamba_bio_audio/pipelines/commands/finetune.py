"""``mamba-bio-audio finetune [KEY=VALUE ...]``: sequence classification from a pretrained LM (an experiment
whose net's ``head_type`` is ``classification``; default ``species/species5_cpu``)."""
from __future__ import annotations

from mamba_bio_audio.pipelines.commands.training_command import add_overrides, train_command


def add_arguments(parser) -> None:
    add_overrides(parser, "experiment=species/species5_cpu net.pretrained=logs/hg_small_cpu/runs/<run>/export")


def run(args) -> int:
    return train_command(args, ["experiment=species/species5_cpu"], "finetune")
