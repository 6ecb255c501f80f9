"""Example audio: seeded digit plans and augmentation everywhere; rendering and synthesis only where the Debian
tools are installed (``apt-get install fluidsynth fluid-soundfont-gm flite festival festvox-kallpc16k
festvox-kdlpc16k espeak-ng sox``), skipped with the reason otherwise."""
from collections import Counter

import numpy as np
import pytest
import soundfile as sf

from mamba_bio_audio.data_prep.examples import digits as example_digits
from mamba_bio_audio.data_prep.examples.tools import (
    DIGIT_PACKAGES, PIANO_PACKAGES, ensure_debian_packages, ensure_python_packages, missing_packages,
)
from mamba_bio_audio.data_prep.datasets.prepared import PreparedDataset

needs_piano = pytest.mark.skipif(bool(missing_packages(PIANO_PACKAGES)),
                                 reason=f"Debian packages missing: {missing_packages(PIANO_PACKAGES)}")
needs_digits = pytest.mark.skipif(bool(missing_packages(DIGIT_PACKAGES)),
                                  reason=f"Debian packages missing: {missing_packages(DIGIT_PACKAGES)}")


def test_digit_plans_are_seeded_balanced_and_weighted():
    plans = example_digits.plan_clips(3000, seed=5)
    assert plans == example_digits.plan_clips(3000, seed=5) and plans != example_digits.plan_clips(3000, seed=6)
    assert plans[:40] == example_digits.plan_clips(40, seed=5)  # a clip does not depend on how many are made
    assert set(Counter(p.word for p in plans).values()) == {300}
    engines = Counter(p.engine for p in plans)
    for engine, weight in example_digits.ENGINE_WEIGHTS.items():
        assert abs(engines[engine] / 3000 - weight) < 0.04
    assert all(p.voice in example_digits.VOICES[p.engine] for p in plans)
    assert all(-300 <= p.pitch_cents <= 300 and 0.88 <= p.speed <= 1.15 and 0.25 <= p.gain <= 0.9 for p in plans)


def test_place_in_frame():
    plan = example_digits.plan_clips(1, seed=0)[0]
    t = np.arange(16000) / 16000
    speech = np.where((t > 0.3) & (t < 0.7), 0.6 * np.sin(2 * np.pi * 300 * t), 0.0).astype(np.float32)
    frame, n = example_digits.place_in_frame(speech, plan, seed=0)
    again, _ = example_digits.place_in_frame(speech, plan, seed=0)
    assert frame.shape == (16000,) and frame.dtype == np.float32 and np.array_equal(frame, again)
    assert abs(n - (0.4 / plan.speed * 16000 + 800)) < 40  # trimmed to the tone plus two 400-sample margins
    assert abs(np.abs(frame).max() - plan.gain) < 5 * plan.noise_sigma + 1e-3
    with pytest.raises(RuntimeError, match="silence"):
        example_digits.place_in_frame(np.zeros(4000, np.float32), plan, seed=0)


def test_missing_tools_are_reported_with_the_command(tmp_path):
    fake = {"no-such-package": str(tmp_path / "nothing")}
    with pytest.raises(ValueError, match=r"missing Debian packages no-such-package: run `sudo apt-get install -y "
                                         r"--no-install-recommends no-such-package` or add --install"):
        ensure_debian_packages(fake, install=False)
    with pytest.raises(ValueError, match=r"pip install 'mamba-bio-audio\[examples\]'"):
        ensure_python_packages(("no_such_module_xyz",))


def test_corpus_order_starts_with_piano_pieces():
    pytest.importorskip("music21", reason="music21 is in the examples extra")
    from mamba_bio_audio.data_prep.examples.piano import corpus_order

    order = corpus_order()
    assert order[0] == "joplin/maple_leaf_rag.mxl" and any(w.startswith("bach/") for w in order)
    stems = [w.rsplit(".", 1)[0] for w in order]
    assert len(stems) == len(set(stems)) and "beethoven/opus18no1/movement1.mxl" in order


@needs_piano
@needs_digits
def test_make_examples_end_to_end(tmp_path):
    pytest.importorskip("music21", reason="music21 is in the examples extra")
    from mamba_bio_audio.data_prep.examples.audio import make_examples

    results = make_examples(tmp_path, hours=0.001, digits=10, seed=3, workers=2)
    piano = PreparedDataset(tmp_path / "piano")
    assert piano.manifest["example"]["works"] == ["joplin/maple_leaf_rag.mxl"]
    # one file: 1 * 88 // 100 == 0 files train, and the file is test
    assert piano.split("train").info["records"] == 0 and piano.split("test").info["records"] == 1
    render = sf.info(str(next((tmp_path / "raw_audio" / "piano").glob("*.wav"))))
    assert (render.samplerate, render.channels, render.subtype) == (16000, 1, "PCM_16") and render.duration > 120
    digits = PreparedDataset(tmp_path / "digits")
    assert digits.manifest["audio"]["labels"] == list(example_digits.DIGITS)
    assert digits.manifest["example"]["parameters"]["seed"] == 3
    assert sum(digits.split(s).info["records"] for s in ("train", "valid", "test")) == 10
    assert digits.split("valid").info["records"] == 1 and digits.split("test").info["records"] == 1
    for f in digits.manifest["files"]:
        assert f["key"].split("/")[0] == f["label"] and f["samples"] == 16000
    again = make_examples(tmp_path, hours=0.001, digits=10, seed=3, workers=1)
    assert all(r.up_to_date for r in again.values()) and set(results) == {"piano", "digits"}


def test_trim_silence_cuts_edges_and_long_rests_and_keeps_the_sound():
    from mamba_bio_audio.data_prep.examples.piano import trim_silence

    rate, frame = 1000, 50  # 0.05 s frames of 50 samples
    tone = lambda seconds: 0.5 * np.sin(np.arange(int(seconds * rate)) * 0.3) + 0.01  # noqa: E731
    silence = lambda seconds: np.zeros(int(seconds * rate))  # noqa: E731
    parts = [silence(2.0), tone(1.0), silence(0.5), tone(0.5), silence(5.0), tone(1.0), silence(3.0)]
    out = trim_silence(np.concatenate(parts), rate, frame_s=0.05, edge_s=0.1, max_gap_s=1.0)
    expected = np.concatenate([silence(0.1), parts[1], parts[2], parts[3], silence(1.0), parts[5], silence(0.1)])
    np.testing.assert_array_equal(out, expected)  # a 0.5 s rest stays, the 5 s one becomes 1 s
    assert out.size % frame == 0
    assert trim_silence(silence(1.0), rate).size == 0
    already_tight = np.concatenate([tone(1.0), silence(0.3), tone(1.0)])
    np.testing.assert_array_equal(trim_silence(already_tight, rate), already_tight)
