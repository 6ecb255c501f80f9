"""``mamba-bio-audio quickstart``: the README's first command, end to end on a CPU in about 15 minutes.

Fetches and prepares the example data (``examples dna``: hg_small and apes4; ``examples audio``: piano renders),
pretrains a small DNA Mamba LM on hg_small, fine-tunes the apes4 species classifier from it, pretrains a small
SaShiMi audio LM on the piano renders, samples audio (and DNA), and writes ``<out>/report.md`` with a metrics
table, loss curves, the confusion matrix, waveform + spectrogram PNGs and the WAVs. Every training phase runs
the Hydra CPU-twin experiments (``dna/hg_small_cpu``, ``species/apes4_cpu``, ``audio/piano_sashimi_cpu``)
through the same code as ``pretrain`` / ``finetune``; its step count is set from a timed step so the phase
fits its share of ``--minutes``, with ``trainer.max_time`` as a hard stop. Model figures are put beside count-based baselines
of the same data (unigram and order-3 Markov bits per base; chance accuracy and a k-mer classifier; mu-law
unigram bits per sample; the sample figures of real piano).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from rich.console import Console

from mamba_bio_audio.atomic import write_text_atomic

SHARES = {"dna": 0.36, "apes": 0.24, "audio": 0.40}  # of the training time left after the data phase
RESERVE_S = 90.0  # sampling, report and three trainer start-ups
SAMPLE_TEMPERATURE = 0.9  # spectral flatness of the samples 0.02-0.03 against 0.04-0.05 at 1.0 (real piano: 0.007)
EXPERIMENTS = {"dna": "dna/hg_small_cpu", "apes": "species/apes4_cpu", "audio": "audio/piano_sashimi_cpu"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("quickstart"), help="report folder (default: ./quickstart)")
    parser.add_argument("--data", type=Path, default=Path("data"), help="example datasets folder (default: ./data)")
    parser.add_argument("--minutes", type=float, default=15.0, help="wall-time budget of the whole job (default: 15)")
    parser.add_argument("--piano-hours", type=float, default=0.25,
                        help="piano audio to render (default: 0.25, about 10 renders: 88/6/6 by order needs 9 "
                             "for a validation render)")
    parser.add_argument("--sample-seconds", type=float, default=2.0, help="length of each audio sample (default: 2)")
    parser.add_argument("--cache", type=Path, default=None, help="Debian package cache (default: ~/.cache/mamba-bio-audio)")
    parser.add_argument("--install", action="store_true",
                        help="install missing Debian audio tools with apt-get (needs root); otherwise they are reported")
    parser.add_argument("--seed", type=int, default=0)


class Clock:
    """Wall time of the job and of each phase, printed as phases start."""

    def __init__(self, console: Console, budget_s: float):
        self.console, self.budget_s = console, budget_s
        self.started = time.perf_counter()
        self.phases: dict[str, float] = {}
        self._current: tuple[str, float] | None = None

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def phase(self, name: str) -> None:
        self.stop()
        self.console.rule(f"[bold]{name}[/] (at {self.elapsed / 60:.1f} of {self.budget_s / 60:.0f} min)")
        self._current = (name, time.perf_counter())

    def stop(self) -> None:
        if self._current:
            name, since = self._current
            self.phases[name] = time.perf_counter() - since
            self._current = None


def prepare_data(data: Path, cache: Path | None, piano_hours: float, seed: int, install: bool) -> dict:
    """Fetch and prepare hg_small, apes4 and piano (skipped when up to date); returns their token counts."""
    from mamba_bio_audio.data_prep.examples.audio import make_examples
    from mamba_bio_audio.data_prep.examples.dna import debian_locator, prepare_apes4, prepare_hg_small
    from mamba_bio_audio.data_prep.datasets.prepared import PreparedDataset
    from mamba_bio_audio.pipelines.commands.progress import byte_progress, file_progress, phase_callback

    locate = debian_locator(cache)
    for name, prepare in (("hg_small", prepare_hg_small), ("apes4", prepare_apes4)):
        with byte_progress(name) as progress:
            prepare(data / name, locate, progress=progress)
    with file_progress() as bar:
        make_examples(data, ("piano",), hours=piano_hours, seed=seed, install=install, progress=phase_callback(bar))
    return {name: {split: counts["tokens"] for split, counts in PreparedDataset(data / name).manifest["splits"].items()}
            for name in ("hg_small", "apes4", "piano")}


def _seconds_per_step(cfg) -> float:
    """Wall time of one training step of the config's net and batch shape: the faster of two timed steps
    after an untimed one (on a shared machine the slower one mostly measures the neighbours)."""
    from hydra.utils import instantiate

    net = instantiate(cfg.net, _convert_="all")
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4)
    batch, length = cfg.data.batch_size, cfg.data.seq_len
    inputs = torch.randint(0, net.config.vocab_size, (batch, length))  # a step's time does not depend on the ids
    labels = torch.zeros(batch, dtype=torch.long) if hasattr(net, "score") else inputs
    times = []
    for _ in range(3):
        started = time.perf_counter()
        net(inputs, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - started)
    return min(times[1:])


def _max_time(seconds: float) -> str:
    seconds = int(max(1, seconds))
    return f"00:{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def train_phase(name: str, seconds: float, out: Path, data: Path, seed: int, console: Console, extra=()):
    """Run the phase's experiment with as many steps as fit in ``seconds``; returns the RunResult."""
    from mamba_bio_audio.pipelines.commands.hydra_compose import compose
    from mamba_bio_audio.pipelines.training.train import run

    base = [f"experiment={EXPERIMENTS[name]}", f"paths.data_dir={data}", f"paths.output_dir={out / 'runs' / name}",
            "logger=csv", f"seed={seed}", *extra]
    cfg = compose("train", base)
    per_step = _seconds_per_step(cfg)
    # two validations and the test: forward passes only, about 0.4 of a training step per batch
    eval_batches = 2 * (cfg.trainer.limit_val_batches or 8) + -(-cfg.data.eval_items // cfg.data.batch_size)
    steps = max(8, int((0.85 * seconds - 0.4 * eval_batches * per_step) / per_step))
    items_key = "data.train_items" if name == "apes" else "data.train_windows"
    console.print(f"{name}: {per_step:.2f} s per step of {cfg.data.batch_size} × {cfg.data.seq_len} tokens → "
                  f"{steps} steps in about {seconds / 60:.1f} min")
    cfg = compose("train", base + [f"trainer.max_steps={steps}", f"trainer.val_check_interval={max(1, steps // 2)}",
                                   f"trainer.max_time={_max_time(seconds)}",
                                   f"{items_key}={steps * cfg.data.batch_size}"])
    return run(cfg)


def _afford_seconds(net, wanted: float, left_s: float, sample_rate: int) -> float:
    """Audio seconds per clip that fit in ``left_s`` at the measured recurrent sampling speed."""
    from mamba_bio_audio.audio_generation import sample_audio

    started = time.perf_counter()
    sample_audio(net, 2, 400, seed=0)
    per_sample = (time.perf_counter() - started) / 400
    return float(max(0.25, min(wanted, left_s / per_sample / sample_rate)))


def run(args) -> int:
    if not args.minutes > 0:
        raise ValueError(f"--minutes must be > 0; got {args.minutes}")
    from mamba_bio_audio.data_prep.datasets.prepared import PreparedDataset
    from mamba_bio_audio.pipelines.commands.hydra_compose import compose
    from mamba_bio_audio.pipelines.commands.sample import sample_audio_files, sample_dna_files
    from mamba_bio_audio.pipelines.evaluation.quickstart_metrics import (audio_unigram_bits, collect, dna_baselines,
                                                                         real_audio_stats, species_baseline)
    from mamba_bio_audio.pipelines.training.nets import load_net

    console = Console()
    clock = Clock(console, 60.0 * args.minutes)
    out, data = Path(args.out), Path(args.data)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)

    clock.phase("1/6 example data: hg_small, apes4 (Debian example packages), piano renders")
    tokens = prepare_data(data, args.cache, args.piano_hours, args.seed, args.install)
    training_s = clock.budget_s - clock.elapsed - RESERVE_S
    if training_s < 60:
        raise ValueError(f"--minutes {args.minutes} leaves {training_s:.0f} s for training after the data phase "
                         f"({clock.elapsed:.0f} s); give more minutes")

    clock.phase("2/6 pretraining the DNA LM on hg_small")
    dna = train_phase("dna", SHARES["dna"] * training_s, out, data, args.seed, console)
    dna_cfg = json.loads((dna.export_dir / "config.json").read_text())
    dna_data = compose("train", [f"experiment={EXPERIMENTS['dna']}"]).data
    baselines = dna_baselines(data, dna_data.seq_len, dna_data.eval_items, args.seed)

    clock.phase("3/6 fine-tuning the apes4 species classifier from it")
    apes = train_phase("apes", SHARES["apes"] * training_s, out, data, args.seed, console,
                       extra=[f"net.pretrained={dna.export_dir}"])
    apes_data = compose("train", [f"experiment={EXPERIMENTS['apes']}"]).data
    baselines["apes_kmer"] = species_baseline(data, apes_data.seq_len, apes_data.eval_items, args.seed)

    clock.phase("4/6 pretraining the audio LM on the piano renders")
    left = clock.budget_s - clock.elapsed - RESERVE_S + 15
    audio = train_phase("audio", max(60.0, left), out, data, args.seed, console,
                        extra=["~callbacks.audio_samples"])  # the samples of phase 5 stand for them

    clock.phase("5/6 sampling audio and DNA")
    audio_net = load_net(audio.export_dir)
    rate = int(PreparedDataset(data / "piano").manifest["audio"]["rate"])
    seconds = _afford_seconds(audio_net, args.sample_seconds, clock.budget_s - clock.elapsed - 25, rate)
    # no top-p: after a quiet stretch the model puts > 95 % on one value, and nucleus sampling then never leaves it
    clips = sample_audio_files(audio_net, out / "audio", 2, seconds, rate, seed=args.seed,
                               temperature=SAMPLE_TEMPERATURE)
    dna_samples = sample_dna_files(load_net(dna.export_dir), out / "dna", 2, 300, seed=args.seed)
    baselines["real_audio"] = real_audio_stats(data, seconds)

    clock.phase("6/6 report")
    figures(out, dna, apes, audio, baselines)
    metrics = collect(dna, apes, audio, baselines, audio_unigram_bits(data), clips, dna_samples, tokens, dna_cfg)
    clock.stop()
    metrics["phase_seconds"] = {k.split(" ", 1)[0]: round(v, 1) for k, v in clock.phases.items()}
    metrics["total_seconds"] = round(clock.elapsed, 1)
    write_text_atomic(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    from mamba_bio_audio.pipelines.reporting.quickstart_report import write_report

    write_report(out / "report.md", table_rows(metrics), sections(metrics, clips, out))
    console.print(f"[bold green]quickstart done in {clock.elapsed / 60:.1f} min[/]: DNA validation perplexity "
                  f"{metrics['dna_val_ppl']:.3f} (unigram {metrics['dna_unigram_ppl']:.3f}); apes4 test accuracy "
                  f"{100 * metrics['apes_test_acc']:.1f} % (chance 25 %); report: {out / 'report.md'}")
    return 0


def figures(out: Path, dna, apes, audio, baselines: dict) -> None:
    from mamba_bio_audio.pipelines.reporting.quickstart_report import plot_confusion, plot_loss_curves

    plot_loss_curves(out / "loss_curves.png",
                     {"DNA LM (hg_small)": dna.output_dir, "apes4 classifier": apes.output_dir,
                      "audio LM (piano)": audio.output_dir},
                     {"DNA LM (hg_small)": {"unigram (valid)": baselines["order0"],
                                            "order-3 Markov (valid)": baselines["order3"]},
                      "apes4 classifier": {}})
    plot_confusion(out / "confusion.png", apes.confusion, apes.class_names, "apes4 test windows")


def table_rows(m: dict) -> list[tuple[str, str]]:
    return [
        ("DNA LM validation perplexity (bits/base), best checkpoint",
         f"{m['dna_val_ppl']:.3f} ({m['dna_val_bits_per_base']:.3f})"),
        ("same windows: unigram / order-3 Markov perplexity", f"{m['dna_unigram_ppl']:.3f} / {m['dna_markov3_ppl']:.3f}"),
        ("DNA LM test perplexity", f"{m['dna_test_ppl']:.3f}"),
        ("apes4 test accuracy (chance 25 %)", f"{100 * m['apes_test_acc']:.1f} %"),
        ("apes4 test macro F1", f"{m['apes_test_macro_f1']:.3f}"),
        ("same windows: k-mer (k <= 4) logistic regression test accuracy (its training accuracy)",
         f"{100 * m['apes_kmer_baseline']['test_acc']:.1f} % ({100 * m['apes_kmer_baseline']['train_acc']:.1f} %)"),
        ("audio LM validation / test bits per sample", f"{m['audio_val_bits_per_sample']:.3f} / "
                                                       f"{m['audio_test_bits_per_sample']:.3f}"),
        ("audio mu-law unigram bits per sample (test)", f"{m['audio_unigram_bits_per_sample']:.3f}"),
        *((f"audio clip {i}: RMS dBFS, clipped fraction, longest flat run (s), spectral flatness",
           f"{c['rms_dbfs']:.1f}, {c['clipped_fraction']:.4f}, {c['longest_flat_s']:.3f}, {c['spectral_flatness']:.3f}")
          for i, c in enumerate(m["audio_samples"])),
        ("same figures, real piano (test split, median of 8 excerpts as long)",
         "{rms_dbfs:.1f}, {clipped_fraction:.4f}, {longest_flat_s:.3f}, {spectral_flatness:.3f}".format(
             **m["real_audio_stats"])),
        ("optimizer steps: DNA LM, apes4, audio LM", ", ".join(str(v) for v in m["steps"].values())),
        ("wall time (min), by phase (s)", f"{m['total_seconds'] / 60:.1f}, " +
         ", ".join(f"{k} {v:.0f}" for k, v in m["phase_seconds"].items())),
    ]


def sections(m: dict, clips: list[dict], out: Path) -> list[str]:
    wavs = ", ".join(f"[`audio/{c['wav']}`](audio/{c['wav']})" for c in clips)
    pngs = "\n".join(f"![{c['png']}](audio/{c['png']})" for c in clips)
    return [
        "Perplexity is exp(next-token cross entropy) over the validation windows; the baselines are add-one "
        "smoothed counts fitted on 4 Mb of the training split and scored on the same windows. hg_small is GRCh37 "
        "chr20 + part of chrX, not hg38; apes4 has 4 species of aligned chr22 (see docs/dna_data.md), so its "
        "accuracy is not comparable with the paper's Table 13. Its windows are orthologous (same locus in each "
        "ape, 1 to 3.5 % apart, split by locus), so a single window carries almost no species signal: the k-mer "
        "baseline, fitted on the composition of 8,192 training windows, measures how much base composition alone "
        "tells (at chance, it tells nothing; a training accuracy above its test accuracy is memorisation). Runs: " +
        ", ".join(f"`{k}`: `{v}`" for k, v in m["runs"].items()) + " (Lightning checkpoints, CSV logs, exports).",
        "## Loss curves\n\n![loss curves](loss_curves.png)",
        "## apes4 confusion matrix\n\n![confusion matrix](confusion.png)",
        f"## Audio samples\n\nWAVs: {wavs} (16 kHz, 16-bit; log-likelihoods in `audio/samples.json`). In the table, "
        "RMS is taken about the mean (a constant offset is silence), a long flat run means the sampler got stuck "
        "on one value, and spectral flatness is near 0 for tones and near 1 for white noise; the real-piano row "
        f"gives the same figures for the test recordings.\n\n{pngs}",
        "## DNA samples\n\n`dna/samples.fa`: two 300-base sequences with their log-likelihoods.",
    ]
