"""Example audio datasets made offline (CLI ``examples audio``): piano renders and synthetic spoken digits.

Layout under ``out`` (``data`` by default, beside ``examples dna``'s datasets)::

    raw_audio/piano/NNNN_<work>.wav, renders.json      16 kHz mono PCM_16 renders of music21 corpus works
    raw_audio/digits/<word>/*.wav, synthesis.json,     1.0 s 16 kHz clips "zero" ... "nine"
        validation_list.txt, testing_list.txt
    piano/    prepared dataset, long mode (YouTubeMix-like: 8-bit mu-law, minmax, 88/6/6 by render order)
    digits/   prepared dataset, clips mode (SC09-like: 1.0 s clips, labels in digit order, the lists above)

Each dataset's manifest holds an ``example`` field: how the audio was made (tools and versions, seed, voices,
augmentation ranges, renders or clips used, skipped scores or clips with their reasons).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from mamba_bio_audio.atomic import folder_lock
from mamba_bio_audio.data_prep.datasets.prepared import check_dataset_folder
from mamba_bio_audio.data_prep.examples import digits as example_digits, piano as example_piano
from mamba_bio_audio.data_prep.examples.tools import (
    DIGIT_PACKAGES, PIANO_PACKAGES, PYTHON_PACKAGES, ensure_debian_packages, ensure_python_packages,
)
from mamba_bio_audio.data_prep.datasets.prepare_audio import AudioPrepareResult, prepare_audio
from mamba_bio_audio.folder_kinds import check_folder

AUDIO_EXAMPLES = ("piano", "digits")
RAW = "raw_audio"


def make_examples(out: str | Path, kinds: tuple[str, ...] = AUDIO_EXAMPLES, hours: float = 4.0, digits: int = 20000,
                  seed: int = 0, workers: int | None = None, install: bool = False, force: bool = False,
                  progress: Callable[[str, int, int], None] | None = None) -> dict[str, AudioPrepareResult]:
    """Make the raw audio and prepare the datasets; returns {kind: AudioPrepareResult}. Tools are checked (and
    installed when ``install``) before anything is made."""
    unknown = [k for k in kinds if k not in AUDIO_EXAMPLES]
    if unknown or not kinds:
        raise ValueError(f"kinds must be among {AUDIO_EXAMPLES}; got {list(kinds)}")
    out = Path(out)
    for kind in kinds:  # before anything is made: targets that are not ours are refused at once
        check_dataset_folder(out / kind)
        check_folder(out / RAW / kind, example_piano.RENDERS if kind == "piano" else example_digits.CLIPS)
    for kind in kinds:
        ensure_python_packages(PYTHON_PACKAGES[kind])
        ensure_debian_packages(PIANO_PACKAGES if kind == "piano" else DIGIT_PACKAGES, install)
    results = {}
    if "piano" in kinds:
        raw = out / RAW / "piano"
        with folder_lock(raw):
            made = example_piano.render_piano(raw, hours, workers=workers, force=force, progress=progress)
        example = {"source": "music21 corpus rendered with fluidsynth, every part program 0 (acoustic grand)",
                   **{k: made[k] for k in ("parameters", "seconds", "tools", "skipped")},
                   "works": [r["work"] for r in made["renders"]]}
        results["piano"] = prepare_audio([raw], out / "piano", mode="long", workers=workers, force=force,
                                         extra={"example": example}, progress=progress)
    if "digits" in kinds:
        raw = out / RAW / "digits"
        with folder_lock(raw):
            made = example_digits.synth_digits(raw, digits, seed=seed, workers=workers, force=force,
                                               progress=progress)
        example = {"source": "synthetic spoken digits (flite, festival, espeak-ng) with augmentation",
                   **{k: made[k] for k in ("parameters", "tools")},
                   "skipped": [{"file": s["file"], "error": s["error"]} for s in made["skipped"]],
                   "per_clip": f"{RAW}/digits/synthesis.json"}
        results["digits"] = prepare_audio(
            [raw], out / "digits", mode="clips", labels=list(example_digits.DIGITS),
            valid_list=raw / "validation_list.txt", test_list=raw / "testing_list.txt", workers=workers,
            force=force, extra={"example": example}, progress=progress)
    return results
