"""Piano audio rendered from the music21 corpus, a YouTubeMix-like example.

Each score is parsed with music21 and written as MIDI; mido sets every program change to 0 (acoustic grand
piano) and moves drum-channel events to channel 0; fluidsynth renders it with FluidR3_GM at 16 kHz; the
channels are averaged, silence is trimmed (:func:`trim_silence`: leading and trailing silence cut to 0.1 s,
rests longer than 1 s cut to 1 s) and the result written as 16-bit mono WAV. Scores are taken in a fixed order (the corpus's
real piano pieces first, then Bach chorales, then other composers) until the requested hours are reached,
rendered in parallel, and a score that fails (parse error, bad repeats, fluidsynth error, silence) is skipped
with its reason logged and recorded in ``renders.json``.
"""
from __future__ import annotations

import json
import logging
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf

from mamba_bio_audio.atomic import atomic_path, write_text_atomic
from mamba_bio_audio.folder_kinds import check_folder, layout_kind
from mamba_bio_audio.data_prep.datasets.audio_sources import natural_key
from mamba_bio_audio.data_prep.examples.tools import SOUNDFONT, tool_version
from mamba_bio_audio.data_prep.datasets.parallel import ordered_map

log = logging.getLogger(__name__)

# What a render may delete: a folder of earlier renders (NNNN_<work>.wav, renders.json, temporaries of a killed run)
RENDERS = layout_kind("a folder of piano renders", files=("renders.json", "[0-9][0-9][0-9][0-9]_*.wav", ".*.tmp"))

RATE = 16000
PIANO_PIECES = (
    "joplin/maple_leaf_rag", "mozart/k545/movement1_exposition", "schoenberg/opus19/movement2",
    "schoenberg/opus19/movement6", "schumann_clara/polonaise_op1n1", "schumann_clara/polonaise_op1n2",
    "schumann_clara/polonaise_op1n3", "schumann_clara/polonaise_op1n4", "cpebach/h186", "chopin/mazurka06-2",
)
# after the piano pieces, whole composers in this order (multi-tune folk collections are left out)
COMPOSERS = ("bach", "beethoven", "mozart", "haydn", "schumann_robert", "schubert", "handel", "corelli", "weber",
             "verdi", "monteverdi", "josquin", "trecento", "palestrina")
SCORE_SUFFIXES = (".mxl", ".xml", ".musicxml", ".krn", ".mid", ".abc")
FLUIDSYNTH_TIMEOUT_S = 900
# fluidsynth leaves about 3 s of silence after every piece, and some scores end in tens of seconds of rests: an
# LM trained on that learns that silence goes on for ever (5 % of a 0.25 h render set sat in silent runs of
# over 0.1 s, one of them 38 s), and its samples fall silent for good.
SILENCE = {"threshold_dbfs": -50.0, "frame_s": 0.05, "edge_s": 0.1, "max_gap_s": 1.0}


def trim_silence(mono: np.ndarray, rate: int, threshold_dbfs: float = -50.0, frame_s: float = 0.05,
                 edge_s: float = 0.1, max_gap_s: float = 1.0) -> np.ndarray:
    """Cut the silence of a (n,) float waveform: a frame of ``frame_s`` is silent when its RMS is below
    ``threshold_dbfs`` (full scale 1.0). Leading silence keeps its last ``edge_s``, trailing silence its first
    ``edge_s``, and a silent stretch inside longer than ``max_gap_s`` keeps its first ``max_gap_s`` (the decay of
    the last note, then the cut). Cuts fall on frame boundaries; sound frames are kept exactly."""
    frame = max(1, int(round(frame_s * rate)))
    frames = -(-mono.size // frame)
    padded = np.zeros(frames * frame, dtype=np.float64)
    padded[:mono.size] = mono
    silent = np.sqrt((padded.reshape(frames, frame) ** 2).mean(axis=1)) < 10 ** (threshold_dbfs / 20)
    if silent.all():
        return mono[:0]
    sound = np.flatnonzero(~silent)
    edge, gap = int(round(edge_s / frame_s)), int(round(max_gap_s / frame_s))
    keep = np.zeros(frames, dtype=bool)
    keep[max(0, sound[0] - edge):min(frames, sound[-1] + 1 + edge)] = True
    run_start = None
    for i in range(sound[0], sound[-1] + 1):
        if silent[i] and run_start is None:
            run_start = i
        elif not silent[i] and run_start is not None:
            keep[run_start + gap:i] = False
            run_start = None
    return mono[np.repeat(keep, frame)[:mono.size]]


def corpus_order() -> list[str]:
    """Corpus works in rendering order: piano pieces, then ``COMPOSERS``' works naturally sorted. A work present
    in several encodings (``.krn`` and ``.mxl``) appears once, preferring the earlier suffix above."""
    from music21 import corpus

    by_work: dict[str, str] = {}
    for path in corpus.getPaths():
        rel = str(path).replace("\\", "/").split("/corpus/", 1)[1]
        stem, suffix = rel.rsplit(".", 1)
        suffix = "." + suffix
        if suffix in SCORE_SUFFIXES:
            best = by_work.get(stem)
            if best is None or SCORE_SUFFIXES.index(suffix) < SCORE_SUFFIXES.index("." + best.rsplit(".", 1)[1]):
                by_work[stem] = rel
    order = [by_work[p] for p in PIANO_PIECES if p in by_work]
    chosen = set(order)
    for composer in COMPOSERS:
        works = sorted((rel for stem, rel in by_work.items() if stem.split("/")[0] == composer and rel not in chosen),
                       key=natural_key)
        order += works
    return order


@dataclass(frozen=True)
class _RenderJob:
    index: int
    work: str
    out_dir: str
    soundfont: str


def _piano_midi(work: str, path: Path) -> None:
    """music21 score -> MIDI at ``path`` with every program 0 and no drum channel."""
    import mido
    from music21 import corpus

    score = corpus.parse(work)
    score.write("midi", fp=str(path))
    midi = mido.MidiFile(str(path))
    for track in midi.tracks:
        for i, msg in enumerate(track):
            if msg.type == "program_change":
                msg = msg.copy(program=0)
            if getattr(msg, "channel", None) == 9:
                msg = msg.copy(channel=0)
            track[i] = msg
    midi.save(str(path))


def render_work(job: _RenderJob) -> dict:
    """Render one corpus work to ``<out_dir>/<index>_<work>.wav`` (16 kHz mono PCM_16).
    Returns {"work", "file", "seconds"} or {"work", "error"}."""
    name = f"{job.index:04d}_{job.work.rsplit('.', 1)[0].replace('/', '__')}.wav"
    try:
        with tempfile.TemporaryDirectory(prefix="render-") as tmp:
            midi_path, wav_path = Path(tmp, "piece.mid"), Path(tmp, "piece.wav")
            _piano_midi(job.work, midi_path)
            done = subprocess.run(["fluidsynth", "-ni", "-q", "-g", "0.5", "-r", str(RATE), "-T", "wav", "-O", "s16",
                                   "-F", str(wav_path), job.soundfont, str(midi_path)],
                                  capture_output=True, text=True, timeout=FLUIDSYNTH_TIMEOUT_S)
            if done.returncode != 0 or not wav_path.is_file():
                raise RuntimeError(f"fluidsynth exit {done.returncode}: {done.stderr.strip()[-300:]}")
            audio, rate = sf.read(str(wav_path), dtype="float32", always_2d=True)
        mono = audio.mean(axis=1)
        if rate != RATE or mono.size == 0 or not np.abs(mono).max() > 1e-4:
            raise RuntimeError(f"rendered {mono.size} samples at {rate} Hz, peak {np.abs(mono).max(initial=0):.2g}")
        mono = trim_silence(mono, RATE, **SILENCE)
        with atomic_path(Path(job.out_dir, name)) as tmp_wav:
            sf.write(str(tmp_wav), mono, RATE, subtype="PCM_16", format="WAV")
        return {"work": job.work, "file": name, "seconds": round(mono.size / RATE, 3)}
    except Exception as err:  # noqa: BLE001 -- music21 raises many kinds; any failing score is skipped
        return {"work": job.work, "error": f"{type(err).__name__}: {str(err).strip()[:300]}"}


def render_piano(out_dir: str | Path, hours: float, workers: int | None = None, force: bool = False,
                 progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Render corpus works into ``out_dir`` until ``hours`` of audio; returns the ``renders.json`` content.

    Deterministic: works are accepted in corpus order until the total reaches ``hours`` whatever the number of
    workers. An existing ``renders.json`` made with the same parameters (and its files) is reused unless ``force``.
    """
    if not hours > 0:
        raise ValueError(f"hours must be positive; got {hours!r}")
    out_dir = Path(out_dir)
    check_folder(out_dir, RENDERS)
    descriptor_path = out_dir / "renders.json"
    params = {"hours": hours, "rate": RATE, "soundfont": str(SOUNDFONT), "soundfont_size": SOUNDFONT.stat().st_size,
              "gain": 0.5, "program": 0, "silence": SILENCE}
    if not force and descriptor_path.is_file():
        previous = json.loads(descriptor_path.read_text())
        if previous.get("parameters") == params and all((out_dir / r["file"]).is_file() for r in previous["renders"]):
            return previous
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*.wav"):
        old.unlink()
    works = corpus_order()
    target = hours * 3600
    progress = progress or (lambda phase, done, total: None)
    jobs = (_RenderJob(i, work, str(out_dir), str(SOUNDFONT)) for i, work in enumerate(works))
    renders, skipped, total = [], [], 0.0
    results = ordered_map(render_work, jobs, workers, in_flight_per_worker=1)
    try:
        for result in results:
            if "error" in result:
                log.info("skipped score %s: %s", result["work"], result["error"])
                skipped.append(result)
                continue
            renders.append(result)
            total += result["seconds"]
            progress("render (s)", int(min(total, target)), int(target))
            if total >= target:
                break
    finally:
        results.close()
    kept = {r["file"] for r in renders}
    for extra in out_dir.glob("*.wav"):  # renders in flight when the target was reached
        if extra.name not in kept:
            extra.unlink()
    if skipped:
        log.info("%d corpus scores skipped (music21 could not render them; each is listed with its error in "
                 "renders.json)", len(skipped))
    if total < target:
        log.warning("the corpus order gave only %.2f h of the %.2f h asked for", total / 3600, hours)
    descriptor = {"parameters": params, "seconds": round(total, 3), "renders": renders, "skipped": skipped,
                  "tools": {"fluidsynth": tool_version(["fluidsynth", "--version"])}}
    write_text_atomic(descriptor_path, json.dumps(descriptor, indent=2) + "\n")
    return descriptor

