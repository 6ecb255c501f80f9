"""Overrides are type-checked when the config is composed: keys with a schema by the schema (nullable keys
included), the others by the type of the value they replace; each mistake is one line naming key and type."""
from __future__ import annotations

import pytest

from mamba_bio_audio.pipelines.commands.hydra_compose import available


@pytest.mark.parametrize("override, expected", [
    ("trainer.max_steps=abc", "override trainer.max_steps=abc: trainer.max_steps takes an integer (default -1); got 'abc'"),
    ("trainer.max_steps=2.5", "trainer.max_steps takes an integer (default -1); got 2.5"),
    ("trainer.limit_val_batches=abc", "trainer.limit_val_batches takes a number or null; got 'abc'"),
    ("trainer.gradient_clip_val=[1]", "trainer.gradient_clip_val takes a number or null (default 1.0); got [1]"),
    ("task.scheduler.warmup_steps=1.5", "task.scheduler.warmup_steps takes an integer or null; got 1.5"),
    ("task.scheduler.min_lr=low", "task.scheduler.min_lr takes a number (default 1e-05); got 'low'"),
    ("seed=x", "override seed=x: seed takes an integer (default 0); got 'x'"),
    ("test=maybe", "test takes true or false (default True); got 'maybe'"),
    ("task.optimizer.lr=fast", "task.optimizer.lr takes a number (default 0.008); got 'fast'"),
    ("data.seq_len=long", "data.seq_len takes an integer (default 1024); got 'long'"),
])
def test_wrong_type_is_one_line_naming_key_and_type(compose, override, expected):
    with pytest.raises(ValueError) as err:
        compose(override)
    assert expected in str(err.value) and len(str(err.value).splitlines()) == 1


def test_typed_values_keep_their_meaning(compose, tmp_path):
    cfg = compose(f"paths.output_dir={tmp_path}", "trainer.limit_val_batches=3", "trainer.limit_train_batches=0.5",
                  "trainer.val_check_interval=100", "task.scheduler.min_lr=0", "task.optimizer.lr=1",
                  "trainer.max_time=00:00:05:00", "ckpt_path=last")
    assert cfg.trainer.limit_val_batches == 3 and type(cfg.trainer.limit_val_batches) is int  # batches
    assert type(cfg.trainer.limit_train_batches) is float and type(cfg.trainer.val_check_interval) is int
    assert type(cfg.task.scheduler.min_lr) is float and cfg.trainer.max_time == "00:00:05:00"
    assert cfg.ckpt_path == "last" and cfg.task.optimizer.lr == 1


@pytest.mark.parametrize("group", ["trainer", "debug"])
def test_every_trainer_and_debug_option_fits_the_schema(compose, tmp_path, group):
    for option in available(group):
        cfg = compose(f"{group}={option}", f"paths.output_dir={tmp_path}")
        assert cfg.trainer._target_ == "lightning.pytorch.Trainer", option
