"""The quickstart's report pieces: loss curves from CSV logs, the confusion matrix, report.md; its baselines."""
from __future__ import annotations


from mamba_bio_audio.pipelines.evaluation.quickstart_metrics import dna_baselines, real_audio_stats, species_baseline
from mamba_bio_audio.pipelines.reporting.quickstart_report import plot_confusion, plot_loss_curves, read_curve, write_report


def test_report_files(tmp_path):
    run = tmp_path / "run"
    (run / "csv").mkdir(parents=True)
    (run / "csv" / "metrics.csv").write_text("step,train/loss,val/loss\n0,1.4,\n5,1.3,\n5,,1.35\n")
    assert read_curve(run, "val/loss") == ([5], [1.35])
    plot_loss_curves(tmp_path / "curves.png", {"DNA": run}, {"DNA": {"unigram": 2.0}})
    plot_confusion(tmp_path / "confusion.png", [[3, 1], [0, 4]], ["a", "b"], "test")
    write_report(tmp_path / "report.md", [("metric", "1.0")], ["## more"])
    assert (tmp_path / "curves.png").stat().st_size > 1000 and (tmp_path / "confusion.png").stat().st_size > 1000
    assert "| metric | 1.0 |" in (tmp_path / "report.md").read_text()


def test_dna_baselines_on_tiny_data(data_dir):
    bits = dna_baselines(data_dir, 256, 4, seed=0)  # random bases at 40 % GC: about 1.97 bits
    assert 1.9 < bits["order0"] < 2.05 and 1.9 < bits["order3"] < 2.2


def test_species_baseline_on_tiny_data(data_dir):
    # the tiny species differ in GC (30, 40, 50, 60 %), which base counts alone tell apart at 1024 bases
    result = species_baseline(data_dir, 1024, 64, seed=0, train_items=400)
    assert result["test_acc"] > 0.9 and result["test_items"] == 64


def test_real_audio_stats_on_tiny_piano(data_dir):
    stats = real_audio_stats(data_dir, 0.25, excerpts=3)  # sines of 220-420 Hz plus noise, minmax-scaled to ±1
    assert -9 < stats["rms_dbfs"] < -2 and stats["spectral_flatness"] < 0.1 and stats["longest_flat_s"] < 0.01
