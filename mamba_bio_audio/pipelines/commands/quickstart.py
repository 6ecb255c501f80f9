"""``mamba-bio-audio quickstart``: the README's first command, end to end on a CPU in about 15 minutes.

Fetches and prepares the example data (``examples dna``: hg_small and species5; ``examples audio``: piano
renders), pretrains a small DNA Mamba LM on hg_small, fine-tunes the species5 classifier from it, pretrains a
small SaShiMi audio LM on the piano renders, samples audio (and DNA), and writes ``<out>/report.md`` with a
metrics table, what each phase achieved in words, training curves, the confusion matrix, waveform +
spectrogram PNGs and the WAVs. Every training phase runs the Hydra CPU-twin experiments
(``dna/hg_small_cpu``, ``species/species5_cpu``, ``audio/piano_sashimi_cpu``) through the same code as
``pretrain`` / ``finetune``; its step count is set from a timed step so the phase fits its share of
``--minutes``, with ``trainer.max_time`` as a hard stop. Model figures are put beside count-based baselines of
the same data (unigram, order-3 and the best order-k Markov bits per base; chance accuracy and a k-mer
classifier on the same test windows; mu-law unigram bits per sample; the sample figures of real piano).
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from pathlib import Path

import torch
from rich.console import Console

from mamba_bio_audio.atomic import write_text_atomic
from mamba_bio_audio.folder_kinds import check_folder
from mamba_bio_audio.pipelines.commands.output_folders import QUICKSTART_FOLDER, RUN_FOLDER

SHARES = {"dna": 0.36, "species": 0.24, "audio": 0.40}  # of the training time left after the data phase
RESERVE_S = 120.0  # baselines, sampling, report and three trainer start-ups
VALIDATIONS = 4  # per training phase: the curves get that many validation points
SAMPLE_TEMPERATURE = 0.9  # spectral flatness of the samples 0.02-0.03 against 0.04-0.05 at 1.0 (real piano: 0.007)
EXPERIMENTS = {"dna": "dna/hg_small_cpu", "species": "species/species5_cpu", "audio": "audio/piano_sashimi_cpu"}
SPECIES_DATA = "species5"
START_THREADS = torch.get_num_threads()  # torch's own choice, before a phase sets its thread count


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


def check_folders(out: Path, data: Path) -> None:
    """Refuse (FolderRefused) before anything starts when ``out`` is not a quickstart folder or a dataset or
    render folder under ``data`` is not one: nothing of the user's is replaced."""
    from mamba_bio_audio.data_prep.datasets.prepared import check_dataset_folder
    from mamba_bio_audio.data_prep.examples.audio import RAW
    from mamba_bio_audio.data_prep.examples.piano import RENDERS

    check_folder(out, QUICKSTART_FOLDER)
    for name in ("hg_small", SPECIES_DATA, "piano"):
        check_dataset_folder(data / name)
    check_folder(data / RAW / "piano", RENDERS)


def prepare_data(data: Path, cache: Path | None, piano_hours: float, seed: int, install: bool,
                 console: Console) -> dict:
    """Fetch and prepare hg_small, species5 and piano (skipped when up to date); returns their token counts."""
    from mamba_bio_audio.data_prep.examples.audio import make_examples
    from mamba_bio_audio.data_prep.examples.dna import PREPARE, debian_locator
    from mamba_bio_audio.data_prep.datasets.prepared import PreparedDataset
    from mamba_bio_audio.pipelines.commands.examples import skipped_note
    from mamba_bio_audio.pipelines.commands.data_progress import byte_progress, file_progress, phase_callback

    locate = debian_locator(cache)
    for name in ("hg_small", SPECIES_DATA):
        with byte_progress(name) as progress:
            PREPARE[name](data / name, locate, progress=progress)
    with file_progress() as bar:
        make_examples(data, ("piano",), hours=piano_hours, seed=seed, install=install, progress=phase_callback(bar))
    note = skipped_note(data / "piano")
    if note:
        console.print(f"piano{note}")
    return {name: {split: counts["tokens"] for split, counts in PreparedDataset(data / name).manifest["splits"].items()}
            for name in ("hg_small", SPECIES_DATA, "piano")}


def _seconds_per_step(cfg) -> tuple[float, int]:
    """(seconds, CPU threads) of one training step of the config's net and batch shape, at the faster of the
    usable thread count and one thread: the faster of two timed steps each, after an untimed one. On a machine
    shared with other jobs two threads that wait for each other can be many times slower than one."""
    from hydra.utils import instantiate

    from mamba_bio_audio import ops

    net = instantiate(cfg.net, _convert_="all")
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4)
    batch, length = cfg.data.batch_size, cfg.data.seq_len
    inputs = torch.randint(0, net.config.vocab_size, (batch, length))  # a step's time does not depend on the ids
    labels = torch.zeros(batch, dtype=torch.long) if hasattr(net, "score") else inputs

    def step() -> float:
        started = time.perf_counter()
        net(inputs, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return time.perf_counter() - started

    default = min(START_THREADS, ops.max_cpu_threads())
    step()
    timings = {}
    for threads in sorted({default, 1}, reverse=True):
        ops.set_cpu_threads(threads)
        timings[threads] = min(step(), step())
    threads = min(timings, key=timings.get)
    ops.set_cpu_threads(threads)
    return timings[threads], threads


def _max_time(seconds: float) -> str:
    seconds = int(max(1, seconds))
    return f"00:{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def train_phase(name: str, seconds: float, out: Path, data: Path, seed: int, console: Console, extra=()):
    """Run the phase's experiment with as many steps as fit in ``seconds``; returns the RunResult."""
    from mamba_bio_audio.pipelines.commands.hydra_compose import compose
    from mamba_bio_audio.pipelines.training.train import run

    folder = out / "runs" / name
    check_folder(folder, RUN_FOLDER)
    shutil.rmtree(folder, ignore_errors=True)  # a fresh run: nothing of an earlier quickstart is resumed or mixed in
    base = [f"experiment={EXPERIMENTS[name]}", f"paths.data_dir={data}", f"paths.output_dir={folder}",
            "logger=csv", f"seed={seed}", *extra]
    cfg = compose("train", base)
    per_step, threads = _seconds_per_step(cfg)
    # the validations, the test and a linear probe: forward passes only, about 0.4 of a training step per batch
    eval_batches = VALIDATIONS * (cfg.trainer.limit_val_batches or 8) + -(-cfg.data.eval_items // cfg.data.batch_size)
    if cfg.task.get("head_init") == "linear_probe":
        eval_batches += -(-cfg.task.probe_items // cfg.data.batch_size)
    steps = max(2 * VALIDATIONS, int((0.85 * seconds - 0.4 * eval_batches * per_step) / per_step))
    items_key = "data.train_items" if name == "species" else "data.train_windows"
    console.print(f"{name}: {per_step:.2f} s per step of {cfg.data.batch_size} × {cfg.data.seq_len} tokens on "
                  f"{threads} CPU thread{'s' if threads > 1 else ''} → {steps} steps in about {seconds / 60:.1f} min")
    cfg = compose("train", base + [f"trainer.max_steps={steps}",
                                   f"trainer.val_check_interval={max(1, steps // VALIDATIONS)}",
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

    out, data = Path(args.out), Path(args.data)
    check_folders(out, data)
    console = Console(soft_wrap=True)  # a log file gets whole lines
    clock = Clock(console, 60.0 * args.minutes)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)

    clock.phase("1/6 example data: hg_small, species5 (Debian example packages), piano renders")
    tokens = prepare_data(data, args.cache, args.piano_hours, args.seed, args.install, console)
    training_s = clock.budget_s - clock.elapsed - RESERVE_S
    if training_s < 60:
        raise ValueError(f"--minutes {args.minutes} leaves {training_s:.0f} s for training after the data phase "
                         f"({clock.elapsed:.0f} s); give more minutes")

    clock.phase("2/6 pretraining the DNA LM on hg_small")
    dna = train_phase("dna", SHARES["dna"] * training_s, out, data, args.seed, console)
    dna_cfg = json.loads((dna.export_dir / "config.json").read_text())
    dna_data = compose("train", [f"experiment={EXPERIMENTS['dna']}"]).data
    baselines = dna_baselines(data, dna_data.seq_len, dna_data.eval_items, args.seed)

    clock.phase("3/6 fine-tuning the species5 classifier from it")
    species = train_phase("species", SHARES["species"] * training_s, out, data, args.seed, console,
                          extra=[f"net.pretrained={dna.export_dir}"])
    species_data = compose("train", [f"experiment={EXPERIMENTS['species']}"]).data
    baselines["species_kmer"] = species_baseline(data, species_data.seq_len, species_data.eval_items, args.seed,
                                                 dataset=SPECIES_DATA, max_n_fraction=species_data.max_n_fraction)

    clock.phase("4/6 pretraining the audio LM on the piano renders")
    left = clock.budget_s - clock.elapsed - RESERVE_S + 45
    audio = train_phase("audio", max(60.0, left), out, data, args.seed, console,
                        extra=["~callbacks.audio_samples"])  # the samples of phase 5 stand for them

    clock.phase("5/6 sampling audio and DNA")
    audio_net = load_net(audio.export_dir)
    rate = int(PreparedDataset(data / "piano").manifest["audio"]["rate"])
    seconds = _afford_seconds(audio_net, args.sample_seconds, clock.budget_s - clock.elapsed - 25, rate)
    # no top-p: after a quiet stretch the model puts > 95 % on one value, and nucleus sampling then never leaves it
    clips = sample_audio_files(audio_net, out / "audio", 2, seconds, rate, seed=args.seed,
                               temperature=SAMPLE_TEMPERATURE)
    add_pitch_clarity(clips, out / "audio", rate)
    write_text_atomic(out / "audio" / "samples.json", json.dumps(
        {"temperature": SAMPLE_TEMPERATURE, "top_k": 0, "top_p": 1.0, "seed": args.seed, "seconds": seconds,
         "sample_rate": rate, "samples": clips}, indent=2) + "\n")
    dna_samples = sample_dna_files(load_net(dna.export_dir), out / "dna", 2, 300, seed=args.seed, top_k=0)  # sampled, not greedy
    baselines["real_audio"] = real_audio_stats(data, seconds)

    clock.phase("6/6 report")
    figures(out, dna, species, audio, baselines, audio_unigram_bits(data))
    metrics = collect(dna, species, audio, baselines, audio_unigram_bits(data), clips, dna_samples, tokens, dna_cfg)
    clock.stop()
    metrics["phase_seconds"] = {k.split(" ", 1)[0]: round(v, 1) for k, v in clock.phases.items()}
    metrics["total_seconds"] = round(clock.elapsed, 1)
    metrics["audio_train_seconds"] = round(clock.phases["4/6 pretraining the audio LM on the piano renders"], 1)
    metrics["audio_parameters"] = sum(p.numel() for p in audio_net.parameters())
    metrics["piano_train_minutes"] = tokens["piano"]["train"] / rate / 60
    metrics["verdicts"] = verdicts(metrics)
    write_text_atomic(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    from mamba_bio_audio.pipelines.reporting.quickstart_report import write_report

    write_report(out / "report.md", table_rows(metrics), sections(metrics, clips, out))
    console.print(f"[bold green]quickstart done in {clock.elapsed / 60:.1f} min[/]: DNA validation perplexity "
                  f"{metrics['dna_val_ppl']:.3f} (best Markov {metrics['dna_markov_best_ppl']:.3f}); species5 test "
                  f"accuracy {100 * metrics['species_test_acc']:.1f} % (k-mer "
                  f"{100 * metrics['species_kmer_baseline']['test_acc']:.1f} %, chance "
                  f"{100 / len(metrics['species_classes']):.0f} %); report: {out / 'report.md'}")
    for verdict in metrics["verdicts"].values():
        console.print(f"  {verdict.replace('**', '')}")
    return 0


def add_pitch_clarity(clips: list[dict], folder: Path, rate: int) -> None:
    """Add each clip's :func:`.quickstart_metrics.pitch_clarity`, read back from its WAV."""
    import soundfile as sf

    from mamba_bio_audio.pipelines.evaluation.quickstart_metrics import pitch_clarity

    for clip in clips:
        pcm, _ = sf.read(str(folder / clip["wav"]), dtype="int16")
        clip["pitch_clarity"] = pitch_clarity(pcm, rate)


def figures(out: Path, dna, species, audio, baselines: dict, audio_unigram: float) -> None:
    from mamba_bio_audio.pipelines.reporting.quickstart_report import plot_confusion, plot_training_curves

    classes = len(species.class_names)
    plot_training_curves(out / "loss_curves.png", [
        {"title": "DNA LM (hg_small)", "run": dna.output_dir, "metric": "loss",
         "lines": {"unigram (valid)": baselines["order0"], "order-3 Markov (valid)": baselines["order3"],
                   f"order-{baselines['best_order']} Markov, best (valid)": baselines["best"]}},
        {"title": "species5 classifier", "run": species.output_dir, "metric": "accuracy",
         "lines": {f"chance ({100 / classes:.0f} %)": 100.0 / classes,
                   "k-mer classifier (test)": 100.0 * baselines["species_kmer"]["test_acc"]}},
        {"title": "audio LM (piano)", "run": audio.output_dir, "metric": "loss",
         "lines": {"mu-law unigram (test)": audio_unigram}},
    ])
    plot_confusion(out / "confusion.png", species.confusion, species.class_names, "species5 test windows")


def verdicts(m: dict) -> dict[str, str]:
    """What each phase achieved, in words: the DNA LM against the best Markov chain, the classifier (collapsed,
    at chance, or far below / below / level with / above the k-mer classifier), the audio samples against real
    piano."""
    from mamba_bio_audio.pipelines.reporting.quickstart_report import classifier_verdict

    gap = m["dna_val_bits_per_base"] - m["dna_markov_best_bits_per_base"]
    dna = (f"DNA LM: {m['dna_val_bits_per_base']:.3f} bits per base on validation, "
           f"{abs(gap):.3f} bits per base {'above (worse than)' if gap > 0 else 'below (better than)'} the best "
           f"count model of the same windows, an order-{m['dna_markov_best_order']} Markov chain "
           f"({m['dna_markov_best_bits_per_base']:.3f}); unigram {m['dna_unigram_bits_per_base']:.3f}.")
    _, species = classifier_verdict(m["species_confusion"], m["species_classes"], m["species_test_macro_f1"],
                                    m["species_kmer_baseline"]["test_acc"])
    real = m["real_audio_stats"]
    clarity = [c["pitch_clarity"] for c in m["audio_samples"]]
    steps, minutes = m["steps"]["audio"], m["audio_train_seconds"] / 60
    audio = (f"Audio: the clips are unconditional samples (no prompt) of a {m['audio_parameters'] / 1e6:.1f}M-parameter "
             f"SaShiMi trained for {steps} steps ({minutes:.1f} min) on {m['piano_train_minutes']:.0f} min of piano "
             f"renders; {_describe_clips(clarity, real['pitch_clarity'])} (pitch clarity "
             f"{', '.join(f'{c:.2f}' for c in clarity)} against {real['pitch_clarity']:.2f} for real piano; spectral "
             f"flatness {', '.join(format(c['spectral_flatness'], '.3f') for c in m['audio_samples'])} against "
             f"{real['spectral_flatness']:.3f}). Bits per sample: {m['audio_test_bits_per_sample']:.3f} against "
             f"{m['audio_unigram_bits_per_sample']:.3f} for the mu-law unigram.")
    return {"dna": dna, "species": species, "audio": audio}


def _describe_clips(clarity: list[float], real: float) -> str:
    """How periodic the clips are beside real piano, in words."""
    near = sum(c >= 0.8 * real for c in clarity)
    some = sum(0.5 * real <= c < 0.8 * real for c in clarity)
    if near == len(clarity):
        return "they are about as periodic as real piano: held pitches, though not necessarily music"
    if near + some:
        return (f"{near + some} of {len(clarity)} have some periodic (pitched) stretches, less than real piano, and "
                "none is music")
    return "none is close to real piano's periodicity: they sound closer to noise than to notes"


def table_rows(m: dict) -> list[tuple[str, str]]:
    classes = len(m["species_classes"])
    kmer = m["species_kmer_baseline"]
    return [
        ("DNA LM validation perplexity (bits/base), best checkpoint",
         f"{m['dna_val_ppl']:.3f} ({m['dna_val_bits_per_base']:.3f})"),
        ("same windows: unigram / order-3 Markov perplexity", f"{m['dna_unigram_ppl']:.3f} / {m['dna_markov3_ppl']:.3f}"),
        (f"same windows: best order-k Markov (k = {m['dna_markov_best_order']}, chosen on training data) perplexity "
         "(bits/base)", f"{m['dna_markov_best_ppl']:.3f} ({m['dna_markov_best_bits_per_base']:.3f})"),
        ("DNA LM test perplexity", f"{m['dna_test_ppl']:.3f}"),
        (f"species5 test accuracy (chance {100 / classes:.0f} %)", f"{100 * m['species_test_acc']:.1f} %"),
        (f"species5 test macro F1 (chance about {1 / classes:.2f})", f"{m['species_test_macro_f1']:.3f}"),
        ("species5 head started from a linear probe on the frozen LM's pooled features: its training accuracy "
         "(seconds)", "no (random head)" if math.isnan(m["species_probe_train_acc"]) else
         f"{100 * m['species_probe_train_acc']:.1f} % ({m['species_probe_seconds']:.0f} s)"),
        ("same windows: k-mer (k <= 4) logistic regression test accuracy (its training accuracy)",
         f"{100 * kmer['test_acc']:.1f} % ({100 * kmer['train_acc']:.1f} %)"),
        ("audio LM validation / test bits per sample", f"{m['audio_val_bits_per_sample']:.3f} / "
                                                       f"{m['audio_test_bits_per_sample']:.3f}"),
        ("audio mu-law unigram bits per sample (test)", f"{m['audio_unigram_bits_per_sample']:.3f}"),
        *((f"audio clip {i}: RMS dBFS, clipped fraction, longest flat run (s), spectral flatness, pitch clarity",
           f"{c['rms_dbfs']:.1f}, {c['clipped_fraction']:.4f}, {c['longest_flat_s']:.3f}, "
           f"{c['spectral_flatness']:.3f}, {c['pitch_clarity']:.2f}")
          for i, c in enumerate(m["audio_samples"])),
        ("same figures, real piano (test split, median of 8 excerpts as long)",
         "{rms_dbfs:.1f}, {clipped_fraction:.4f}, {longest_flat_s:.3f}, {spectral_flatness:.3f}, "
         "{pitch_clarity:.2f}".format(**m["real_audio_stats"])),
        ("optimizer steps: DNA LM, species5 classifier, audio LM", ", ".join(str(v) for v in m["steps"].values())),
        ("wall time (min), by phase (s)", f"{m['total_seconds'] / 60:.1f}, " +
         ", ".join(f"{k} {v:.0f}" for k, v in m["phase_seconds"].items())),
    ]


def sections(m: dict, clips: list[dict], out: Path) -> list[str]:
    wavs = ", ".join(f"[`audio/{c['wav']}`](audio/{c['wav']})" for c in clips)
    pngs = "\n".join(f"![{c['png']}](audio/{c['png']})" for c in clips)
    kmer = m["species_kmer_baseline"]
    return [
        "## What each phase achieved\n\n" + "\n".join(f"- {v}" for v in m["verdicts"].values()),
        "Perplexity is exp(next-token cross entropy) over the validation windows; the count baselines are fitted on "
        "4 Mb of the training split and scored on the same windows (add-one smoothing; the best order-k chain, "
        "k <= 10 and add-1 or add-0.1, is chosen on another 0.8 Mb of the training split). hg_small is GRCh37 "
        "chr20 + part of chrX, not hg38. species5 holds five species far apart (human, the amoeba D. discoideum, "
        "the malaria parasites P. falciparum and P. knowlesi, the bacterium S. suis), each window from the "
        "species' own genome, test windows from held-out chromosomes or a distant region (see docs/dna_data.md); "
        "it is not the paper's Great Apes, so its accuracy is not comparable with Table 13. These species differ "
        f"in base composition, which the k-mer baseline reads: fitted on {kmer['train_items']:,} training windows, "
        "it is scored on the classifier's test windows. Runs: " +
        ", ".join(f"`{k}`: `{v}`" for k, v in m["runs"].items()) + " (Lightning checkpoints, CSV logs, exports).",
        "## Training curves\n\nDNA and audio: loss in bits per token; classifier: validation accuracy with chance "
        "and the k-mer classifier.\n\n![training curves](loss_curves.png)",
        "## species5 confusion matrix\n\n![confusion matrix](confusion.png)",
        f"## Audio samples\n\nWAVs: {wavs} (16 kHz, 16-bit; each clip's log-likelihood under the model and the "
        "figures of the table in [`audio/samples.json`](audio/samples.json)). In the table, RMS is taken about "
        "the mean (a constant offset is silence), a long flat run means the sampler got stuck on one value, "
        "spectral flatness is near 0 for tones and near 1 for white noise, and pitch clarity (the median over "
        "64 ms frames of the highest normalised autocorrelation at a pitch period of 0.5 to 25 ms) is near 1 for "
        "a held note and near 0.1 for noise; the real-piano row gives the same figures for the test recordings."
        f"\n\n{pngs}",
        "## DNA samples\n\n`dna/samples.fa`: two 300-base sequences with their log-likelihoods.",
    ]
