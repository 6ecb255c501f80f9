"""Every experiment composes and instantiates its data, net, task and trainer (on the CPU, nothing read)."""
from __future__ import annotations

import inspect

import pytest
from omegaconf import OmegaConf

from mamba_bio_audio.pipelines.commands.hydra_compose import available
from mamba_bio_audio.pipelines.training.train import build

EXPERIMENTS = available("experiment")


def test_experiment_families_are_there():
    names = set(EXPERIMENTS)
    assert {f"dna/hg38_mamba_{s}" for s in ("250k", "700k", "1.4m", "3.5m", "7m", "19.3m", "40.7m")} <= names
    assert {f"dna/hg38_mamba_1.4m_ctx{e}" for e in (10, 12, 14, 16, 18, 20)} <= names
    assert {f"species/great_apes_mamba_7m_ctx{e}" for e in (10, 12, 14, 16, 18, 20)} <= names
    assert {"audio/sc09_mamba_small", "audio/sc09_mamba_large", "audio/youtubemix_mamba_958464"} <= names
    assert {"dna/hg_small_cpu", "dna/hg_small_ctx_cpu", "species/apes4_cpu", "audio/piano_cpu",
            "audio/digits_cpu"} <= names


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_instantiates(experiment, compose, tmp_path):
    cfg = compose(f"experiment={experiment}", f"paths.output_dir={tmp_path}", "logger=csv",
                  "trainer.accelerator=cpu", "trainer.devices=1", "trainer.precision=32-true")
    datamodule, task, trainer = build(cfg)
    assert datamodule.seq_len == cfg.data.seq_len and trainer.max_epochs == cfg.trainer.max_epochs
    built = task.net.config  # the preset, with the experiment's numbers in net.config on top
    for key, value in OmegaConf.to_container(cfg.net.config, resolve=True).items():
        if isinstance(value, dict):
            assert {k: getattr(built, key)[k] for k in value} == value, key
        elif isinstance(value, (int, float)):  # a string may be a shorthand the config expands (complement_map)
            assert getattr(built, key) == value, key


def test_size_series_parameter_counts(compose, tmp_path):
    """The size series builds the paper's models (counts derived from the paper's App. E.3.2 table)."""
    expected = {"250k": 0.263e6, "1.4m": 1.401e6, "40.7m": 40.69e6}
    for name, count in expected.items():
        cfg = compose(f"experiment=dna/hg38_mamba_{name}", f"paths.output_dir={tmp_path}", "logger=csv",
                      "trainer.accelerator=cpu", "trainer.devices=1", "trainer.precision=32-true")
        _, task, _ = build(cfg)
        assert abs(sum(p.numel() for p in task.net.parameters()) - count) / count < 0.01


def test_context_series_keeps_2_24_tokens_per_step(compose, tmp_path):
    from mamba_bio_audio.pipelines.training.callbacks.seqlen_warmup import SeqLenWarmup

    for e in (10, 16, 20):
        cfg = compose(f"experiment=dna/hg38_mamba_1.4m_ctx{e}", f"paths.output_dir={tmp_path}")
        per_step = cfg.data.seq_len * cfg.data.batch_size * cfg.trainer.devices * cfg.trainer.accumulate_grad_batches
        assert per_step == 2**24
        if e > 10:
            warmup = SeqLenWarmup(cfg.callbacks.seqlen_warmup.stages)
            shapes = [warmup.shape_at(epoch, cfg.data.seq_len, cfg.data.batch_size) for epoch in range(2 * (e - 10) + 1)]
            assert shapes[0][0] == 1024 and shapes[-1][0] == 2**e
            assert {length * batch for length, batch in shapes} == {2**20}


def test_transformer_baseline_net(compose, tmp_path):
    cfg = compose("net=transformer_dna", "net.preset=transformer_dna_250k", f"paths.output_dir={tmp_path}",
                  "logger=csv", "trainer.accelerator=cpu")
    _, task, _ = build(cfg)
    assert type(task.net).__name__ == "TransformerLMHeadModel"


def _arguments(target) -> dict[str, inspect.Parameter]:
    """The named arguments ``target`` takes, through ``**kwargs`` passed on to a base class's ``__init__``."""
    found: dict[str, inspect.Parameter] = {}
    for cls in (target.__mro__ if inspect.isclass(target) else [target]):
        init = cls.__init__ if inspect.isclass(target) else cls
        if inspect.isclass(target) and "__init__" not in vars(cls):
            continue
        params = inspect.signature(init).parameters
        found.update({n: p for n, p in params.items() if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
                      and n not in found})
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            break
    return found


def _schema_cases():
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    from mamba_bio_audio.pipelines.commands import config_schemas as s
    from mamba_bio_audio.pipelines.training import datamodules, nets
    from mamba_bio_audio.pipelines.training.callbacks import audio_samples, interrupt, progress, seqlen_warmup
    from mamba_bio_audio.pipelines.training.tasks import classification, lm, masked_lm

    exact = [(s.DnaDataSchema, datamodules.DnaDataModule), (s.SpeciesDataSchema, datamodules.SpeciesDataModule),
             (s.AudioDataSchema, datamodules.AudioDataModule), (s.NetSchema, nets.build_net),
             (s.TaskSchema, lm.CausalLMTask), (s.MaskedLMTaskSchema, masked_lm.MaskedLMTask),
             (s.ClassificationTaskSchema, classification.SequenceClassificationTask),
             (s.InterruptCheckpointSchema, interrupt.InterruptCheckpoint),
             (s.ProgressLinesSchema, progress.ProgressLines), (s.AudioSamplesSchema, audio_samples.AudioSamples),
             (s.SeqLenWarmupSchema, seqlen_warmup.SeqLenWarmup)]
    subset = [(s.ModelCheckpointSchema, ModelCheckpoint), (s.LearningRateMonitorSchema, LearningRateMonitor),
              (s.ProgressBarSchema, progress.StepProgressBar), (s.CSVLoggerSchema, CSVLogger),
              (s.TensorBoardLoggerSchema, TensorBoardLogger)]
    return [(schema, target, True) for schema, target in exact] + [(schema, target, False) for schema, target in subset]


def test_schemas_are_the_constructors_arguments():
    """Each schema's fields are its class's arguments (all of them for our classes; the ones the configs set
    for Lightning's), with the same defaults: the schema types what the class takes, nothing else."""
    from dataclasses import MISSING, fields

    for schema, target, every in _schema_cases():
        arguments = _arguments(target)
        arguments.pop("net", None)  # a task's net is built by the net group and passed in
        names = {f.name for f in fields(schema) if not f.name.startswith("_")}
        assert names == set(arguments) if every else names <= set(arguments), (schema.__name__, names ^ set(arguments))
        for f in fields(schema):
            if f.name in arguments and f.default is not MISSING and f.default != "???":
                assert f.default == arguments[f.name].default, (schema.__name__, f.name)


def test_every_option_of_a_typed_group_is_typed(compose, tmp_path):
    from dataclasses import is_dataclass

    from omegaconf import OmegaConf

    for group in ("data", "net", "task"):
        for option in available(group):
            labels = ["data=species5"] if "classif" in option else []  # num_classes comes from the data
            cfg = compose(f"{group}={option}", *labels, f"paths.output_dir={tmp_path}")
            assert is_dataclass(OmegaConf.get_type(cfg[group])), f"{group}/{option}"
