"""Synthetic spoken digits "zero" ... "nine", an SC09-like example. No real recordings.

Every clip is planned from its own generator seeded by (seed, clip index), so a clip does not depend on the
number of workers or on the other clips:

1. engine: flite 40 %, festival 30 %, espeak-ng 30 % (flite and festival voices are built from recordings and
   are recognised more often); a random voice of that engine and an engine speed (flite / festival duration
   stretch 0.9-1.15, espeak-ng 130-190 words a minute and pitch 30-70);
2. sox: mono, pitch shift of -300..+300 cents, 16 kHz;
3. speed perturbation x0.88-1.15 with soxr; silence trimmed (3 % of the peak, 400-sample margin); 10 ms fades;
4. peak gain 0.25-0.9, random placement in a 1.0 s frame, a noise floor of sigma 0-0.003; 16-bit WAV.

Festival clips of a batch go through one ``festival -b`` run (its start-up costs ~1 s). Words cycle through the
ten digits, so classes are balanced. 10 % of the clips (seeded) are listed in ``validation_list.txt`` and 10 %
in ``testing_list.txt``; every split holds every voice (only 4 flite + 2 festival voices exist).
"""
from __future__ import annotations

import json
import logging
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf
import soxr

from mamba_bio_audio.atomic import atomic_path, write_text_atomic
from mamba_bio_audio.folder_kinds import check_folder, layout_kind
from mamba_bio_audio.data_prep.examples.tools import tool_version
from mamba_bio_audio.data_prep.datasets.parallel import ordered_map

log = logging.getLogger(__name__)

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
RATE = 16000
FRAME = RATE  # 1.0 s
# What a synthesis may delete: a folder of earlier clips (<word>/*.wav, the split lists, synthesis.json)
_WORD_CLIPS = layout_kind("a folder of synthetic digit clips", files=("[0-9][0-9][0-9][0-9][0-9]_*.wav", ".*.tmp"))
CLIPS = layout_kind("a folder of synthetic digit clips",
                    files=("synthesis.json", "validation_list.txt", "testing_list.txt", ".*.tmp"),
                    folders=dict.fromkeys(DIGITS, _WORD_CLIPS))
ENGINE_WEIGHTS = {"flite": 0.4, "festival": 0.3, "espeak-ng": 0.3}
ESPEAK_ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029",
                  "en-us-nyc")
ESPEAK_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")
VOICES = {
    "flite": ("kal16", "awb", "rms", "slt"),  # kal is 8 kHz; awb_time speaks clock times only
    "festival": ("kal_diphone", "ked_diphone"),
    "espeak-ng": tuple(f"{a}+{v}" for a in ESPEAK_ACCENTS for v in ESPEAK_VARIANTS),
}
AUGMENTATION = {"pitch_cents": (-300, 300), "speed": (0.88, 1.15), "gain": (0.25, 0.9), "noise_sigma": (0.0, 0.003),
                "stretch": (0.9, 1.15), "espeak_wpm": (130, 190), "espeak_pitch": (30, 70),
                "trim_threshold": 0.03, "trim_margin": 400, "fade_s": 0.01}
BATCH = 24
SUBPROCESS_TIMEOUT_S = 120


@dataclass(frozen=True)
class ClipPlan:
    """Everything random about one clip; ``file`` is relative to the output folder (``word/name.wav``)."""

    index: int
    word: str
    engine: str
    voice: str
    stretch: float      # flite / festival duration stretch; espeak-ng: unused (1.0)
    espeak_wpm: int
    espeak_pitch: int
    pitch_cents: float
    speed: float
    gain: float
    noise_sigma: float
    place: float        # start of the speech within the free part of the frame, 0..1
    file: str


def plan_clips(n: int, seed: int) -> list[ClipPlan]:
    engines = list(ENGINE_WEIGHTS)
    weights = np.array([ENGINE_WEIGHTS[e] for e in engines])
    plans = []
    a = AUGMENTATION
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        word = DIGITS[i % len(DIGITS)]
        engine = engines[int(rng.choice(len(engines), p=weights))]
        voice = VOICES[engine][int(rng.integers(len(VOICES[engine])))]
        plans.append(ClipPlan(
            index=i, word=word, engine=engine, voice=voice,
            stretch=round(float(rng.uniform(*a["stretch"])), 4) if engine != "espeak-ng" else 1.0,
            espeak_wpm=int(rng.integers(a["espeak_wpm"][0], a["espeak_wpm"][1] + 1)),
            espeak_pitch=int(rng.integers(a["espeak_pitch"][0], a["espeak_pitch"][1] + 1)),
            pitch_cents=round(float(rng.uniform(*a["pitch_cents"])), 1),
            speed=round(float(rng.uniform(*a["speed"])), 4),
            gain=round(float(rng.uniform(*a["gain"])), 4),
            noise_sigma=round(float(rng.uniform(*a["noise_sigma"])), 5),
            place=round(float(rng.uniform(0, 1)), 4),
            file=f"{word}/{i:05d}_{engine}_{voice.replace('+', '-')}.wav",
        ))
    return plans


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S)
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]} exit {done.returncode}: {(done.stderr or done.stdout).strip()[-300:]}")


def _synthesize(plans: list[ClipPlan], tmp: Path) -> dict[int, Path]:
    """Raw engine output per clip index (any rate)."""
    raw = {p.index: tmp / f"{p.index}.raw.wav" for p in plans}
    festival = [p for p in plans if p.engine == "festival"]
    if festival:
        script = "".join(f"(voice_{p.voice})\n(Parameter.set 'Duration_Stretch {p.stretch})\n"
                         f"(utt.save.wave (SynthText \"{p.word}\") \"{raw[p.index]}\" 'riff)\n" for p in festival)
        (tmp / "batch.scm").write_text(script)
        _run(["festival", "-b", str(tmp / "batch.scm")])
    for p in plans:
        if p.engine == "flite":
            _run(["flite", "-voice", p.voice, "--setf", f"duration_stretch={p.stretch}", "-t", p.word,
                  "-o", str(raw[p.index])])
        elif p.engine == "espeak-ng":
            _run(["espeak-ng", "-v", p.voice, "-s", str(p.espeak_wpm), "-p", str(p.espeak_pitch),
                  "-w", str(raw[p.index]), p.word])
    return raw


def place_in_frame(speech: np.ndarray, plan: ClipPlan, seed: int) -> tuple[np.ndarray, int]:
    """speech float32 (n,) at 16 kHz -> (float32 (FRAME,), samples of trimmed speech in it): speed, trim,
    fades, gain, placement, noise."""
    a = AUGMENTATION
    x = soxr.resample(speech.astype(np.float32), RATE * plan.speed, RATE, quality="HQ")
    peak = float(np.abs(x).max(initial=0.0))
    loud = np.flatnonzero(np.abs(x) > a["trim_threshold"] * peak)
    if peak <= 1e-4 or loud.size == 0:
        raise RuntimeError("the engine produced silence")
    x = x[max(loud[0] - a["trim_margin"], 0) : loud[-1] + a["trim_margin"] + 1][:FRAME]
    fade = min(int(a["fade_s"] * RATE), x.size // 2)
    ramp = np.linspace(0.0, 1.0, fade, endpoint=False, dtype=np.float32)
    x[:fade] *= ramp
    x[x.size - fade :] *= ramp[::-1]
    x *= plan.gain / float(np.abs(x).max())
    frame = np.zeros(FRAME, np.float32)
    start = int(round(plan.place * (FRAME - x.size)))
    frame[start : start + x.size] = x
    frame += plan.noise_sigma * np.random.default_rng([seed, plan.index, 1]).standard_normal(FRAME).astype(np.float32)
    return np.clip(frame, -1.0, 1.0), x.size


@dataclass(frozen=True)
class _Batch:
    plans: tuple[ClipPlan, ...]
    out_dir: str
    seed: int


def synth_batch(batch: _Batch) -> list[dict]:
    """Make the clips of one batch; per clip {"index", "file", "speech_s"} or {"index", "file", "error"}."""
    results = []
    with tempfile.TemporaryDirectory(prefix="digits-") as tmp_name:
        tmp = Path(tmp_name)
        try:
            raw = _synthesize(list(batch.plans), tmp)
        except (RuntimeError, OSError, subprocess.SubprocessError) as err:
            return [{"index": p.index, "file": p.file, "error": f"synthesis: {err}"} for p in batch.plans]
        for plan in batch.plans:
            try:
                shifted = tmp / f"{plan.index}.16k.wav"
                _run(["sox", str(raw[plan.index]), "-b", "32", "-e", "floating-point", str(shifted),
                      "channels", "1", "pitch", f"{plan.pitch_cents:.1f}", "rate", "-v", str(RATE)])
                speech, _ = sf.read(str(shifted), dtype="float32")
                frame, speech_samples = place_in_frame(speech, plan, batch.seed)
                target = Path(batch.out_dir, plan.file)
                target.parent.mkdir(parents=True, exist_ok=True)
                with atomic_path(target) as tmp_wav:
                    sf.write(str(tmp_wav), frame, RATE, subtype="PCM_16", format="WAV")
                results.append({"index": plan.index, "file": plan.file, "speech_s": round(speech_samples / RATE, 4)})
            except (RuntimeError, OSError, ValueError, subprocess.SubprocessError, sf.SoundFileError) as err:
                results.append({"index": plan.index, "file": plan.file, "error": str(err)})
    return results


def synth_digits(out_dir: str | Path, n: int, seed: int = 0, workers: int | None = None, force: bool = False,
                 progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Make ``n`` clips under ``out_dir/<word>/`` plus the split lists; returns the ``synthesis.json`` content
    (parameters, voices, seed, one entry per clip). Reused as is when made before with the same parameters."""
    if n < 10:
        raise ValueError(f"ask for at least 10 digit clips (one per digit); got {n}")
    out_dir = Path(out_dir)
    check_folder(out_dir, CLIPS)
    descriptor_path = out_dir / "synthesis.json"
    params = {"n": n, "seed": seed, "rate": RATE, "frame_s": FRAME / RATE, "engine_weights": ENGINE_WEIGHTS,
              "voices": {k: list(v) for k, v in VOICES.items()}, "augmentation": AUGMENTATION}
    params = json.loads(json.dumps(params))
    if not force and descriptor_path.is_file():
        previous = json.loads(descriptor_path.read_text())
        if previous.get("parameters") == params and all((out_dir / c["file"]).is_file() for c in previous["clips"]):
            return previous
    for old in out_dir.glob("*/*.wav"):
        old.unlink()
    plans = plan_clips(n, seed)
    batches = [_Batch(tuple(plans[i : i + BATCH]), str(out_dir), seed) for i in range(0, n, BATCH)]
    progress = progress or (lambda phase, done, total: None)
    clips, skipped = [], []
    for results in ordered_map(synth_batch, batches, workers):
        for result in results:
            plan = asdict(plans[result["index"]])
            if "error" in result:
                log.warning("skipped clip %s: %s", result["file"], result["error"])
                skipped.append({**plan, "error": result["error"]})
            else:
                clips.append({**plan, "speech_s": result["speech_s"]})
        progress("synthesize", len(clips) + len(skipped), n)
    if not clips:
        raise ValueError(f"no digit clip could be made (first error: {skipped[0]['error']})")
    order = np.random.default_rng(seed).permutation(len(clips))
    n_eval = len(clips) // 10
    lists = {"validation_list.txt": order[:n_eval], "testing_list.txt": order[n_eval : 2 * n_eval]}
    for name, picked in lists.items():
        write_text_atomic(out_dir / name, "".join(clips[i]["file"] + "\n" for i in sorted(picked)))
    descriptor = {"parameters": params, "clips": clips, "skipped": skipped,
                  "tools": {name: tool_version(cmd) for name, cmd in
                            {"flite": ["flite", "--version"], "festival": ["festival", "--version"],
                             "espeak-ng": ["espeak-ng", "--version"], "sox": ["sox", "--version"]}.items()}}
    write_text_atomic(descriptor_path, json.dumps(descriptor, indent=1) + "\n")
    return descriptor
