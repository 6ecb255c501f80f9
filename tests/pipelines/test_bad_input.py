"""Command-line mistakes end in one-line errors that say what to do."""
from __future__ import annotations

from mamba_bio_audio.pipelines.cli import main


def _run(capsys, *argv) -> tuple[int, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.err.strip()


def test_unknown_experiment_lists_the_available_ones(capsys):
    code, err = _run(capsys, "pretrain", "experiment=dna/nope")
    assert code == 2 and len(err.splitlines()) == 1
    assert "unknown experiment 'dna/nope'" in err and "dna/hg38_mamba_1.4m" in err and "audio/sc09_mamba_small" in err


def test_missing_dataset_names_the_command_that_makes_it(capsys, tmp_path):
    code, err = _run(capsys, "pretrain", "experiment=dna/hg_small_cpu", f"paths.data_dir={tmp_path}",
                     f"paths.output_dir={tmp_path / 'run'}", "logger=csv")
    assert code == 2 and "mamba-bio-audio examples dna --only hg_small" in err
    code, err = _run(capsys, "finetune", f"paths.data_dir={tmp_path}", f"paths.output_dir={tmp_path / 'run'}")
    assert code == 2 and "mamba-bio-audio examples dna --only species5" in err  # finetune defaults to species5_cpu
    code, err = _run(capsys, "pretrain", "experiment=audio/piano_cpu", f"paths.data_dir={tmp_path}",
                     f"paths.output_dir={tmp_path / 'run'}")
    assert code == 2 and "mamba-bio-audio examples audio --only piano" in err


def test_wrong_override_type_is_one_line(capsys):
    code, err = _run(capsys, "pretrain", "trainer.max_epochs=ten")
    assert code == 2 and len(err.splitlines()) == 1
    assert "trainer.max_epochs takes an integer" in err and "'ten'" in err
    code, err = _run(capsys, "pretrain", "task.optimizer.lr=fast")
    assert code == 2 and "takes a number" in err


def test_finetune_refuses_an_lm_experiment(capsys):
    code, err = _run(capsys, "finetune", "experiment=dna/hg_small_cpu")
    assert code == 2 and "net.head_type is causal_lm: run it with `mamba-bio-audio pretrain`" in err


def test_evaluate_needs_a_checkpoint(capsys):
    code, err = _run(capsys, "evaluate", "experiment=dna/hg_small_cpu")
    assert code == 2 and "ckpt_path=" in err


def test_list_and_cfg(capsys):
    assert main(["pretrain", "--list"]) == 0
    assert "species/apes4_cpu" in capsys.readouterr().out
    assert main(["pretrain", "experiment=dna/hg38_mamba_1.4m_ctx20", "--cfg"]) == 0
    out = capsys.readouterr().out
    assert "seq_len: 1048576" in out and "accumulate_grad_batches: 2" in out
