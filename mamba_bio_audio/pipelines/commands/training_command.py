"""``pretrain`` / ``finetune`` / ``evaluate``: compose ``configs/train.yaml`` with Hydra overrides and run it."""
from __future__ import annotations

import argparse
from collections.abc import Callable

from omegaconf import DictConfig, OmegaConf

# net.head_type values each training command runs: what an experiment trains is the head of its net
# (configs/net/*.yaml, set by the experiment)
COMMAND_HEADS = {"pretrain": ("causal_lm", "masked_lm"), "finetune": ("classification",)}


def add_overrides(parser: argparse.ArgumentParser, example: str) -> None:
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help=f"Hydra overrides, e.g. {example}; groups: experiment, data, net, task, trainer, "
                             "callbacks, logger, debug (see docs/pipelines.md)")
    parser.add_argument("--cfg", action="store_true", help="print the composed config and exit")
    parser.add_argument("--list", action="store_true", help="list the experiments and exit")


def head_check(heads: tuple[str, ...] | None, command: str) -> Callable[[DictConfig], None] | None:
    """A check that the composed config's ``net.head_type`` is one of ``heads``; None (anything runs) when
    ``heads`` is None."""
    if heads is None:
        return None

    def check(cfg: DictConfig) -> None:
        head = OmegaConf.select(cfg, "net.head_type", default=None)
        if head not in heads:
            others = [name for name, wanted in COMMAND_HEADS.items() if head in wanted]
            hint = f": run it with `mamba-bio-audio {others[0]}`" if others else ""
            raise ValueError(f"{command} trains a net whose head_type is {' or '.join(heads)}; this config's "
                             f"net.head_type is {head}{hint}")

    return check


def compose_checked(args, defaults: list[str], heads: tuple[str, ...] | None, command: str):
    """The composed config, after ``defaults`` (applied first, so the user's overrides win), its
    ``net.head_type`` one of ``heads`` (any when None), its run folder claimed when the clock names it (see
    ``hydra_compose.compose``); None when ``--cfg`` or ``--list`` printed something instead (nothing is
    created then)."""
    from mamba_bio_audio.pipelines.commands.hydra_compose import available, compose

    if args.list:
        print("\n".join(available("experiment")))
        return None
    user_keys = {o.split("=", 1)[0].lstrip("+~") for o in args.overrides}
    overrides = [d for d in defaults if d.split("=", 1)[0] not in user_keys] + list(args.overrides)
    cfg = compose("train", overrides, claim_run_dir=not args.cfg, check=head_check(heads, command))
    if args.cfg:
        print(OmegaConf.to_yaml(cfg))
        return None
    return cfg


def report(result) -> None:
    for key in sorted(result.metrics):
        print(f"{key:>24s}  {result.metrics[key]:.4f}")
    for label, path in (("best checkpoint", result.best_checkpoint), ("last checkpoint", result.last_checkpoint),
                        ("exported model", result.export_dir), ("run folder", result.output_dir)):
        if path:
            print(f"{label}: {path}")


def train_command(args, defaults: list[str], command: str) -> int:
    """Compose, check and run ``command`` (``pretrain``, ``finetune``: the head types of :data:`COMMAND_HEADS`;
    ``evaluate``: any); the exit status."""
    from mamba_bio_audio.pipelines.commands.output_folders import check_run_folder
    from mamba_bio_audio.pipelines.training.callbacks.interrupt import Preempted
    from mamba_bio_audio.pipelines.training.train import TrainingStopped, run

    cfg = compose_checked(args, defaults, COMMAND_HEADS.get(command), command)
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
