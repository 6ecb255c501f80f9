"""``mamba-bio-audio evaluate ckpt_path=<.ckpt> [KEY=VALUE ...]`` (or ``net.pretrained=<export folder>``):
the test metrics of a trained model on the experiment's data, without training."""
from __future__ import annotations

from mamba_bio_audio.pipelines.commands.training_command import add_overrides, train_command


def add_arguments(parser) -> None:
    add_overrides(parser, "experiment=dna/hg_small_cpu ckpt_path=logs/hg_small_cpu/runs/<run>/checkpoints/last.ckpt")


def run(args) -> int:
    given = {o.split("=", 1)[0] for o in args.overrides}
    if not (args.cfg or args.list) and not given & {"ckpt_path", "net.pretrained"}:
        raise ValueError("evaluate needs ckpt_path=<Lightning .ckpt> or net.pretrained=<exported model folder>")
    return train_command(args, ["train=false", "test=true", "export=false", "task_name=evaluate"], "evaluate")
