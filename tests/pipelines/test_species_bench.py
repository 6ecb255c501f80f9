"""``compare experiment=compare/species_lengths``: the same classifier at several window lengths, each a training
run of its own, the k-mer baseline on the same test windows, JSON + PNG through the one result writer."""
import json

from mamba_bio_audio.pipelines.cli import main
from mamba_bio_audio.pipelines.reporting import bench_results


def test_species_lengths_on_tiny_data(data_dir, tmp_path, capsys):
    args = ["compare", "experiment=compare/species_lengths", f"data.path={data_dir / 'apes4'}",
            "compare.lengths=[64,256]", "compare.steps=2", "compare.tokens_per_step=256", "compare.eval_items=8",
            "compare.kmer_items=64", f"paths.output_dir={tmp_path / 'runs'}", f"compare.out_dir={tmp_path / 'results'}"]
    assert main(args) == 0
    [result] = (tmp_path / "results").glob("species_lengths_*.json")
    report = json.loads(result.read_text())
    assert report["benchmark"] == "species_lengths"
    assert report["machine"].keys() == bench_results.machine(bench_results.start()).keys()  # the one writer's header
    assert [r["seq_len"] for r in report["rows"]] == [64, 256] and [r["batch"] for r in report["rows"]] == [4, 1]
    for row in report["rows"]:
        confusion = row["confusion"]
        assert len(confusion) == 4
        correct, total = sum(confusion[i][i] for i in range(4)), sum(map(sum, confusion))
        assert abs(row["test_acc"] - correct / total) < 1e-6  # the accuracy is the confusion matrix's
        assert (tmp_path / "runs" / f"L{row['seq_len']}").is_dir() and row["run_folder"].endswith(f"L{row['seq_len']}")
        assert row["steps"] == 2 and not row["converged"]  # 2 steps: stopped by compare.steps, not by the criterion
        assert len(row["curve"]["val_acc"]["step"]) == len(row["curve"]["val_acc"]["value"]) == 1  # one validation
    assert report["chance"] == 0.25 and (tmp_path / "results" / report["plot"]).read_bytes()[:4] == b"\x89PNG"
    assert "L 256: classifier" in capsys.readouterr().out


def test_compare_refuses_an_experiment_that_is_not_a_comparison(tmp_path, capsys):
    assert main(["compare", "experiment=species/apes4_cpu", f"paths.output_dir={tmp_path / 'run'}"]) == 2
    assert "compare runs an experiment under compare/" in capsys.readouterr().err
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


def test_a_missing_dataset_is_named_with_the_command_that_makes_it(tmp_path, capsys):
    code = main(["compare", "experiment=compare/species_lengths", f"data.path={tmp_path / 'nowhere'}",
                 f"paths.output_dir={tmp_path / 'run'}", f"compare.out_dir={tmp_path / 'results'}"])
    err = capsys.readouterr().err
    assert code == 2 and f"no species dataset at {tmp_path / 'nowhere'}" in err and "examples dna" in err
    assert not (tmp_path / "results").exists()
