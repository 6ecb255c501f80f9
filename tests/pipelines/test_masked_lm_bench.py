"""``bench dna-models --quick``: every run of the benchmark (pretraining, fine-tuning, baselines) end to end on
tiny models, its JSON and PNG; the downstream task on a prepared species dataset."""
from __future__ import annotations

import json
from types import SimpleNamespace

import torch

from mamba_bio_audio.pipelines.bench import dna_models
from mamba_bio_audio.pipelines.cli import main


def test_bench_dna_models_quick(tmp_path):
    assert main(["bench", "dna-models", "--quick", "--species-data", str(tmp_path / "none"),
                 "--out-dir", str(tmp_path)]) == 0
    (report_path,) = tmp_path.glob("dna_models_*.json")
    report = json.loads(report_path.read_text())
    assert (tmp_path / report["plot"]).is_file()
    runs = report["pretraining"]
    assert set(runs) == {"mamba_lm", "mamba_mlm", "bimamba_mlm", "rcps_mlm"}
    params = [r["params"] for r in runs.values()]
    assert runs["bimamba_mlm"]["params"] == runs["rcps_mlm"]["params"]
    assert max(params) / min(params) < 1.1  # the causal Mamba's width is matched to the others' count
    assert len({r["tokens"] for r in runs.values()}) == 1 and all(r["tokens_per_s"] > 0 for r in runs.values())
    downstream = report["downstream"]
    assert set(downstream) == {"mamba", "mamba_rc_aug", "bimamba", "bimamba_rc_aug", "rcps", "rcps_rc_aug"}
    for key in ("rcps", "rcps_rc_aug"):  # RC-invariant: the same accuracy on both strands
        assert downstream[key]["forward"] == downstream[key]["reverse"] == downstream[key]["conjoined"]
    assert 0.0 <= report["baselines"]["kmer4_logistic_accuracy"]["forward"] <= 1.0
    assert report["data"]["classes"] == ["human", "orangutan"]


def test_downstream_reads_a_prepared_species_set(data_dir):
    """The downstream task reads a prepared species dataset (the four-species fixture) when one is given."""
    args = SimpleNamespace(species_data=data_dir / "apes4", seq_len=32, batch=4, finetune_steps=2, eval_windows=3,
                           seed=0)
    task = dna_models.downstream_task(args, [], [])
    assert task.classes == ["human", "chimpanzee", "gorilla", "orangutan"]
    windows, labels = task.sample(4, torch.Generator())
    assert windows.shape == (4, 32) and windows.dtype == torch.int64 and labels.max() < 4
    assert task.test[0].shape == (12, 32) and sorted(set(task.test[1].tolist())) == [0, 1, 2, 3]
