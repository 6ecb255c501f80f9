"""``mamba-bio-audio bench reviewers`` through the command line, at the studies' smoke-test size: one result
file per study through the one writer (header, PNG beside it), the verdict printed as written, figures checked
against models built here; a study whose module is missing is an error naming it; a bad MQAR size is refused
by ``pretrain`` before anything runs (the command's entry point, in this process: composition only)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mamba_bio_audio.models.factory import config_from_dict, load_preset, model_class
from mamba_bio_audio.pipelines.bench.reviewers import load_study

CLI = [sys.executable, "-m", "mamba_bio_audio.pipelines.cli"]


def _n_params(preset: str) -> int:
    config = config_from_dict(load_preset(preset).to_dict())
    return sum(p.numel() for p in model_class(config)(config).parameters())


def test_quick_mqar_and_cost(tmp_path):
    run = subprocess.run([*CLI, "bench", "reviewers", "--study", "mqar", "--study", "cost", "--quick", "--threads",
                          "1", "--out-dir", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    results = {}
    for name in ("mqar", "cost"):
        (path,) = tmp_path.glob(f"reviewers_{name}_*.json")
        result = json.loads(path.read_text())
        assert result["benchmark"] == f"reviewers_{name}" and {"machine", "versions", "date"} <= result.keys()
        assert (tmp_path / result["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert result["size"] == "quick" and result["verdict"]
        assert result["machine"]["torch_threads"] == result["machine"]["numba_threads"] == 1  # --threads 1
        for line in result["verdict"]:
            assert line in run.stdout
        results[name] = result
    mqar = results["mqar"]
    d_model, states = mqar["parameters"]["d_model"], mqar["parameters"]["states"]
    assert sorted(mqar["results"]["mamba"], key=int) == [str(n) for n in states]
    for n, row in mqar["results"]["mamba"].items():
        assert row["state_per_layer"] == 2 * d_model * int(n)  # expand 2 x d_model channels x N
        assert all(0.0 <= a <= 1.0 for a in row["accuracy"].values())
    cost = results["cost"]
    points = {p["arch"]: p for p in cost["results"]["points"]}
    assert points["mamba"]["params"] == _n_params("dna_250k")
    assert points["transformer"]["params"] == _n_params("transformer_dna_250k")
    (ratio,) = cost["results"]["ratios"]
    assert ratio["time_ratio"] == pytest.approx(points["mamba"]["us_per_token"] / points["transformer"]["us_per_token"],
                                                rel=1e-2)
    assert "summary:" in run.stdout


def test_a_missing_study_module_is_named():
    with pytest.raises(ValueError, match="no_such_study.*missing"):
        load_study("no_such_study")


def test_mqar_sizes_that_cannot_fit_are_refused(tmp_path, capsys):
    from mamba_bio_audio.pipelines import cli

    status = cli.main(["pretrain", "experiment=synthetic/mqar", f"paths.output_dir={tmp_path / 'run'}",
                       "data.seq_len=32", "data.num_pairs=9"])
    err = capsys.readouterr().err
    assert status == 2
    assert "data.seq_len must be >= 4 * data.num_pairs" in err and "got 32 with 9 pairs" in err
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_full_and_quick_exclude_each_other(capsys):
    from mamba_bio_audio.pipelines import cli

    assert cli.main(["bench", "reviewers", "--study", "cost", "--full", "--quick"]) == 2
    assert "--full and --quick" in capsys.readouterr().err
