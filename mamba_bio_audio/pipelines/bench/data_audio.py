"""``mamba-bio-audio bench data-audio``: ``prepare-audio`` speed as a real-time factor (seconds of input audio
per second of wall time) for 16 kHz mu-law output from WAV and FLAC input.

Input is synthetic, seeded piano-like audio (decaying harmonic notes plus a faint noise floor, PCM_16) cut into
one-minute files like YouTubeMix, written to a temporary folder in each input format. Each timing is a whole
``prepare_audio(..., force=True)`` call: hashing, decoding, down-mix, soxr HQ resampling, mu-law encoding and
the atomic dataset write. The JSON also records the load average before the run: other work on the machine
slows every figure.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from mamba_bio_audio.data_prep.datasets.parallel import default_workers
from mamba_bio_audio.data_prep.datasets.prepare_audio import prepare_audio
from mamba_bio_audio.pipelines.reporting.bench_results import start, write_result

# name -> (container, sample rate, channels)
INPUTS = {
    "wav-44k-stereo": ("WAV", 44100, 2),
    "flac-44k-stereo": ("FLAC", 44100, 2),
    "wav-16k-mono": ("WAV", 16000, 1),
    "flac-16k-mono": ("FLAC", 16000, 1),
}
TARGET_RTF = 200.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--minutes", type=float, default=20.0, help="audio per input format (default: %(default)s)")
    parser.add_argument("--file-seconds", type=float, default=60.0, help="length of each file (default: %(default)s)")
    parser.add_argument("--inputs", default=",".join(INPUTS), help=f"comma-separated subset of {', '.join(INPUTS)}")
    parser.add_argument("--workers", type=int, default=None, help="decoding processes (default: the usable CPU cores)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per input (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"), help="where the JSON goes")


def synthetic_piano(seconds: float, rate: int, channels: int, rng: np.random.Generator) -> np.ndarray:
    """float32 (n, channels) in [-1, 1]: random notes with 6 decaying harmonics every 0.25 s, noise floor 1e-3."""
    n = int(seconds * rate)
    t = np.arange(n) / rate
    out = np.zeros(n)
    for onset in np.arange(0.0, seconds, 0.25):
        f0 = 55.0 * 2 ** (rng.integers(12, 60) / 12)
        start = int(onset * rate)
        tt = t[start:] - onset
        envelope = np.exp(-tt * rng.uniform(1.5, 4.0))
        for k in range(1, 7):
            if k * f0 < rate / 2:
                out[start:] += envelope * np.sin(2 * np.pi * k * f0 * tt) / k ** 1.5
    out = 0.25 * out / np.abs(out).max() + 1e-3 * rng.standard_normal(n)
    pan = np.linspace(0.8, 1.0, channels)
    return (out[:, None] * pan[None, :]).astype(np.float32)


def _write_inputs(folder: Path, name: str, minutes: float, file_seconds: float, seed: int) -> float:
    container, rate, channels = INPUTS[name]
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    n_files = max(1, round(minutes * 60 / file_seconds))
    # Synthesising at 16 kHz and resampling is much faster than at 44.1 kHz, and the content is the same.
    base = synthetic_piano(file_seconds, 16000, channels, rng)
    for i in range(n_files):
        audio = np.roll(base, i * 4001, axis=0)  # distinct files (distinct hashes) at no synthesis cost
        if rate != 16000:
            audio = soxr.resample(audio, 16000, rate, quality="HQ")
        sf.write(folder / f"{i:04d}.{container.lower()}", np.clip(audio, -1, 1), rate, format=container,
                 subtype="PCM_16")
    return n_files * file_seconds


def run(args) -> int:
    names = [n.strip() for n in args.inputs.split(",") if n.strip()]
    unknown = [n for n in names if n not in INPUTS]
    if unknown:
        raise ValueError(f"unknown inputs {unknown}; choose from {list(INPUTS)}")
    if not args.minutes > 0 or not args.file_seconds > 0 or args.repeats < 1:
        raise ValueError("--minutes and --file-seconds must be > 0 and --repeats >= 1")
    workers = args.workers or default_workers()
    run_start = start()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-data-audio-") as tmp:
        for name in names:
            source = Path(tmp, name)
            audio_s = _write_inputs(source, name, args.minutes, args.file_seconds, args.seed)
            walls = []
            for _ in range(args.repeats):
                started = time.perf_counter()
                prepare_audio([source], Path(tmp, f"{name}.ds"), rate=16000, workers=workers, force=True)
                walls.append(time.perf_counter() - started)
            container, rate, channels = INPUTS[name]
            rtf = [audio_s / w for w in walls]
            results.append({
                "input": name, "container": container, "rate_in": rate, "channels": channels, "subtype": "PCM_16",
                "files": max(1, round(args.minutes * 60 / args.file_seconds)), "audio_s": audio_s,
                "wall_s": [round(w, 4) for w in walls], "rtf_median": round(statistics.median(rtf), 1),
                "rtf_best": round(max(rtf), 1), "meets_target": statistics.median(rtf) >= TARGET_RTF,
            })
            print(f"{name:16s} {audio_s / 60:6.1f} min  wall {statistics.median(walls):7.2f} s  "
                  f"{statistics.median(rtf):7.0f}x real time (best {max(rtf):.0f}x)", flush=True)
    report = {
        "parameters": {"usable_cores": default_workers(), "libsndfile": sf.__libsndfile_version__,
                       "output": "16000 Hz mono 8-bit mu-law, minmax, soxr HQ", "workers": workers,
                       "minutes_per_input": args.minutes, "file_seconds": args.file_seconds,
                       "repeats": args.repeats, "seed": args.seed, "target_rtf": TARGET_RTF},
        "results": results,
    }
    write_result(args.out_dir, "data_audio", report, started=run_start)
    return 0
