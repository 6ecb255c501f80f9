"""Structured configs (dataclass schemas in Hydra's ConfigStore) that type the run keys of ``train.yaml``,
``paths``, ``trainer`` and ``task.scheduler``: ``train_schema``, ``schema/trainer``, ``schema/scheduler``, named
in those configs' defaults lists."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Union

from omegaconf import MISSING


@dataclass
class PathsSchema:
    """``paths``: where data is read and runs are written."""

    root_dir: str = MISSING
    data_dir: str = MISSING
    log_dir: str = MISSING
    output_dir: str = MISSING


@dataclass
class TrainSchema:
    """Top level of ``train.yaml``: run keys, then the groups (typed by their own schemas, if any)."""

    task_name: str = MISSING
    seed: int = MISSING
    train: bool = MISSING
    test: bool = MISSING
    ckpt_path: Optional[str] = MISSING
    export: bool = MISSING
    data: Any = None
    net: Any = None
    task: Any = None
    callbacks: Any = None
    logger: Any = None
    trainer: Any = None
    paths: PathsSchema = field(default_factory=PathsSchema)


@dataclass
class TrainerSchema:
    """``lightning.pytorch.Trainer`` arguments set in ``configs/trainer``; ``+trainer.<key>=...`` adds others."""

    _target_: str = MISSING
    default_root_dir: str = MISSING
    accelerator: str = MISSING
    strategy: Any = MISSING
    devices: Any = MISSING
    num_nodes: int = MISSING
    precision: Union[int, str] = MISSING
    sync_batchnorm: bool = MISSING
    max_epochs: Optional[int] = MISSING
    max_steps: int = MISSING
    max_time: Optional[str] = MISSING
    accumulate_grad_batches: int = MISSING
    gradient_clip_val: Optional[float] = MISSING
    val_check_interval: Optional[Union[int, float]] = MISSING
    check_val_every_n_epoch: Optional[int] = MISSING
    limit_train_batches: Optional[Union[int, float]] = MISSING
    limit_val_batches: Optional[Union[int, float]] = MISSING
    limit_test_batches: Optional[Union[int, float]] = MISSING
    overfit_batches: Union[int, float] = MISSING
    log_every_n_steps: int = MISSING
    num_sanity_val_steps: int = MISSING
    reload_dataloaders_every_n_epochs: int = MISSING
    deterministic: Optional[Union[bool, str]] = MISSING
    benchmark: Optional[bool] = MISSING
    fast_dev_run: Union[bool, int] = MISSING
    use_distributed_sampler: bool = MISSING


@dataclass
class SchedulerSchema:
    """``task.scheduler``: warmup (``warmup_steps`` when set, else ``warmup_fraction`` of the steps), floor."""

    warmup_fraction: float = MISSING
    warmup_steps: Optional[int] = MISSING
    min_lr: float = MISSING


def check_values(cfg) -> None:
    """Raise ValueError naming the field for values the schemas' types let through but no run can use:
    ``trainer.max_steps=-1`` with ``trainer.max_epochs=-1`` and no ``trainer.max_time`` (a run that never
    ends), a negative or NaN ``task.optimizer.lr``. Reads nothing but ``cfg``: called before anything is built."""
    from omegaconf import OmegaConf

    trainer = cfg.get("trainer") or {}
    if (trainer.get("max_steps") == -1 and trainer.get("max_epochs") == -1 and trainer.get("max_time") is None
            and not trainer.get("fast_dev_run")):
        raise ValueError("trainer.max_steps=-1 with trainer.max_epochs=-1 trains forever: set trainer.max_steps, "
                         "trainer.max_epochs or trainer.max_time")
    lr = OmegaConf.select(cfg, "task.optimizer.lr", default=None)
    if isinstance(lr, (int, float)) and not isinstance(lr, bool) and not lr >= 0:
        raise ValueError(f"task.optimizer.lr must be >= 0; got {lr}")


def register_schemas() -> None:
    """Put the schemas in Hydra's ConfigStore (where the configs' defaults lists find them)."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainSchema)
    store.store(group="schema", name="trainer", node=TrainerSchema)
    store.store(group="schema", name="scheduler", node=SchedulerSchema)
