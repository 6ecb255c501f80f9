"""The quickstart's report pieces: training curves from CSV logs, the confusion matrix and what it says in
words, report.md; its baselines (best order-k Markov, k-mer classifier, real piano with pitch clarity)."""
from __future__ import annotations

import numpy as np
import pytest

from mamba_bio_audio.pipelines.evaluation.quickstart_metrics import (dna_baselines, pitch_clarity, real_audio_stats,
                                                                     species_baseline)
from mamba_bio_audio.pipelines.reporting.quickstart_report import (classifier_verdict, plot_confusion,
                                                                   plot_training_curves, read_curve, write_report)


def test_report_files(tmp_path):
    run = tmp_path / "run"
    (run / "csv").mkdir(parents=True)
    (run / "csv" / "metrics.csv").write_text("step,train/loss,val/loss,val/acc\n0,1.4,,\n5,1.3,,\n5,,1.35,0.5\n"
                                             "9,,1.30,0.6\n")
    assert read_curve(run, "val/loss") == ([5, 9], [1.35, 1.30])
    plot_training_curves(tmp_path / "curves.png", [
        {"title": "DNA", "run": run, "metric": "loss", "lines": {"unigram": 2.0}},
        {"title": "classifier", "run": run, "metric": "accuracy", "lines": {"chance": 20.0, "k-mer": 90.0}}])
    plot_confusion(tmp_path / "confusion.png", [[3, 1], [0, 4]], ["a", "b"], "test")
    write_report(tmp_path / "report.md", [("metric", "1.0")], ["## more"])
    assert (tmp_path / "curves.png").stat().st_size > 1000 and (tmp_path / "confusion.png").stat().st_size > 1000
    assert "| metric | 1.0 |" in (tmp_path / "report.md").read_text()


def test_classifier_verdict_flags_collapse_and_chance_in_words():
    names = ["human", "chimpanzee", "gorilla", "orangutan"]
    collapsed = [[2, 60, 1, 1], [1, 62, 1, 0], [0, 63, 1, 0], [1, 62, 0, 1]]  # 247 of 256 predicted chimpanzee
    kind, text = classifier_verdict(collapsed, names, 0.126, 0.25)
    assert kind == "collapsed" and "predicts chimpanzee for 247 of 256 test windows (96 %)" in text
    spread = [[16, 16, 16, 16]] * 4
    kind, text = classifier_verdict(spread, names, 0.25, 0.25)
    assert kind == "chance" and "macro F1 0.250" in text
    good = [[60, 2, 1, 1], [2, 58, 2, 2], [1, 1, 61, 1], [0, 3, 1, 60]]  # 239 of 256: 93.4 %
    kind, text = classifier_verdict(good, names, 0.93, 0.80)
    assert kind == "above" and "is above the k-mer baseline" in text and "+13.4 points" in text
    assert classifier_verdict(good, names, 0.93, 0.94)[0] == "level with"  # -0.6 points
    assert classifier_verdict(good, names, 0.93, 0.99)[0] == "below"  # -5.6 points
    poor = [[40, 10, 8, 6], [10, 40, 8, 6], [8, 8, 40, 8], [6, 8, 10, 40]]  # 160 of 256: 62.5 %
    kind, text = classifier_verdict(poor, names, 0.62, 0.992)
    assert kind == "far below" and "far below the k-mer baseline" in text and "-36.7 points" in text


def test_pitch_clarity_tells_notes_from_noise():
    rate = 16000
    t = np.arange(rate) / rate
    chord = (3000 * (np.sin(2 * np.pi * 261.6 * t) + np.sin(2 * np.pi * 392.0 * t))).astype(np.int16)
    noise = (3000 * np.random.default_rng(0).standard_normal(rate)).astype(np.int16)
    assert pitch_clarity(chord, rate) > 0.9 and pitch_clarity(noise, rate) < 0.3
    assert np.isnan(pitch_clarity(np.zeros(rate, np.int16), rate))


def test_dna_baselines_on_tiny_data(data_dir):
    bits = dna_baselines(data_dir, 256, 4, seed=0, max_order=4)  # random bases at 40 % GC: about 1.97 bits
    assert 1.9 < bits["order0"] < 2.05 and 1.9 < bits["order3"] < 2.2
    assert bits["best"] == pytest.approx(min(bits["best"], bits["order3"]), abs=0.05) and bits["best_order"] <= 4


def test_species_baseline_on_tiny_data(data_dir):
    # the tiny species differ in GC (30, 40, 50, 60 %), which base counts alone tell apart at 1024 bases
    result = species_baseline(data_dir, 1024, 64, seed=0, train_items=400, dataset="apes4")
    assert result["test_acc"] > 0.9 and result["test_items"] == 64


def test_real_audio_stats_on_tiny_piano(data_dir):
    stats = real_audio_stats(data_dir, 0.25, excerpts=3)  # sines of 220-420 Hz plus noise, minmax-scaled to ±1
    assert -9 < stats["rms_dbfs"] < -2 and stats["spectral_flatness"] < 0.1 and stats["longest_flat_s"] < 0.01
    assert stats["pitch_clarity"] > 0.8
