"""``pretrain`` / ``finetune`` / ``evaluate``: compose ``configs/train.yaml`` with Hydra overrides and run it."""
from __future__ import annotations

import argparse

from omegaconf import OmegaConf

LM_TASK = "mamba_bio_audio.pipelines.training.tasks.lm.CausalLMTask"
MASKED_LM_TASK = "mamba_bio_audio.pipelines.training.tasks.masked_lm.MaskedLMTask"  # pretrains too (Caduceus)
CLASSIFICATION_TASK = "mamba_bio_audio.pipelines.training.tasks.classification.SequenceClassificationTask"


def add_overrides(parser: argparse.ArgumentParser, example: str) -> None:
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help=f"Hydra overrides, e.g. {example}; groups: experiment, data, net, task, trainer, "
                             "callbacks, logger, debug (see docs/pipelines.md)")
    parser.add_argument("--cfg", action="store_true", help="print the composed config and exit")
    parser.add_argument("--list", action="store_true", help="list the experiments and exit")


def compose_checked(args, defaults: list[str], task_target: str | None, command: str):
    """The composed config, after ``defaults`` (applied first, so the user's overrides win), its run folder
    claimed when the clock names it (see ``hydra_compose.compose``); None when ``--cfg`` or ``--list`` printed
    something instead (nothing is created then)."""
    from mamba_bio_audio.pipelines.commands.hydra_compose import available, compose

    if args.list:
        print("\n".join(available("experiment")))
        return None
    user_keys = {o.split("=", 1)[0].lstrip("+~") for o in args.overrides}
    overrides = [d for d in defaults if d.split("=", 1)[0] not in user_keys] + list(args.overrides)
    cfg = compose("train", overrides)
    allowed = {LM_TASK, MASKED_LM_TASK} if task_target == LM_TASK else {task_target}
    if task_target is not None and cfg.task._target_ not in allowed:
        kind = "a causal LM" if task_target == LM_TASK else "a sequence classifier"
        raise ValueError(f"{command} trains {kind}; this config's task is {cfg.task._target_.rsplit('.', 1)[-1]} "
                         f"(pick an experiment under {'dna/ or audio/' if task_target == LM_TASK else 'species/'})")
    if args.cfg:
        print(OmegaConf.to_yaml(cfg))
        return None
    # composed again to run: a run folder named by the clock is created now, under a name no other run holds
    return compose("train", overrides, claim_run_dir=True)


def report(result) -> None:
    for key in sorted(result.metrics):
        print(f"{key:>24s}  {result.metrics[key]:.4f}")
    for label, path in (("best checkpoint", result.best_checkpoint), ("last checkpoint", result.last_checkpoint),
                        ("exported model", result.export_dir), ("run folder", result.output_dir)):
        if path:
            print(f"{label}: {path}")


def train_command(args, defaults: list[str], task_target: str | None, command: str) -> int:
    from mamba_bio_audio.pipelines.commands.output_folders import check_run_folder
    from mamba_bio_audio.pipelines.training.callbacks.interrupt import Preempted
    from mamba_bio_audio.pipelines.training.train import TrainingStopped, run

    cfg = compose_checked(args, defaults, task_target, command)
    if cfg is None:
        return 0
    check_run_folder(cfg)  # paths.output_dir: new, empty or a run folder, else refused before anything starts
    try:
        result = run(cfg)
    except TrainingStopped as err:
        print(f"mamba-bio-audio {command}: {err}")
        return 3
    except Preempted as err:  # the callback printed the ckpt_path to resume with
        return err.code  # 128 + the signal number: 143 SIGTERM, 130 SIGINT, 138 SIGUSR1
    report(result)
    return 0
