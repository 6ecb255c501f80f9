"""Two runs never share a run folder by accident: a run folder named by the clock (the default
``logs/<task>/runs/<date>_<time>``) is created by the run that claims it with an exclusive mkdir, and a run
started in the same second takes ``<name>-1``; ``--cfg`` creates nothing; a folder the user names is used as
before (a resume continues in it); a DDP worker, which Lightning starts with its parent's command line,
takes its parent's folder."""
from __future__ import annotations

import datetime as dt
import sys
from argparse import Namespace

import hydra.core.utils
import pytest

from mamba_bio_audio.pipelines import cli
from mamba_bio_audio.pipelines.commands.training_command import compose_checked
from mamba_bio_audio.pipelines.training.train import run_settings

NOON = dt.datetime(2026, 1, 2, 12, 0, 0)


class FrozenClock(dt.datetime):
    @classmethod
    def now(cls, tz=None):
        return NOON


@pytest.fixture
def frozen_clock(monkeypatch):
    """Every ``${now:...}`` reads 2026-01-02 12:00:00 (Hydra's resolver reads hydra.core.utils.datetime)."""
    monkeypatch.setattr(hydra.core.utils, "datetime", FrozenClock)


def _pretrain(*overrides: str, cfg: bool = False):
    """The config ``pretrain`` runs (None with --cfg), through the command's own compose and checks."""
    return compose_checked(Namespace(overrides=list(overrides), cfg=cfg, list=False), [], ("causal_lm", "masked_lm"),
                           "pretrain")


def test_two_runs_started_in_the_same_second_get_two_folders(tmp_path, frozen_clock):
    logs = tmp_path / "logs"
    first = _pretrain(f"paths.log_dir={logs}")
    second = _pretrain(f"paths.log_dir={logs}")
    runs = logs / "pretrain" / "runs"
    assert first.paths.output_dir == str(runs / "2026-01-02_12-00-00")
    assert second.paths.output_dir == str(runs / "2026-01-02_12-00-00-1")
    assert sorted(p.name for p in runs.iterdir()) == ["2026-01-02_12-00-00", "2026-01-02_12-00-00-1"]
    # everything the second run writes follows its own folder
    assert second.callbacks.model_checkpoint.dirpath == f"{second.paths.output_dir}/checkpoints"
    assert second.trainer.default_root_dir == second.logger.csv.save_dir == second.paths.output_dir
    assert _pretrain(f"paths.log_dir={logs}").paths.output_dir == str(runs / "2026-01-02_12-00-00-2")


def test_cfg_creates_no_folder(tmp_path, frozen_clock, capsys):
    assert cli.main(["pretrain", "--cfg", f"paths.log_dir={tmp_path / 'logs'}"]) == 0
    assert "output_dir:" in capsys.readouterr().out
    assert not (tmp_path / "logs").exists()


def test_a_refused_config_creates_no_folder(tmp_path, frozen_clock, capsys):
    # finetune trains a classifier: a causal LM experiment is refused after composing, before any folder
    assert cli.main(["finetune", "experiment=dna/hg_small_cpu", f"paths.log_dir={tmp_path / 'logs'}"]) == 2
    assert ("finetune trains a net whose head_type is classification; this config's net.head_type is causal_lm: "
            "run it with `mamba-bio-audio pretrain`") in capsys.readouterr().err
    assert not (tmp_path / "logs").exists()


def test_a_folder_the_user_names_is_used_as_named(tmp_path, frozen_clock):
    mine = tmp_path / "mine"
    (mine / "checkpoints").mkdir(parents=True)  # an earlier run's folder, resumed in place
    cfg = _pretrain(f"paths.output_dir={mine}", f"ckpt_path={mine / 'checkpoints' / 'last.ckpt'}")
    assert cfg.paths.output_dir == str(mine)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_a_ddp_worker_takes_its_parents_folder(tmp_path, frozen_clock, monkeypatch):
    """Lightning starts each DDP worker with ``sys.argv`` again; during the run that ends with the run folder."""
    command = ["pretrain", f"paths.log_dir={tmp_path / 'logs'}"]
    monkeypatch.setattr(sys, "argv", ["mamba-bio-audio", *command])
    parent = _pretrain(*command[1:])
    with run_settings(parent.paths.output_dir):
        worker_argv = list(sys.argv)
    assert sys.argv == ["mamba-bio-audio", *command]  # restored after the run
    worker = _pretrain(*worker_argv[2:])
    assert worker.paths.output_dir == parent.paths.output_dir
    assert len(list((tmp_path / "logs" / "pretrain" / "runs").iterdir())) == 1


@pytest.mark.parametrize("name", ["with space", "it's", "a,b=c", "trailing\\", "12"])
def test_any_run_folder_name_reaches_the_workers(tmp_path, name):
    folder = str(tmp_path / name)
    with run_settings(folder):
        worker = _pretrain(sys.argv[-1])
    assert worker.paths.output_dir == folder


def test_a_run_changes_the_process_only_while_it_runs(tmp_path, monkeypatch):
    """Lightning's log propagation, the warning filters and the command line are the run's, restored after."""
    import logging
    import warnings

    from mamba_bio_audio.pipelines.training.train import IGNORED_WARNINGS

    monkeypatch.setattr(sys, "argv", ["mamba-bio-audio", "pretrain"])
    lightning_logger = logging.getLogger("lightning.pytorch")
    before = (lightning_logger.propagate, list(warnings.filters))
    with run_settings(str(tmp_path)):
        assert lightning_logger.propagate is False
        assert any(f[0] == "ignore" and f[1] is not None and f[1].pattern == IGNORED_WARNINGS[0]
                   for f in warnings.filters)
        assert sys.argv == ["mamba-bio-audio", "pretrain", f"paths.output_dir='{tmp_path}'"]
    assert (lightning_logger.propagate, list(warnings.filters)) == before
    assert sys.argv == ["mamba-bio-audio", "pretrain"]
