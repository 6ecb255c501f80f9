"""Config values no run can use are one-line errors naming the field, before any data is read (the data
folder here holds no dataset: a later check would complain about that instead)."""
from __future__ import annotations

import pytest

from mamba_bio_audio.pipelines.cli import main


@pytest.mark.parametrize(("override", "message"), [
    (["data.eval_batch_size=0"], "data.eval_batch_size must be > 0, or null for data.batch_size; got 0"),
    (["trainer.max_steps=-1", "trainer.max_epochs=-1"],
     "trainer.max_steps=-1 with trainer.max_epochs=-1 trains forever"),
    (["task.optimizer.lr=-0.001"], "task.optimizer.lr must be >= 0; got -0.001"),
], ids=["eval_batch_size_0", "endless", "negative_lr"])
def test_unusable_values_are_named_before_data_is_read(capsys, tmp_path, override, message):
    code = main(["pretrain", "experiment=dna/hg_small_cpu", f"paths.data_dir={tmp_path}",
                 f"paths.output_dir={tmp_path / 'run'}", "logger=csv", *override])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_endless_is_fine_with_a_time_limit():
    from omegaconf import OmegaConf

    from mamba_bio_audio.pipelines.commands.config_schemas import check_values

    endless = {"trainer": {"max_steps": -1, "max_epochs": -1}, "task": {"optimizer": {"lr": 0.0}}}
    with pytest.raises(ValueError, match="trains forever"):
        check_values(OmegaConf.create(endless))
    endless["trainer"]["max_time"] = "00:01:00:00"
    check_values(OmegaConf.create(endless))  # the same run, bounded by time: accepted
