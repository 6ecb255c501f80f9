"""Run a composed training config: instantiate data, net, task, callbacks, loggers and trainer; fit, test,
export the best model. Shared by ``pretrain``, ``finetune``, ``evaluate`` and ``quickstart``."""
from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from mamba_bio_audio.atomic import write_text_atomic
from mamba_bio_audio.torch_files import load_torch_file


class TrainingStopped(RuntimeError):
    """A run stopped on a non-finite loss; the message names the last good checkpoint."""


@dataclass
class RunResult:
    """What a run leaves: its folder, the best / last checkpoint, the exported model folder, the final metrics
    (floats: ``val/loss``, ``test/acc``, ...), and for classifiers the test confusion matrix and class names."""

    output_dir: Path
    best_checkpoint: Path | None = None
    last_checkpoint: Path | None = None
    export_dir: Path | None = None
    metrics: dict = field(default_factory=dict)
    confusion: list | None = None
    class_names: list | None = None


def _precision(cfg: DictConfig) -> str:
    precision = cfg.trainer.get("precision", "auto")
    if precision != "auto":
        return precision
    wants_gpu = cfg.trainer.get("accelerator", "auto") in ("auto", "gpu", "cuda")
    return "bf16-mixed" if wants_gpu and torch.cuda.is_available() else "32-true"


# Warnings of the supported library versions about their own internals, which say nothing about a run
IGNORED_WARNINGS = (
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",  # Lightning 2.6 calling torch >= 2.10's pytree
)


@contextlib.contextmanager
def run_settings(output_dir: str):
    """What a run changes in the process, for its duration only, restored after: Lightning's logger stops
    propagating (it has its own handler: no doubled lines), :data:`IGNORED_WARNINGS` are ignored, and the
    command line ``sys.argv`` ends with ``paths.output_dir=<output_dir>``: DDP worker processes, which Lightning
    starts by running this process's command line again (as it does for ``@hydra.main`` scripts, with
    ``hydra.run.dir``), compose the same config in the same run folder."""
    lightning_logger = logging.getLogger("lightning.pytorch")
    propagate, argv = lightning_logger.propagate, list(sys.argv)
    with warnings.catch_warnings():
        for message in IGNORED_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        lightning_logger.propagate = False
        sys.argv.append(run_dir_override(output_dir))
        try:
            yield
        finally:
            lightning_logger.propagate = propagate
            sys.argv[:] = argv


def run_dir_override(output_dir: str) -> str:
    """The Hydra override ``paths.output_dir='<output_dir>'``, quoted so that any path reads back as itself
    (Hydra's rule: escape a quote, and the backslashes before a quote or at the end)."""
    quoted = re.sub(r"(\\*)'", lambda m: m[1] * 2 + "\\'", str(output_dir))
    quoted = re.sub(r"(\\+)$", lambda m: m[1] * 2, quoted)
    return f"paths.output_dir='{quoted}'"


def _instantiate_all(section: DictConfig | None) -> list:
    from hydra.utils import instantiate

    return [instantiate(item) for item in (section or {}).values() if item is not None and "_target_" in item]


def build(cfg: DictConfig):
    """(datamodule, task, trainer) of a composed ``train`` config; nothing is read or trained yet."""
    import lightning.pytorch as pl
    from hydra.utils import instantiate

    from hydra.errors import InstantiationException

    from mamba_bio_audio.pipelines.commands.config_schemas import check_values
    from mamba_bio_audio.pipelines.training.checkpoint_io import SafeCheckpointIO

    check_values(cfg)  # values no run can use, named before anything is built or read
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    try:
        datamodule = instantiate(cfg.data, _convert_="all")
        net = instantiate(cfg.net, _convert_="all")
        task = instantiate(cfg.task, net=net, _convert_="all")
        trainer_cfg = OmegaConf.to_container(cfg.trainer, resolve=True)
        trainer_cfg["precision"] = _precision(cfg)
        # every checkpoint read (resume, test, best) goes through weights_only=True, a refusal naming the file
        plugins = [*(trainer_cfg.pop("plugins", None) or []), SafeCheckpointIO()]
        trainer = instantiate(trainer_cfg, callbacks=_instantiate_all(cfg.get("callbacks")),
                              logger=_instantiate_all(cfg.get("logger")) or False, plugins=plugins,
                              _convert_="all")
    except InstantiationException as err:
        cause = err.__cause__ or err
        if isinstance(cause, FileNotFoundError):
            raise cause from None
        raise ValueError(" ".join(str(cause).split())) from None
    return datamodule, task, trainer


def _checkpoint_callback(trainer):
    from lightning.pytorch.callbacks import ModelCheckpoint

    return next((c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)), None)


def _floats(metrics: dict) -> dict:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float, torch.Tensor)) and
            (not isinstance(v, torch.Tensor) or v.numel() == 1)}


def run(cfg: DictConfig) -> RunResult:
    """Fit (``cfg.train``, resuming from ``cfg.ckpt_path``), test (``cfg.test``, on the best checkpoint when
    there is one) and export (``cfg.export``). Raises FileNotFoundError for a missing dataset (naming the
    command that makes it) and TrainingStopped on a non-finite loss."""
    with run_settings(cfg.paths.output_dir):
        return _run(cfg)


def _run(cfg: DictConfig) -> RunResult:
    from mamba_bio_audio.pipelines.training.tasks.base import NonFiniteLossError

    datamodule, task, trainer = build(cfg)
    datamodule.check(vocab_size=getattr(task.net.config, "vocab_size", None))  # before any step: the data fits the net
    output_dir = Path(cfg.paths.output_dir)
    result = RunResult(output_dir=output_dir)
    checkpoint = _checkpoint_callback(trainer)
    if cfg.train:
        try:
            trainer.fit(task, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"), weights_only=True)
        except NonFiniteLossError as err:
            last = checkpoint.last_model_path if checkpoint else ""
            hint = f"last good checkpoint: {last}" if last else "no checkpoint was written before it"
            raise TrainingStopped(f"{err}; training stopped, {hint}") from None
        result.metrics.update(_floats(trainer.callback_metrics))
    best = checkpoint.best_model_path if checkpoint and not trainer.fast_dev_run else ""
    result.best_checkpoint = Path(best) if best else None
    if checkpoint and checkpoint.last_model_path and not trainer.fast_dev_run:
        result.last_checkpoint = Path(checkpoint.last_model_path)
    if cfg.test:
        test_ckpt = best or (None if cfg.train else cfg.get("ckpt_path"))
        result.metrics.update(_floats(trainer.test(task, datamodule=datamodule, ckpt_path=test_ckpt,
                                                   weights_only=True)[0]))
        if getattr(task, "confusion", None) is not None:
            result.confusion = task.confusion.tolist()
            result.class_names = datamodule.class_names
    if cfg.get("export") and trainer.is_global_zero and not trainer.fast_dev_run:
        if best and not cfg.test:  # trainer.test(ckpt_path=best) above already loaded the best weights into task
            task.load_state_dict(load_torch_file(best)["state_dict"])
        result.export_dir = task.net.save_pretrained(output_dir / "export")
    if trainer.is_global_zero and not trainer.fast_dev_run:
        output_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(output_dir / "metrics.json", json.dumps(result.metrics, indent=2, sort_keys=True) + "\n")
        write_text_atomic(output_dir / "config.yaml", OmegaConf.to_yaml(cfg))
    return result
