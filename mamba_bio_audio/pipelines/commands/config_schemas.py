"""Structured configs (dataclass schemas in Hydra's ConfigStore) for every group of the training tree, so that
Hydra itself rejects an override of the wrong type or an unknown key, at the one compose.

Each config names its schema first in its defaults list (``- /schema/data/dna@_here_``): the top levels
(``train_schema``, ``sample_schema``), ``paths``, ``data`` (one schema per DataModule), ``net``, ``task`` (one
per task, with the optimizer and scheduler), ``trainer``, and each entry of ``callbacks`` and ``logger``
(``callbacks`` and ``logger`` themselves stay open: ``+callbacks.name={_target_: ...}`` adds a Lightning
callback). ``debug`` and ``experiment`` are ``_global_`` packages: what they set lands in the groups above and
is typed there. ``net.config`` holds the model config's fields, typed when the model config is built
(``mamba_bio_audio.config``). The schemas' fields are the constructors' arguments
(``tests/pipelines/test_configs.py`` checks them against the signatures)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Union

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
    """Top level of ``train.yaml``: run keys, then the groups (typed by their own schemas)."""

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
    compare: Any = None  # the settings of a `mamba-bio-audio compare` experiment (configs/experiment/compare/)


# --- data: the DataModules of pipelines/training/datamodules.py


@dataclass
class DataSchema:
    """``PreparedDataModule``'s arguments."""

    _target_: str = MISSING
    path: str = MISSING
    prepare_hint: str = MISSING
    seq_len: int = MISSING
    batch_size: int = MISSING
    eval_batch_size: Optional[int] = None
    eval_items: Optional[int] = None
    num_workers: int = 0
    seed: int = 0


@dataclass
class DnaDataSchema(DataSchema):
    """``DnaDataModule``: windows of a prepared DNA dataset for language modelling."""

    scheme: str = "mamba"
    train_windows: Optional[int] = None
    rc_prob: float = 0.0
    max_n_fraction: float = 1.0
    ignore_n_targets: bool = False


@dataclass
class SpeciesDataSchema(DataSchema):
    """``SpeciesDataModule``: labelled windows of a species dataset."""

    num_classes: int = MISSING
    train_items: int = 1024
    rc_prob: float = 0.0
    max_n_fraction: float = 1.0


@dataclass
class AudioDataSchema(DataSchema):
    """``AudioDataModule``: mu-law windows (``mode: long``) or clips (``mode: clips``)."""

    mode: str = "long"
    scheme: str = "uniform"
    train_windows: Optional[int] = None
    sample_rate: int = 16000


@dataclass
class SyntheticDataSchema:
    """``SyntheticDataModule``'s arguments: the synthetic tasks drawn on demand (pipelines/training/synthetic_data.py)."""

    _target_: str = MISSING
    seq_len: int = MISSING
    batch_size: int = MISSING
    eval_batch_size: Optional[int] = None
    train_items: int = 8192
    eval_items: int = 256
    num_workers: int = 0
    seed: int = 0


@dataclass
class SelectiveCopyingDataSchema(SyntheticDataSchema):
    """``SelectiveCopyingDataModule``: the tokens to copy among noise (pipelines/training/synthetic_data.py)."""

    n_tokens: int = 16


@dataclass
class MqarDataSchema(SyntheticDataSchema):
    """``MqarDataModule``: multi-query associative recall (pipelines/training/synthetic_mqar.py)."""

    vocab_size: int = 8192
    num_pairs: int = 4
    power_a: float = 0.01
    random_non_queries: bool = False


# --- net: pipelines/training/nets.py build_net


@dataclass
class NetSchema:
    """``build_net``'s arguments: ``architecture`` and ``head_type`` (the registry's names; the head type says
    what the experiment trains, and so which command runs it: ``pretrain`` ``causal_lm`` or ``masked_lm``,
    ``finetune`` ``classification``), a ``preset`` of
    ``configs/model``, ``config`` fields replacing the preset's, ``pretrained``
    (an export folder or a ``.ckpt``)."""

    _target_: str = MISSING
    architecture: str = MISSING
    head_type: str = MISSING
    preset: Optional[str] = None
    config: Dict[str, Any] = field(default_factory=dict)
    pretrained: Optional[str] = None


# --- task: pipelines/training/tasks


@dataclass
class OptimizerSchema:
    """``task.optimizer``: an optimizer class with its settings bound (``_partial_``); the task calls it with
    its parameter groups and passes ``weight_decay`` to the weight matrices only."""

    _target_: str = MISSING
    _partial_: bool = True
    lr: float = MISSING
    betas: List[float] = MISSING
    weight_decay: float = 0.0
    eps: float = MISSING


@dataclass
class SchedulerSchema:
    """``task.scheduler``: warmup (``warmup_steps`` when set, else ``warmup_fraction`` of the steps), floor."""

    warmup_fraction: float = MISSING
    warmup_steps: Optional[int] = MISSING
    min_lr: float = MISSING


@dataclass
class TaskSchema:
    """A LightningModule of ``pipelines/training/tasks`` (``CausalLMTask``)."""

    _target_: str = MISSING
    optimizer: OptimizerSchema = field(default_factory=OptimizerSchema)
    scheduler: SchedulerSchema = field(default_factory=SchedulerSchema)


@dataclass
class MaskedLMTaskSchema(TaskSchema):
    """``MaskedLMTask``: BERT masking of the bases."""

    mask_probability: float = 0.15
    mask_fraction: float = 0.8
    random_fraction: float = 0.1
    random_ids: Optional[List[int]] = None
    maskable_ids: Optional[List[int]] = None
    seed: int = 0


@dataclass
class ClassificationTaskSchema(TaskSchema):
    """``SequenceClassificationTask``: ``head_init`` random or linear_probe (fit the head first)."""

    num_classes: int = MISSING
    head_init: str = "random"
    probe_items: int = 512
    probe_l2: float = 1.0e-3


# --- trainer


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


# --- callbacks and loggers: one schema per entry of configs/callbacks and configs/logger


@dataclass
class TargetSchema:
    """An entry built from ``_target_`` alone."""

    _target_: str = MISSING


@dataclass
class ModelCheckpointSchema(TargetSchema):
    """``callbacks.model_checkpoint``: Lightning's ``ModelCheckpoint`` arguments the configs set."""

    dirpath: str = MISSING
    filename: str = MISSING
    monitor: Optional[str] = MISSING
    mode: str = MISSING
    save_top_k: int = MISSING
    save_last: Optional[bool] = MISSING
    auto_insert_metric_name: bool = MISSING
    every_n_train_steps: Optional[int] = MISSING


@dataclass
class InterruptCheckpointSchema(TargetSchema):
    dirpath: str = MISSING
    filename: str = "last"


@dataclass
class LearningRateMonitorSchema(TargetSchema):
    logging_interval: Optional[str] = MISSING


@dataclass
class ProgressBarSchema(TargetSchema):
    terminal_only: bool = True


@dataclass
class ProgressLinesSchema(TargetSchema):
    every_s: float = 30.0
    when: str = "no_tty"


@dataclass
class AudioSamplesSchema(TargetSchema):
    every_n_validations: int = 1
    n: int = 1
    seconds: float = 1.0
    sample_rate: int = 16000
    seed: int = 0


@dataclass
class WarmupStageSchema:
    seq_len: int = MISSING
    epochs: int = MISSING


@dataclass
class SeqLenWarmupSchema(TargetSchema):
    """``callbacks.seqlen_warmup`` (the context-series experiments): training length per stage of epochs."""

    stages: List[WarmupStageSchema] = MISSING
    tokens_per_batch: Optional[int] = None


@dataclass
class CSVLoggerSchema(TargetSchema):
    save_dir: str = MISSING
    name: str = MISSING
    version: str = MISSING


@dataclass
class TensorBoardLoggerSchema(CSVLoggerSchema):
    default_hp_metric: bool = MISSING


@dataclass
class SampleSchema:
    """``sample.yaml``: what ``mamba-bio-audio sample`` draws (see that file for the meaning of each key)."""

    checkpoint: str = MISSING
    out: str = MISSING
    n: int = MISSING
    seconds: float = MISSING
    sample_rate: int = MISSING
    length: int = MISSING
    prefix: Optional[str] = MISSING
    prefix_seconds: float = MISSING
    temperature: float = MISSING
    top_k: int = MISSING
    top_p: float = MISSING
    batch_size: Optional[int] = MISSING
    seed: int = MISSING


SCHEMAS = {  # (ConfigStore group, name) -> schema
    (None, "train_schema"): TrainSchema,
    (None, "sample_schema"): SampleSchema,
    ("schema", "paths"): PathsSchema,
    ("schema", "trainer"): TrainerSchema,
    ("schema", "net"): NetSchema,
    ("schema/data", "dna"): DnaDataSchema,
    ("schema/data", "species"): SpeciesDataSchema,
    ("schema/data", "audio"): AudioDataSchema,
    ("schema/data", "synthetic_mqar"): MqarDataSchema,
    ("schema/data", "synthetic_induction_heads"): SyntheticDataSchema,
    ("schema/data", "synthetic_selective_copying"): SelectiveCopyingDataSchema,
    ("schema/task", "causal_lm"): TaskSchema,
    ("schema/task", "masked_lm"): MaskedLMTaskSchema,
    ("schema/task", "classification"): ClassificationTaskSchema,
    ("schema/callback", "target"): TargetSchema,
    ("schema/callback", "model_checkpoint"): ModelCheckpointSchema,
    ("schema/callback", "interrupt_checkpoint"): InterruptCheckpointSchema,
    ("schema/callback", "lr_monitor"): LearningRateMonitorSchema,
    ("schema/callback", "progress_bar"): ProgressBarSchema,
    ("schema/callback", "progress_lines"): ProgressLinesSchema,
    ("schema/callback", "audio_samples"): AudioSamplesSchema,
    ("schema/callback", "seqlen_warmup"): SeqLenWarmupSchema,
    ("schema/logger", "csv"): CSVLoggerSchema,
    ("schema/logger", "tensorboard"): TensorBoardLoggerSchema,
}


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
    for (group, name), node in SCHEMAS.items():
        store.store(group=group, name=name, node=node)
